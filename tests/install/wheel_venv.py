"""The roomcast wheel built from this checkout and installed into a fresh venv.

This is what `pip install roomcast` gives a user, so tests run against it catch what
an editable install hides: a file the code reads at run time (a Lua script, the demo
page) that package-data does not carry.

The wheel is built from a copy of the sources in a temporary directory, not in the
checkout: setuptools builds in place, and a stale `build/lib` there would slip files
into the wheel that the sources no longer have. The venv has no access to the
checkout or to the test venv's packages; its dependencies come from the package
index (the slow part, so a test session makes one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "roomcast"
# What the build reads besides src/: pyproject names the readme and the license file.
BUILD_INPUTS = ("pyproject.toml", "README.md", "LICENSE")
BUILD_TIMEOUT = 300.0
INSTALL_TIMEOUT = 600.0


@dataclass(frozen=True)
class InstalledWheel:
    wheel: Path
    venv: Path
    build_seconds: float
    install_seconds: float

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def roomcast(self) -> Path:
        return self.venv / "bin" / "roomcast"

    def members(self) -> set[str]:
        with zipfile.ZipFile(self.wheel) as archive:
            return set(archive.namelist())


def runtime_files() -> list[str]:
    """The package's files that are not Python source, as wheel member names."""
    return sorted(
        path.relative_to(PACKAGE.parent).as_posix()
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in {".py", ".pyc"} and "__pycache__" not in path.parts
    )


def isolated_env() -> dict[str, str]:
    """The environment with nothing that would let a child see the test venv or the repo."""
    drop = {"PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"}
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("ROOMCAST_")}


def _run(argv: list[str], cwd: Path, timeout: float) -> None:
    done = subprocess.run(
        argv,
        cwd=cwd,
        env=isolated_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} exited with {done.returncode}\n"
            f"--- stdout ---\n{done.stdout[-4000:]}\n--- stderr ---\n{done.stderr[-4000:]}"
        )


def build_and_install(workdir: Path) -> InstalledWheel:
    """Build the wheel under workdir, make workdir/venv and install the wheel (not -e)."""
    source = workdir / "source"
    shutil.copytree(
        PACKAGE,
        source / "src" / "roomcast",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
    )
    for name in BUILD_INPUTS:
        shutil.copy2(REPO / name, source / name)
    dist = workdir / "dist"
    began = time.monotonic()
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), "."],
        cwd=source,
        timeout=BUILD_TIMEOUT,
    )
    built = time.monotonic()
    (wheel,) = dist.glob("roomcast-*.whl")
    venv = workdir / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=workdir, timeout=INSTALL_TIMEOUT)
    _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        cwd=workdir,
        timeout=INSTALL_TIMEOUT,
    )
    return InstalledWheel(
        wheel=wheel,
        venv=venv,
        build_seconds=built - began,
        install_seconds=time.monotonic() - built,
    )

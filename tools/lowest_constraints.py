"""Pip constraints that pin every runtime dependency to its lower bound in pyproject.toml.

`make test-lowest` installs roomcast with these into .venv-lowest and runs the
transport tests there, so each `>=` in pyproject names a version that was really
run. pyproject stays the one place the bounds are written.

    python tools/lowest_constraints.py            # name==lower, one a line
    python tools/lowest_constraints.py --dev A B  # the dev requirements A, B as written

Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
# name, optional [extras], then comma-separated clauses; environment markers are refused.
REQUIREMENT = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[[^\]]*\])?\s*([^;]*)$")
LOWER = re.compile(r"^>=\s*([0-9][A-Za-z0-9.]*)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lower_bound(requirement: str) -> tuple[str, str]:
    """(name, version) of a requirement's `>=` clause; ValueError if it has none."""
    match = REQUIREMENT.match(requirement)
    if match is None:
        raise ValueError(f"cannot read requirement {requirement!r}")
    name, _extras, spec = match.groups()
    lows = [m.group(1) for clause in spec.split(",") if (m := LOWER.match(clause.strip()))]
    if len(lows) != 1:
        raise ValueError(f"{requirement!r} needs exactly one '>=' lower bound")
    return name, lows[0]


def project() -> dict[str, object]:
    with PYPROJECT.open("rb") as file:
        table: dict[str, object] = tomllib.load(file)["project"]
    return table


def constraints() -> list[str]:
    deps = project()["dependencies"]
    assert isinstance(deps, list)
    return [f"{name}=={version}" for name, version in map(lower_bound, deps)]


def dev_requirements(names: list[str]) -> list[str]:
    extras = project()["optional-dependencies"]
    assert isinstance(extras, dict)
    by_name = {canonical(lower_bound(r)[0]): r for r in extras["dev"]}
    missing = [n for n in names if canonical(n) not in by_name]
    if missing:
        raise SystemExit(f"not in the dev extra of pyproject.toml: {', '.join(missing)}")
    return [by_name[canonical(n)] for n in names]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--dev"]:
        lines = dev_requirements(argv[1:])
    elif not argv:
        lines = constraints()
    else:
        print(__doc__, file=sys.stderr)
        return 2
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

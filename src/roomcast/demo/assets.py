"""Where the demo page's two client libraries come from.

The page runs roomcast's JavaScript client (clients/js) over the stock
socket.io-client's browser ESM build. Neither is copied into the repository; each is
served from the first place that has it:

1. `roomcast/static/vendor/<library>/`, which `make demo-assets` fills from the checkout
   (clients/js and its node_modules) before a wheel is built, so that a wheel carries
   them;
2. the source checkout itself, when roomcast runs from one (an editable install):
   clients/js/ and clients/js/node_modules/socket.io-client/dist/ after `npm ci`.

With neither, the page and the log say what is missing and how to get it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

SOCKETIO = "socket.io-client"
ROOMCAST = "roomcast-client"
SOCKETIO_ENTRY = "socket.io.esm.min.js"
# src/roomcast/demo/assets.py -> the checkout's root
_CHECKOUT = Path(__file__).resolve().parents[3]


@dataclass(frozen=True, slots=True)
class Library:
    """One JavaScript library: the directory it is served from and its entry module."""

    name: str
    root: Path
    entry: str

    def file(self, relative: str) -> Path | None:
        """The file at `relative` under the library's root, or None (never outside it)."""
        path = (self.root / relative).resolve()
        if not path.is_relative_to(self.root.resolve()) or not path.is_file():
            return None
        return path


def _vendor_dir() -> Path:
    return Path(str(files("roomcast").joinpath("static", "vendor")))


def _entry_of(package_dir: Path) -> str | None:
    """The module a bare import of the package resolves to (package.json exports/main)."""
    try:
        meta = json.loads((package_dir / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    exports = meta.get("exports")
    entry = None
    if isinstance(exports, dict):
        dot = exports.get(".", exports)
        if isinstance(dot, dict):
            entry = dot.get("browser") or dot.get("import") or dot.get("default")
        elif isinstance(dot, str):
            entry = dot
    entry = entry or meta.get("main")
    if not isinstance(entry, str) or not (package_dir / entry).is_file():
        return None
    return entry.removeprefix("./")


def _candidates(name: str) -> list[Path]:
    js = _CHECKOUT / "clients" / "js"
    if name == SOCKETIO:
        return [js / "node_modules" / SOCKETIO / "dist", _vendor_dir() / SOCKETIO]
    return [js, _vendor_dir() / ROOMCAST]


def find_library(name: str) -> Library | None:
    """The library served to the page, or None when no place has it.

    The checkout comes first so that a page run from source uses the client as it is
    now, not as it was when `make demo-assets` last copied it.
    """
    for root in _candidates(name):
        if name == SOCKETIO:
            if (root / SOCKETIO_ENTRY).is_file():
                return Library(name, root, SOCKETIO_ENTRY)
        else:
            entry = _entry_of(root)
            if entry is not None:
                return Library(name, root, entry)
    return None


def find_libraries() -> tuple[dict[str, Library], list[str]]:
    """The libraries found, and a line for each one missing (what to run)."""
    found: dict[str, Library] = {}
    missing: list[str] = []
    for name in (SOCKETIO, ROOMCAST):
        lib = find_library(name)
        if lib is None:
            missing.append(name)
        else:
            found[name] = lib
    return found, missing


MISSING_HELP = (
    "the demo page needs {names}: from a checkout run `make run` (or `make demo-assets`, "
    "which runs `npm ci` in clients/js and copies both into src/roomcast/static/vendor/); "
    "a wheel carries them only when built after `make demo-assets`"
)

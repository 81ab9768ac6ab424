"""IncompatibleDependency: a library no longer behaves as roomcast's internals fences assume.

roomcast reaches into private parts of uvicorn, python-engineio, python-socketio and
redis-py in two modules (transport/internals.py, brokers/redis_internals.py), whose
docstrings number every assumption. What can be checked cheaply is checked when those
modules are imported or the application is built, so an upgrade that breaks an
assumption stops the process at start with the library's version and the
assumption's number, instead of reordering frames or losing messages later.
"""

from __future__ import annotations

from importlib import metadata


class IncompatibleDependency(RuntimeError):
    """An installed library breaks an assumption roomcast makes about its internals."""


def installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown version"


def require(condition: bool, distribution: str, assumption: str, detail: str) -> None:
    """Raise IncompatibleDependency naming the library's version unless `condition` holds.

    `assumption` is the number in the fence's docstring (e.g. "U2"), `detail` says what
    was found instead.
    """
    if not condition:
        raise IncompatibleDependency(
            f"{distribution} {installed_version(distribution)} breaks roomcast's assumption "
            f"{assumption}: {detail}. Install a version within the bounds in roomcast's "
            "pyproject.toml (docs/platform.md, 'Private internals and version bounds')."
        )

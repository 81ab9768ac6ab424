"""roomcast: the real-time layer of an ML annotation platform, on Socket.IO.

from roomcast import Settings, create_app, EventBroadcastService

Names are imported on first use (PEP 562 `__getattr__`): a worker that only
publishes through `EventBroadcastService` never loads the server stack (uvicorn,
FastAPI, Starlette, python-socketio's server), which `create_app` and `Roomcast`
bring in.
"""

from __future__ import annotations

from importlib import import_module, metadata
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Roomcast, create_app
    from .broadcast.blocking import BlockingEventBroadcastService
    from .broadcast.service import EventBroadcastService, Published
    from .config import Settings
    from .domain import Identity
    from .errors import RoomcastError
    from .protocol.events import EventType, EventTypes
    from .rooms.names import RoomKind, RoomKinds, RoomRef

# public name -> the module that defines it
_HOMES: dict[str, str] = {
    "BlockingEventBroadcastService": ".broadcast.blocking",
    "EventBroadcastService": ".broadcast.service",
    "EventType": ".protocol.events",
    "EventTypes": ".protocol.events",
    "Identity": ".domain",
    "Published": ".broadcast.service",
    "RoomKind": ".rooms.names",
    "RoomKinds": ".rooms.names",
    "RoomRef": ".rooms.names",
    "Roomcast": ".app",
    "RoomcastError": ".errors",
    "Settings": ".config",
    "create_app": ".app",
}

__all__ = [
    "BlockingEventBroadcastService",
    "EventBroadcastService",
    "EventType",
    "EventTypes",
    "Identity",
    "Published",
    "RoomKind",
    "RoomKinds",
    "RoomRef",
    "Roomcast",
    "RoomcastError",
    "Settings",
    "__version__",
    "create_app",
]


def _version() -> str:
    """The installed distribution's version: pyproject.toml is the one source of it."""
    try:
        return metadata.version("roomcast")
    except metadata.PackageNotFoundError:  # imported from a source tree never installed
        return "0+unknown"


__version__ = _version()


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'roomcast' has no attribute {name!r}")
    value = getattr(import_module(home, __name__), name)
    globals()[name] = value  # the next lookup does not come here
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

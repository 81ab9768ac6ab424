"""roomcast: the real-time layer of an ML annotation platform, on Socket.IO.

from roomcast import Settings, create_app, EventBroadcastService
"""

from .app import Roomcast, create_app
from .broadcast.blocking import BlockingEventBroadcastService
from .broadcast.service import EventBroadcastService, Published
from .config import Settings
from .errors import RoomcastError
from .protocol.events import EventType, EventTypes
from .rooms.names import RoomKind, RoomKinds, RoomRef

__all__ = [
    "BlockingEventBroadcastService",
    "EventBroadcastService",
    "EventType",
    "EventTypes",
    "Published",
    "RoomKind",
    "RoomKinds",
    "RoomRef",
    "Roomcast",
    "RoomcastError",
    "Settings",
    "create_app",
]
__version__ = "0.1.0"

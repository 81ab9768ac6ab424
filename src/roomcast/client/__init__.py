"""The Python client SDK: RoomcastClient, and its pure parts (backoff, ordering)."""

from .backoff import Backoff
from .client import RoomcastClient, RoomcastClientError
from .stream import Decision, RoomStream

__all__ = ["Backoff", "Decision", "RoomStream", "RoomcastClient", "RoomcastClientError"]

"""A Socket.IO client manager that says when a connection is fully established."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import socketio


class GreetingManager(socketio.AsyncManager):  # type: ignore[misc]
    """Calls `on_connected(sid)` right after the CONNECT packet went out.

    The connect handler runs before that packet is sent, so anything it emitted
    would reach the client before the connection exists for it; the greeting
    (`connection_status`) is therefore sent from here.
    """

    def __init__(self, on_connected: Callable[[str], None]) -> None:
        super().__init__()
        self._on_connected = on_connected

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        self._on_connected(sid)
        return result

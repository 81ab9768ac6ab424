"""A Socket.IO client manager that says when a connection is fully established.

`GreetingManager` overrides `AsyncManager.connect`, relying on python-socketio
calling it after the CONNECT packet was queued (assumption S2 in internals.py, where
the class lives with the other reaches into the library's internals).
"""

from __future__ import annotations

from .internals import GreetingManager

__all__ = ["GreetingManager"]

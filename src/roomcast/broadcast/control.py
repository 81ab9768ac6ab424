"""ControlRouter: hands each cluster-wide control message to the part that owns its kind.

Control messages (`Control.publish_control`) reach every instance once. Each kind
has one owner, registered at wiring time: `canary` belongs to readiness,
`disconnect_user` to the gateway. A kind nobody registered is ignored, so an
instance running an older version skips what it does not know.
"""

from __future__ import annotations

from collections.abc import Callable

from ..domain import JSON

ControlHandler = Callable[[JSON], None]


class ControlRouter:
    def __init__(self) -> None:
        self._handlers: dict[str, ControlHandler] = {}

    def on(self, kind: str, handler: ControlHandler) -> None:
        """Send messages of `kind` to `handler` (synchronous: it runs on delivery)."""
        if kind in self._handlers:
            raise ValueError(f"control kind {kind!r} already has a handler")
        self._handlers[kind] = handler

    def __call__(self, message: JSON) -> None:
        handler = self._handlers.get(str(message.get("kind")))
        if handler is not None:
            handler(message)

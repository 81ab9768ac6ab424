"""BlockingEventBroadcastService: publishing from workers that are not asyncio
(Celery, RQ, scripts).

Rather than a second, synchronous implementation, it runs the asyncio service on
an event loop in a thread of its own and waits for each result, so both share one
code path and one set of guarantees.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

from ..config import Settings
from ..domain import JSON
from ..errors import RoomcastError
from ..protocol.events import EventTypes
from ..rooms.names import RoomKinds
from .service import EventBroadcastService, Published

T = TypeVar("T")
DEFAULT_TIMEOUT = 10.0


class BlockingEventBroadcastService:
    """The methods of EventBroadcastService, blocking; safe to call from any thread."""

    def __init__(
        self,
        settings: Settings,
        *,
        kinds: RoomKinds | None = None,
        event_types: EventTypes | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self._timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="roomcast-broadcast", daemon=True
        )
        self._thread.start()
        self._service = EventBroadcastService.from_settings(
            settings, kinds=kinds, event_types=event_types
        )
        started = False
        try:
            self._run(self._service.start())
            started = True
        finally:
            if not started:
                self.close()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        kinds: RoomKinds | None = None,
        event_types: EventTypes | None = None,
    ) -> BlockingEventBroadcastService:
        return cls(settings, kinds=kinds, event_types=event_types)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self._timeout)

    def publish(self, room: str, type: str, data: JSON, **kwargs: Any) -> Published:
        """See EventBroadcastService.publish; raises the same errors."""
        return self._run(self._service.publish(room, type, data, **kwargs))

    def publish_many(self, events: Sequence[JSON]) -> list[Published | RoomcastError]:
        """See EventBroadcastService.publish_many."""
        return self._run(self._service.publish_many(events))

    def detection_event(self, test_session_id: str, **kwargs: Any) -> Published:
        return self._run(self._service.detection_event(test_session_id, **kwargs))

    def project_progress(self, project_id: str, **kwargs: Any) -> Published:
        return self._run(self._service.project_progress(project_id, **kwargs))

    def notify(self, user_id: str, **kwargs: Any) -> Published:
        return self._run(self._service.notify(user_id, **kwargs))

    def annotation_validated(self, session_id: str, **kwargs: Any) -> Published:
        return self._run(self._service.annotation_validated(session_id, **kwargs))

    def close(self) -> None:
        """Close the broker connection and stop the loop's thread."""
        if self._loop.is_closed():
            return
        try:
            if self._loop.is_running():
                self._run(self._service.aclose())
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(self._timeout)
            self._loop.close()

    def __enter__(self) -> BlockingEventBroadcastService:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

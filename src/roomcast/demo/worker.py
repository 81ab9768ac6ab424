"""The demo's worker: a model under test and a reviewer, publishing as real workers do.

Both go through `EventBroadcastService`, the API a platform's detection worker or
review service uses: the model run streams `detection_event`s into the detection
room and `project_progress_update`s into the project room; the reviewer sends
`annotation_validated` into the annotation room and a `notification` to the author.
Its tasks belong to `running()`, which the application's lifespan enters.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from ..broadcast.service import EventBroadcastService
from ..domain import JSON
from ..errors import RoomcastError
from ..observability.logging import get_logger
from .config import DemoConfig

# What is in the page's generated street scene (static/scene.js): label, x, y, w, h.
SCENE_OBJECTS = (
    ("car", 58, 250, 114, 56),
    ("car", 248, 325, 114, 56),
    ("car", 448, 257, 114, 56),
    ("person", 191, 167, 18, 64),
    ("person", 363, 161, 18, 64),
    ("person", 576, 169, 18, 64),
)


def detections_for(frame: int) -> list[JSON]:
    """The model's output for one frame: the scene's objects, with a model's jitter.

    Deterministic per frame (no randomness to seed): boxes wobble by a few pixels,
    scores drift, and now and then an object is missed or a person is called a
    bicycle, so that the overlay looks like a model at work.
    """
    found: list[JSON] = []
    for k, (label, x, y, w, h) in enumerate(SCENE_OBJECTS):
        phase = frame / 7.0 + k * 1.9
        score = 0.6 + 0.38 * abs(math.sin(phase * 0.37))
        if score < 0.63:
            continue  # missed on this frame
        if label == "person" and math.sin(phase * 0.23) > 0.97:
            label = "bicycle"
        dx, dy = 3 * math.sin(phase), 2 * math.cos(phase * 1.3)
        dw, dh = 4 * math.sin(phase * 0.7), 3 * math.cos(phase * 0.9)
        found.append(
            {
                "label": label,
                "score": round(score, 3),
                "bbox": [round(x + dx, 1), round(y + dy, 1), round(w + dw, 1), round(h + dh, 1)],
            }
        )
    return found


class ModelRun:
    """One pass of the model over the test set, at a rate that may change meanwhile."""

    def __init__(self, rate: int, frames: int) -> None:
        self.rate = rate
        self.frames = frames
        self.sent = 0
        self.task: asyncio.Task[None] | None = None

    def to_wire(self) -> JSON:
        running = self.task is not None and not self.task.done()
        return {"running": running, "rate": self.rate, "sent": self.sent, "frames": self.frames}


class DemoWorker:
    """Starts and stops model runs, and reviews annotations on request."""

    def __init__(self, broadcast: EventBroadcastService, config: DemoConfig) -> None:
        self._broadcast = broadcast
        self._config = config
        self._log = get_logger(component="demo.worker")
        self._group: asyncio.TaskGroup | None = None
        self._tasks: set[asyncio.Task[None]] = set()  # cancelled when the app stops
        self._run: ModelRun | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Own the worker's tasks while the application runs; cancel them on exit."""
        async with asyncio.TaskGroup() as group:
            self._group = group
            try:
                yield
            finally:
                self._group = None
                for task in self._tasks:
                    task.cancel()

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        if self._group is None:
            coro.close()
            raise RuntimeError("the demo worker is not running")
        task = self._group.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- the model under test -----------------------------------------------------------

    def status(self) -> JSON:
        if self._run is None:
            cfg = self._config
            return {
                "running": False,
                "rate": cfg.default_rate,
                "sent": 0,
                "frames": cfg.test_set_frames,
            }
        return self._run.to_wire()

    def start_model(self, rate: float) -> JSON:
        """Start a run (or change the running one's rate)."""
        clamped = self._config.clamp_rate(rate)
        run = self._run
        if run is not None and run.task is not None and not run.task.done():
            run.rate = clamped
            return run.to_wire()
        run = ModelRun(clamped, self._config.test_set_frames)
        self._run = run
        run.task = self._spawn(self._stream(run), "demo.model_run")
        self._log.info("demo.model_started", rate=clamped)
        return run.to_wire()

    def stop_model(self) -> JSON:
        run = self._run
        if run is not None and run.task is not None:
            run.task.cancel()
        return self.status() | {"running": False}

    async def _stream(self, run: ModelRun) -> None:
        cfg = self._config
        next_at = time.monotonic()
        step = max(1, run.frames // 20)
        try:
            for frame in range(run.frames):
                detections = detections_for(frame)
                inference_ms = round(2 + 3 * abs(math.sin(frame)), 2)
                await self._broadcast.detection_event(
                    cfg.test_session_id,
                    frame_id=frame,
                    detections=detections,
                    image_id="street-scene",
                    model=cfg.model_name,
                    latency_ms=inference_ms,
                )
                run.sent = frame + 1
                if run.sent % step == 0 or run.sent == run.frames:
                    await self._broadcast.project_progress(
                        cfg.project_id, completed=run.sent, total=run.frames, stage="model test"
                    )
                # Paced by the clock, not by how long a publish took; a run that falls
                # behind does not burst to catch up.
                next_at = max(next_at + 1.0 / run.rate, time.monotonic() - 0.1)
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        except RoomcastError as exc:
            self._log.warning("demo.model_failed", error=exc.code)
        finally:
            self._log.info("demo.model_stopped", sent=run.sent)

    # -- the reviewer ---------------------------------------------------------------------

    def review(self, annotation_id: str, version: int, label: str, author_id: str) -> None:
        """Validate an annotation shortly, as a reviewer would, and tell its author."""
        self._spawn(self._review(annotation_id, version, label, author_id), "demo.review")

    async def _review(self, annotation_id: str, version: int, label: str, author_id: str) -> None:
        cfg = self._config
        await asyncio.sleep(cfg.review_delay_seconds)  # the reviewer's think time
        status = "accepted" if label.strip() and label.strip() != "?" else "needs_review"
        try:
            await self._broadcast.annotation_validated(
                cfg.session_id,
                annotation_id=annotation_id,
                version=version,
                status=status,
                validator_id=cfg.reviewer_id,
            )
            title = (
                f"Your annotation '{label}' was validated"
                if status == "accepted"
                else f"Your annotation {annotation_id} needs a label"
            )
            await self._broadcast.notify(
                author_id,
                title=title,
                level="info" if status == "accepted" else "warning",
                body=f"{annotation_id} v{version}: {status}",
            )
        except RoomcastError as exc:
            self._log.warning("demo.review_failed", error=exc.code)

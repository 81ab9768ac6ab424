"""The demo's HTTP routes: the page, its assets, tokens, state and the worker's controls.

Mounted only by `roomcast serve --demo` (`create_app(demo=True)`). The token endpoint
hands a token to anyone who asks, and the worker's controls publish on anyone's
behalf: they exist so that the page works without a platform behind it, never
outside demo mode. This module takes the narrow services it uses and never imports
the application that wires them.
"""

from __future__ import annotations

import contextlib
import html
import json
from collections.abc import AsyncIterator
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import BaseModel, Field

from ..auth.tokens import mint_access_token
from ..broadcast.service import EventBroadcastService
from ..config import Settings
from ..domain import JSON
from ..observability.logging import get_logger
from .assets import MISSING_HELP, find_libraries
from .config import DemoConfig, user_id_for
from .state import HistoryReader, load_state
from .worker import DemoWorker

PAGE_ASSETS = {
    "demo.css": "text/css",
    "demo.js": "text/javascript",
    "canvas.js": "text/javascript",
    "scene.js": "text/javascript",
}
JS_TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".map": "application/json"}


class ModelStart(BaseModel):
    rate: float = Field(30, ge=0, le=10_000)


class ReviewRequest(BaseModel):
    annotation_id: str = Field(min_length=1, max_length=128)
    version: int = Field(ge=1)
    label: str = Field("", max_length=200)
    author_id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")


def _static(name: str) -> str:
    return files("roomcast").joinpath("static", name).read_text(encoding="utf-8")


def _page(config: DemoConfig) -> str:
    """demo.html with its import map and settings filled in, or the missing-assets notice."""
    libraries, missing = find_libraries()
    imports = {name: f"/demo/vendor/{name}/{lib.entry}" for name, lib in libraries.items()}
    settings = {
        "annotationRoom": config.annotation_room,
        "detectionRoom": config.detection_room,
        "projectRoom": config.project_room,
        "minRate": config.min_rate,
        "maxRate": config.max_rate,
        "defaultRate": config.default_rate,
        "missing": missing,
    }
    notice = ""
    if missing:
        notice = html.escape(MISSING_HELP.format(names=" and ".join(missing)))
    page = _static("demo.html")

    # JSON in a <script> element: "</" must not end it early.
    def script_json(value: Any) -> str:
        return json.dumps(value).replace("</", "<\\/")

    return (
        page.replace("{{IMPORT_MAP}}", script_json({"imports": imports}))
        .replace("{{DEMO_SETTINGS}}", script_json(settings))
        .replace("{{MISSING}}", notice)
    )


def add_demo_routes(
    app: FastAPI,
    *,
    settings: Settings,
    broadcast: EventBroadcastService,
    history: HistoryReader,
    config: DemoConfig | None = None,
) -> DemoWorker:
    """Mount the demo on `app` and run its worker inside the app's lifespan.

    Raises ValueError without an HS256 secret (the demo mints its own tokens).
    """
    if settings.jwt_secret is None:
        raise ValueError("demo mode needs an HS256 secret")
    secret = settings.jwt_secret.get_secret_value()
    cfg = config or DemoConfig()
    worker = DemoWorker(broadcast, cfg)
    log = get_logger(component="demo")

    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        # roomcast's own parts start first and stop last: the worker publishes through them.
        async with inner(a) as state, worker.running():
            _, missing = find_libraries()
            if missing:
                names = ", ".join(missing)
                log.warning("demo.assets_missing", help=MISSING_HELP.format(names=names))
            yield state

    app.router.lifespan_context = lifespan

    @app.get("/demo", response_class=HTMLResponse, include_in_schema=False)
    async def demo_page() -> str:
        return _page(cfg)

    @app.get("/demo/static/{name}", include_in_schema=False)
    async def demo_asset(name: str) -> Response:
        media = PAGE_ASSETS.get(name)
        if media is None:
            raise HTTPException(404, "no such demo asset")
        return Response(_static(name), media_type=media)

    @app.get("/demo/vendor/{library}/{path:path}", include_in_schema=False)
    async def demo_vendor(library: str, path: str) -> FileResponse:
        libraries, _ = find_libraries()
        lib = libraries.get(library)
        found = lib.file(path) if lib is not None else None
        if found is None or found.suffix not in JS_TYPES:
            raise HTTPException(404, "no such file")
        return FileResponse(found, media_type=JS_TYPES[found.suffix])

    @app.get("/demo/token", include_in_schema=False)
    async def demo_token(user: str = "demo-user") -> JSON:
        name = user.strip()[:64] or "demo-user"
        user_id = user_id_for(name)
        token = mint_access_token(
            secret,
            user_id,
            name=name,
            projects=[cfg.project_id],
            rooms=[cfg.annotation_room, cfg.detection_room],
            ttl_seconds=cfg.token_ttl_seconds,
            audience=settings.jwt_audience or "",
            issuer=settings.jwt_issuer or "",
        )
        return {"token": token, "user_id": user_id, "name": name}

    @app.get("/demo/state", include_in_schema=False)
    async def demo_state() -> JSON:
        return await load_state(history, cfg.annotation_room)

    @app.get("/demo/model", include_in_schema=False)
    async def model_status() -> JSON:
        return worker.status()

    @app.post("/demo/model/start", include_in_schema=False)
    async def model_start(body: ModelStart) -> JSON:
        return worker.start_model(body.rate)

    @app.post("/demo/model/stop", include_in_schema=False)
    async def model_stop() -> JSON:
        return worker.stop_model()

    @app.post("/demo/review", include_in_schema=False)
    async def review(body: ReviewRequest) -> JSON:
        worker.review(body.annotation_id, body.version, body.label, body.author_id)
        return {"ok": True}

    return worker

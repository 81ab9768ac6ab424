"""The demo page and its token endpoint, mounted only by `roomcast serve --demo`.

The token endpoint hands a token to anyone who asks: it exists so that the demo
page works without a platform behind it, and never outside demo mode.
"""

from __future__ import annotations

from importlib.resources import files
from typing import TYPE_CHECKING

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from .auth.tokens import mint_access_token
from .types import JSON

if TYPE_CHECKING:
    from .app import Roomcast


def add_demo_routes(app: FastAPI, rc: Roomcast) -> None:
    secret = rc.settings.jwt_secret
    if secret is None:
        raise ValueError("demo mode needs an HS256 secret")

    @app.get("/demo", response_class=HTMLResponse, include_in_schema=False)
    async def demo_page() -> str:
        return files("roomcast").joinpath("static/demo.html").read_text(encoding="utf-8")

    @app.get("/demo/token", include_in_schema=False)
    async def demo_token(user: str = "demo-user") -> JSON:
        token = mint_access_token(
            secret.get_secret_value(),
            user[:64] or "demo-user",
            name=user[:64],
            projects=["demo"],
            rooms=["annotation_demo", "detection_stream_demo"],
            ttl_seconds=3600,
        )
        return {"token": token}

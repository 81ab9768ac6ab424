"""The two publish endpoints, answered in front of FastAPI.

Publishing is the one HTTP call the backend makes at event rates. Through FastAPI a
publish spent about three quarters of its server time in routing, dependency
resolution, middleware and response encoding, and a quarter in roomcast. This ASGI
layer answers `POST /api/v1/publish` and `POST /api/v1/publish/batch` itself, with the
very functions the FastAPI routes call (`http_api.publish_one`, `publish_many`), so
both paths give the same answers and errors; every other request, and the OpenAPI
description of these two, stays FastAPI's.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import RoomcastError
from .http_api import HttpServices, check_api_key, publish_many, publish_one

ASGIApp = Any

_JSON_HEADERS = [(b"content-type", b"application/json")]


class FastPublish:
    def __init__(self, app: ASGIApp, rc: HttpServices) -> None:
        self._app = app
        self._rc = rc
        self._keys = [k.encode() for k in rc.settings.api_key_list]
        self._routes = {
            "/api/v1/publish": publish_one,
            "/api/v1/publish/batch": publish_many,
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            handler = self._routes.get(scope["path"])
            if handler is not None:
                await self._answer(handler, scope, receive, send)
                return
        await self._app(scope, receive, send)

    async def _answer(self, handler: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            authorization = ""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
                    break
            check_api_key(self._keys, authorization)
            body = await _read_body(receive)
            status, payload = 200, await handler(self._rc, body)
        except RoomcastError as exc:
            status, payload = self._rc.refusals.http(exc)
        data = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*_JSON_HEADERS, (b"content-length", str(len(data)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": data})


async def _read_body(receive: Any) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)

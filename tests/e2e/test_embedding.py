"""roomcast embedded into a host FastAPI application (SPEC section 7).

The host's routes must answer exactly as FastAPI answers them (422 validation errors
with FastAPI's `detail` list, `HTTPException` bodies and headers, 405 with `Allow`,
the host's own exception handlers and 404), while roomcast's routes in the same
application answer as SPEC section 6 says. Real uvicorn server, real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from tests.support.server import RunningServer, running_server, test_settings

WAIT = 5.0


class Item(BaseModel):
    name: str
    count: int


class HostError(Exception):
    """An error the host application maps itself."""


def host_app() -> FastAPI:
    host = FastAPI(title="host")

    @host.exception_handler(HostError)
    async def _on_host_error(request: Request, exc: HostError) -> JSONResponse:
        return JSONResponse({"host": "handled"}, status_code=418)

    @host.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "count": item.count}

    @host.get("/secret")
    async def secret() -> dict[str, Any]:
        raise HTTPException(
            status_code=401,
            detail={"reason": "no session", "login": "/login"},
            headers={"WWW-Authenticate": 'Bearer realm="host"'},
        )

    @host.get("/only-get")
    async def only_get() -> dict[str, Any]:
        return {"ok": True}

    @host.get("/teapot")
    async def teapot() -> dict[str, Any]:
        raise HostError

    return host


@pytest.fixture
async def embedded() -> AsyncIterator[RunningServer]:
    async with running_server(test_settings(), app=host_app()) as running:
        yield running


def roomcast_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"], body


async def test_host_validation_error_stays_fastapis_422(embedded: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=WAIT) as http:
        r = await http.post("/items", json={"name": "x"})
        ok = await http.post("/items", json={"name": "x", "count": 2})
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert isinstance(detail, list), detail
    assert detail[0]["loc"] == ["body", "count"], detail
    assert detail[0]["type"] == "missing", detail
    assert ok.status_code == 200 and ok.json() == {"name": "x", "count": 2}


async def test_host_http_exception_keeps_its_dict_detail_and_headers(
    embedded: RunningServer,
) -> None:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=WAIT) as http:
        r = await http.get("/secret")
    assert r.status_code == 401, r.text
    assert r.json() == {"detail": {"reason": "no session", "login": "/login"}}
    assert r.headers["www-authenticate"] == 'Bearer realm="host"'


async def test_host_405_keeps_allow_and_fastapis_body(embedded: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=WAIT) as http:
        r = await http.post("/only-get")
    assert r.status_code == 405, r.text
    assert r.json() == {"detail": "Method Not Allowed"}
    assert r.headers["allow"] == "GET"


async def test_host_custom_handler_and_404_are_the_hosts(embedded: RunningServer) -> None:
    async with httpx.AsyncClient(base_url=embedded.url, timeout=WAIT) as http:
        teapot = await http.get("/teapot")
        missing = await http.get("/no-such-page")
    assert teapot.status_code == 418 and teapot.json() == {"host": "handled"}
    assert missing.status_code == 404 and missing.json() == {"detail": "Not Found"}


async def test_roomcast_routes_answer_per_spec_inside_the_host(embedded: RunningServer) -> None:
    history = "/api/v1/rooms/project_p1/history"
    async with httpx.AsyncClient(base_url=embedded.url, timeout=WAIT) as anonymous:
        roomcast_error(await anonymous.get("/api/v1/stats"), 401, "unauthorized")
        roomcast_error(await anonymous.get(history), 401, "unauthorized")
        roomcast_error(await anonymous.post("/api/v1/publish", json={}), 401, "unauthorized")
        health = await anonymous.get("/healthz")
        assert health.status_code == 200 and health.json()["ok"] is True
    async with httpx.AsyncClient(
        base_url=embedded.url, headers=embedded.api_headers, timeout=WAIT
    ) as http:
        roomcast_error(await http.get(history, params={"limit": "abc"}), 400, "invalid_payload")
        roomcast_error(await http.get(history, params={"limit": "0"}), 400, "invalid_payload")
        roomcast_error(await http.get("/api/v1/rooms/nope/history"), 400, "invalid_room")
        roomcast_error(await http.get("/api/v1/rooms/annotation_s1/binding"), 404, "not_found")
        roomcast_error(
            await http.put("/api/v1/rooms/annotation_s1/binding", json={"project_id": 7}),
            400,
            "invalid_payload",
        )
        wrong_method = await http.delete("/api/v1/stats")
        roomcast_error(wrong_method, 405, "method_not_allowed")
        assert wrong_method.headers["allow"] == "GET"
        published = await http.post(
            "/api/v1/publish",
            json={
                "room": "user_u1",
                "type": "notification",
                "data": {"title": "t", "level": "info"},
            },
        )
        assert published.status_code == 200, published.text
        page = await http.get("/api/v1/rooms/user_u1/history")
        assert page.status_code == 200 and page.json()["seq"] == 1, page.text


async def test_standalone_405_keeps_allow_and_roomcasts_body() -> None:
    async with (
        running_server() as server,
        httpx.AsyncClient(base_url=server.url, headers=server.api_headers, timeout=WAIT) as http,
    ):
        r = await http.delete("/api/v1/stats")
        missing = await http.get("/no-such-page")
    roomcast_error(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"
    roomcast_error(missing, 404, "not_found")

"""A platform backend of the tests': FastAPI on uvicorn, answering SPEC 10's proxies.

It verifies every request's `X-Roomcast-Signature` with integration.signing.verify
(401 otherwise, and counted), and keeps what a real platform would keep in its
database, in memory: the rooms each user may join, and the edits it accepted, by
`client_event_id`, each with the platform's own version of its annotation. Its
publish answers are idempotent by that id, as SPEC 10 asks of a platform: a retry
gets the first answer, and an edit is stored once however often it is asked.

`hold` slows it past any timeout without a sleep: while set, every proxy request
is recorded (and an edit stored) and then waits for `release()`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from roomcast.integration.signing import HEADER, verify
from tests.support.server import free_socket

PROXY_SECRET = "platform-proxy-secret-of-the-tests-0123456789"


@dataclass
class PlatformBackend:
    secret: bytes
    url: str = ""
    #: user_id -> rooms the platform lets that user join
    members: dict[str, set[str]] = field(default_factory=dict)
    #: annotation_id -> (code, message, details) the platform refuses that annotation with
    refusals: dict[str, tuple[str, str, dict[str, Any]]] = field(default_factory=dict)
    #: annotation_ids whose data the platform replaces with data no schema accepts
    garbage: set[str] = field(default_factory=set)
    join_requests: list[dict[str, Any]] = field(default_factory=list)
    publish_requests: list[dict[str, Any]] = field(default_factory=list)
    #: client_event_id -> the edit as stored, and the answer the platform gave
    stored: dict[str, dict[str, Any]] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)  # client_event_id of each store
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)  # the platform's own
    bad_signatures: int = 0
    held: asyncio.Event = field(default_factory=asyncio.Event)  # set: answers wait
    _released: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # "join"/"publish"

    def hold(self) -> None:
        self._released.clear()
        self.held.set()

    def release(self) -> None:
        self.held.clear()
        self._released.set()

    def edits_of(self, client_event_id: str) -> int:
        """How many times the platform stored this edit (never more than once)."""
        return self.writes.count(client_event_id)

    async def _wait_if_held(self) -> None:
        if self.held.is_set():
            await self._released.wait()

    def _publish_answer(self, body: dict[str, Any]) -> dict[str, Any]:
        key = body.get("client_event_id")
        if key is not None and key in self.answers:
            return self.answers[key]  # idempotent by client_event_id
        data = dict(body["data"])
        aid = data.get("annotation_id", "")
        refusal = self.refusals.get(aid)
        if refusal is not None:
            code, message, details = refusal
            answer: dict[str, Any] = {
                "allow": False,
                "code": code,
                "message": message,
                "details": details,
            }
        elif aid in self.garbage:
            answer = {"allow": True, "data": {"action": "explode"}}
        elif data.get("annotation") is not None:
            version = self.versions.get(aid, 0) + 1
            self.versions[aid] = version
            annotation = dict(data["annotation"])
            annotation["attributes"] = {**annotation.get("attributes", {}), "db_version": version}
            data["annotation"] = annotation
            answer = {"allow": True, "data": data}
        else:
            answer = {"allow": True}
        if key is not None:
            self.answers[key] = answer
            if answer["allow"]:
                self.stored[key] = data
                self.writes.append(key)
        return answer

    def app(self) -> FastAPI:
        api = FastAPI(title="platform")

        async def checked(request: Request) -> dict[str, Any] | None:
            raw = await request.body()
            if not verify(self.secret, request.headers.get(HEADER, ""), raw):
                self.bad_signatures += 1
                return None
            body: dict[str, Any] = await request.json()
            return body

        @api.post("/proxy/join")
        async def join(request: Request) -> JSONResponse:
            body = await checked(request)
            if body is None:
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.join_requests.append(body)
            self.arrived.put_nowait("join")
            await self._wait_if_held()
            if body["room"] in self.members.get(body["user"]["user_id"], set()):
                return JSONResponse({"allow": True})
            return JSONResponse(
                {"allow": False, "code": "forbidden", "message": "not a member of this session"}
            )

        @api.post("/proxy/publish")
        async def publish(request: Request) -> JSONResponse:
            body = await checked(request)
            if body is None:
                return JSONResponse({"error": "bad signature"}, status_code=401)
            self.publish_requests.append(body)
            self.arrived.put_nowait("publish")
            answer = self._publish_answer(body)  # stored before it is slow, like a DB commit
            await self._wait_if_held()
            return JSONResponse(answer)

        @api.post("/proxy/broken")
        async def broken() -> JSONResponse:
            return JSONResponse({"error": "database down"}, status_code=500)

        return api


@contextlib.asynccontextmanager
async def running_platform(secret: str = PROXY_SECRET) -> AsyncIterator[PlatformBackend]:
    """The backend on a free loopback port, under uvicorn, for the duration."""
    backend = PlatformBackend(secret.encode())
    sock = free_socket()
    backend.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = uvicorn.Config(
        backend.app(),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[attr-defined]
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield backend
    finally:
        backend.release()  # let held answers finish, so the server stops promptly
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()

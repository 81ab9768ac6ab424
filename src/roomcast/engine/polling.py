"""Engine.IO long-polling over ASGI HTTP, and the origin check of every request.

- GET without sid: the handshake, answered with the open packet.
- GET with sid: the packets queued for the session, waiting for one if none is (a
  second GET while one waits is refused with 400 and closes the session).
- POST with sid: a payload of packets, answered "ok"; a body over `max_payload` 413.
- OPTIONS: the CORS preflight.

Errors are answered as Engine.IO servers answer them: 400 with JSON
`{"code", "message"}` (0 unknown transport, 1 unknown sid, 2 bad handshake method,
3 bad request, 5 unsupported protocol version), 403 code 4 for a refused origin.
Origins (`cors_allowed_origins`): None allows the request's own origin only, "*" any,
a list those listed; a request without Origin (not from a browser) is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import EngineServer

Receive = Callable[[], Awaitable[Any]]
Send = Callable[[Any], Awaitable[None]]

UNKNOWN_TRANSPORT = (0, "Transport unknown")
UNKNOWN_SID = (1, "Session ID unknown")
BAD_HANDSHAKE_METHOD = (2, "Bad handshake method")
BAD_REQUEST = (3, "Bad request")
FORBIDDEN = (4, "Forbidden")
UNSUPPORTED_PROTOCOL = (5, "Unsupported protocol version")

_TEXT = b"text/plain; charset=UTF-8"


def origin_allowed(
    allowed: str | list[str] | None, scope: Mapping[str, Any], headers: Mapping[str, str]
) -> bool:
    origin = headers.get("origin")
    if origin is None or allowed == "*":
        return True
    if allowed is None:
        proto = headers.get("x-forwarded-proto", "").split(",")[0].strip()
        if not proto:
            scheme = str(scope.get("scheme", "http"))
            proto = {"ws": "http", "wss": "https"}.get(scheme, scheme)
        host = headers.get("x-forwarded-host", "").split(",")[0].strip() or headers.get("host")
        return host is not None and origin == f"{proto}://{host}"
    listed = [allowed] if isinstance(allowed, str) else allowed
    return origin in listed


def _cors_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    origin = headers.get("origin")
    if origin is None:
        return []
    return [
        (b"access-control-allow-origin", origin.encode("latin-1")),
        (b"access-control-allow-credentials", b"true"),
    ]


async def _respond(
    send: Send, status: int, body: bytes, content_type: bytes, extra: list[tuple[bytes, bytes]]
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + extra})
    await send({"type": "http.response.body", "body": body})


async def _error(
    send: Send, status: int, error: tuple[int, str], extra: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"code": error[0], "message": error[1]}).encode()
    await _respond(send, status, body, b"application/json", extra)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The request body, or None once it passed `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def handle(
    engine: EngineServer,
    scope: Mapping[str, Any],
    receive: Receive,
    send: Send,
    query: Mapping[str, str],
    headers: Mapping[str, str],
) -> None:
    """One Engine.IO HTTP request (see the module docstring)."""
    if not origin_allowed(engine.cors_allowed_origins, scope, headers):
        await _error(send, 403, FORBIDDEN, [])
        return
    cors = _cors_headers(headers)
    method = scope.get("method", "GET")
    if method == "OPTIONS":
        preflight = [
            *cors,
            (b"access-control-allow-methods", b"OPTIONS, GET, POST"),
        ]
        requested = headers.get("access-control-request-headers")
        if requested:
            preflight.append((b"access-control-allow-headers", requested.encode("latin-1")))
        await _respond(send, 204, b"", _TEXT, preflight)
        return
    if query.get("EIO") != "4":
        await _error(send, 400, UNSUPPORTED_PROTOCOL, cors)
        return
    if query.get("transport") != "polling":
        await _error(send, 400, UNKNOWN_TRANSPORT, cors)
        return
    sid = query.get("sid")
    if sid is None:
        if method != "GET":
            await _error(send, 400, BAD_HANDSHAKE_METHOD, cors)
            return
        await _respond(send, 200, engine.open_polling(scope).encode(), _TEXT, cors)
        return
    session = engine.sessions.get(sid)
    if session is None:
        await _error(send, 400, UNKNOWN_SID, cors)
        return
    if method == "GET":
        answer = await engine.poll(session)
        if answer is None:
            await _error(send, 400, BAD_REQUEST, cors)
        else:
            await _respond(send, 200, answer.encode(), _TEXT, cors)
        return
    if method != "POST":
        await _error(send, 400, BAD_REQUEST, cors)
        return
    body = await _read_body(receive, engine.max_payload)
    if body is None:
        await _error(send, 413, BAD_REQUEST, cors)
        return
    try:
        text = body.decode()
    except UnicodeDecodeError:
        await _error(send, 400, BAD_REQUEST, cors)
        return
    if not engine.post(session, text):
        await _error(send, 400, BAD_REQUEST, cors)
        return
    await _respond(send, 200, b"ok", _TEXT, cors)

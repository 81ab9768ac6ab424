"""The HTTP API of SPEC section 6, and the one place its errors become responses."""

from __future__ import annotations

import hmac
import time
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    InvalidPayload,
    InvalidRoom,
    NotFound,
    PayloadTooLarge,
    RoomcastError,
    Unauthorized,
)
from ..protocol.requests import (
    BatchBody,
    BindingBody,
    DisconnectBody,
    PublishBody,
    json_size,
    loads_strict,
)
from ..types import JSON, InstanceInfo

if TYPE_CHECKING:
    from ..app import Roomcast

MAX_HISTORY_LIMIT = 1000


def _error_response(exc: RoomcastError) -> JSONResponse:
    return JSONResponse({"error": exc.to_wire()}, status_code=exc.http_status)


def _loads(raw: bytes) -> Any:
    try:
        return loads_strict(raw)
    except (UnicodeDecodeError, ValueError):
        raise InvalidPayload("body is not valid JSON") from None


def _json_size(value: Any) -> int:
    try:
        return json_size(value)
    except ValueError:
        # 1e400 parses as an infinity, which JSON cannot carry
        raise InvalidPayload("numbers must be finite") from None


def _parse(model: type[BaseModel], body: Any) -> Any:
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        raise InvalidPayload(f"{where}: {first['msg']}") from None


def check_api_key(keys: list[bytes], authorization: str) -> None:
    scheme, _, value = authorization.partition(" ")
    given = value.strip().encode()
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, k) for k in keys):
        raise Unauthorized("missing or wrong API key: send Authorization: Bearer <key>")


async def publish_one(rc: Roomcast, raw: bytes) -> JSON:
    """`POST /api/v1/publish` on a raw body (shared by the FastAPI route and the fast path)."""
    limit = rc.settings.max_payload_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"body is {len(raw)} bytes; the limit is {limit}")
    body: PublishBody = _parse(PublishBody, _loads(raw))
    result = await rc.broadcast.publish(
        body.room,
        body.type,
        body.data,
        actor=body.actor.model_dump() if body.actor else None,
        idempotency_key=body.idempotency_key,
    )
    return result._asdict()


async def publish_many(rc: Roomcast, raw: bytes) -> JSON:
    """`POST /api/v1/publish/batch` on a raw body: per-event results, in order."""
    limit = rc.settings.max_payload_bytes
    # A batch may be up to 1000 events, each within the per-event limit.
    if len(raw) > limit * 1000:
        raise PayloadTooLarge("batch body too large")
    body: BatchBody = _parse(BatchBody, _loads(raw))
    results: list[JSON | RoomcastError | None] = []
    events: list[JSON] = []
    slots: list[int] = []
    for event in body.events:
        try:
            if _json_size(event) > limit:
                raise PayloadTooLarge("event larger than max_payload_bytes")
            one: PublishBody = _parse(PublishBody, event)
        except RoomcastError as exc:
            results.append(exc)
            continue
        slots.append(len(results))
        results.append(None)
        events.append(
            {
                "room": one.room,
                "type": one.type,
                "data": one.data,
                "actor": one.actor.model_dump() if one.actor else None,
                "idempotency_key": one.idempotency_key,
            }
        )
    # One call for the whole batch: each room's events are sequenced in one
    # step over Redis, instead of one round trip per event.
    for slot, outcome in zip(slots, await rc.broadcast.publish_many(events), strict=True):
        results[slot] = outcome if isinstance(outcome, RoomcastError) else outcome._asdict()
    errors = [r for r in results if isinstance(r, RoomcastError)]
    if len(errors) == len(results) and any(e.temporary for e in errors):
        # Nothing was published: the whole request fails (503), as one publish would.
        raise next(e for e in errors if e.temporary)
    for error in errors:
        rc.metrics.refusals.labels(error.code).inc()
    return {
        "results": [{"error": r.to_wire()} if isinstance(r, RoomcastError) else r for r in results]
    }


def build_router(app: FastAPI, rc: Roomcast) -> None:
    """Add roomcast's routes and error handlers to a FastAPI application."""
    settings = rc.settings
    started_at = int(time.time() * 1000)
    keys = [k.encode() for k in settings.api_key_list]

    async def require_key(request: Request) -> None:
        check_api_key(keys, request.headers.get("authorization", ""))

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"body is {len(raw)} bytes; the limit is {settings.max_payload_bytes}"
            )
        return _loads(raw)

    @app.exception_handler(RoomcastError)
    async def _on_roomcast_error(request: Request, exc: RoomcastError) -> JSONResponse:
        rc.metrics.refusals.labels(exc.code).inc()
        return _error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            {"error": {"code": code, "message": str(exc.detail)}}, status_code=exc.status_code
        )

    @app.exception_handler(RequestValidationError)
    async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first.get("loc", ())) or "request"
        return _error_response(InvalidPayload(f"{where}: {first.get('msg')}"))

    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_key)])

    @api.post("/publish")
    async def publish(request: Request) -> JSON:
        return await publish_one(rc, await request.body())

    @api.post("/publish/batch")
    async def publish_batch(request: Request) -> Response:
        # A JSONResponse, not a dict: FastAPI's generic encoding of 1000 results cost
        # as much as a fifth of the whole request.
        return JSONResponse(await publish_many(rc, await request.body()))

    @api.get("/rooms/{room}/history")
    async def history(room: str, since_seq: int = 0, limit: int = 100) -> JSON:
        ref = rc.kinds.parse(room)
        if since_seq < 0:
            raise InvalidPayload("since_seq must be >= 0")
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise InvalidPayload(f"limit must be between 1 and {MAX_HISTORY_LIMIT}")
        page = await rc.broker.history(ref.name, since_seq, limit)
        return {
            "room": ref.name,
            "epoch": page.epoch,
            "seq": page.head,
            "events": [p.envelope() for p in page.events],
            "complete": page.complete,
        }

    @api.get("/rooms/{room}/presence")
    async def presence(room: str) -> JSON:
        ref = rc.kinds.parse(room)
        members = await rc.presence.members(ref.name)
        return {"room": ref.name, "count": len(members), "members": [m.to_wire() for m in members]}

    @api.put("/rooms/{room}/binding")
    async def bind(room: str, request: Request) -> JSON:
        ref = rc.kinds.parse(room)
        if not ref.kind.bindable:
            raise InvalidRoom(f"{ref.kind.name} rooms cannot be bound to a project")
        body: BindingBody = _parse(BindingBody, await json_body(request))
        await rc.broker.bind(ref.name, body.project_id)
        return {"room": ref.name, "project_id": body.project_id}

    @api.get("/rooms/{room}/binding")
    async def get_binding(room: str) -> JSON:
        ref = rc.kinds.parse(room)
        project = await rc.broker.binding(ref.name)
        if project is None:
            raise NotFound(f"{ref.name} is not bound to a project")
        return {"room": ref.name, "project_id": project}

    @api.post("/users/{user_id}/disconnect")
    async def disconnect_user(user_id: str, request: Request) -> JSON:
        raw = await request.body()
        body = _parse(DisconnectBody, _loads(raw) if raw.strip() else {})
        await rc.broker.publish_control(
            {"kind": "disconnect_user", "user_id": user_id, "reason": body.reason or "api"}
        )
        return {"ok": True}

    @api.get("/stats")
    async def stats() -> JSON:
        instance_id = settings.instance_id
        connections = len(rc.gateway.connections)
        # Heartbeats carry other instances' counts; this one's is read live.
        alive = [
            InstanceInfo(i.instance_id, connections, time.time())
            if i.instance_id == instance_id
            else i
            for i in await rc.presence.instances()
        ]
        if not any(i.instance_id == instance_id for i in alive):
            alive.append(InstanceInfo(instance_id, connections, time.time()))
        return {
            "instance": {
                "instance_id": instance_id,
                "connections": connections,
                "rooms": rc.fanout.room_count(),
                "events_in": int(sum(_counter_total(rc.metrics.events_in))),
                "events_out": rc.counters.events_out,
                "started_at": started_at,
            },
            "cluster": {
                "instances_alive": len(alive),
                "connections": sum(i.connections for i in alive),
                "instances": [
                    {
                        "instance_id": i.instance_id,
                        "connections": i.connections,
                        "last_seen": int(i.last_seen * 1000),
                    }
                    for i in alive
                ],
            },
        }

    app.include_router(api)

    @app.get("/healthz", include_in_schema=True)
    async def healthz() -> JSON:
        return {"ok": True, "instance_id": settings.instance_id}

    @app.get("/readyz")
    async def readyz() -> Response:
        reason = await rc.readiness.check()
        if reason is None:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return PlainTextResponse(rc.metrics.render(), media_type="text/plain; version=0.0.4")


def _counter_total(counter: Any) -> list[float]:
    return [
        sample.value
        for metric in counter.collect()
        for sample in metric.samples
        if sample.name.endswith("_total")
    ]

"""The HTTP API of SPEC section 6, and the one place its errors become responses.

roomcast's routes use `RoomcastRoute`, which turns every error raised while
answering them into SPEC 6's `{"error": {"code", "message"}}` body (400 rather than
422, headers such as `Allow` kept). The mapping lives on the routes, not on the
application, so that an application roomcast is embedded into keeps FastAPI's
answers and its own exception handlers for its routes (SPEC section 7). Only an
application roomcast builds itself gets application-wide handlers
(`install_error_handlers`), for the paths no route matches.

The routes read their bodies, path and query parameters themselves (the publish
routes for speed: see fast_publish.py), so FastAPI validates nothing and documents
nothing on its own; `openapi_extra` describes each request from the pydantic models
of protocol/requests.py, and `responses` lists the errors each route really gives.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from ..broadcast.service import EventBroadcastService
from ..config import Settings
from ..domain import JSON, HistoryPage, InstanceInfo, Member
from ..errors import (
    InvalidPayload,
    InvalidRoom,
    NotFound,
    PayloadTooLarge,
    RoomcastError,
    Unauthorized,
    invalid_payload,
)
from ..observability.metrics import Metrics
from ..observability.stats import InstanceStats
from ..protocol.requests import (
    BatchBody,
    BindingBody,
    DisconnectBody,
    PublishBody,
    json_size,
    loads_strict,
    parse_request,
)
from ..rooms.names import RoomKinds
from . import http_docs as docs
from .http_docs import (
    MAX_HISTORY_LIMIT,
    MAX_SEQ,
    BatchResults,
    BindingResult,
    HealthBody,
    HistoryPageBody,
    OkBody,
    PresenceBody,
    PublishResult,
    ReadyBody,
    StatsBody,
)
from .refusals import Refusals


class HistoryReader(Protocol):
    """The part of the room streams the history endpoint reads."""

    async def history(self, room: str, since_seq: int, limit: int) -> HistoryPage: ...


class PresenceReader(Protocol):
    """The parts of presence the HTTP API reads: a room's members, the instances."""

    async def members(self, room: str) -> list[Member]: ...

    async def instances(self) -> list[InstanceInfo]: ...


class ReadinessCheck(Protocol):
    async def check(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class HttpServices:
    """What the HTTP edge uses, and nothing else: no broker, gateway or hub.

    `broadcast` publishes, binds and disconnects users (as a worker would),
    `history` and `presence` are read, `stats` gives this instance's live counts.
    """

    settings: Settings
    kinds: RoomKinds
    broadcast: EventBroadcastService
    history: HistoryReader
    presence: PresenceReader
    stats: InstanceStats
    readiness: ReadinessCheck
    metrics: Metrics
    refusals: Refusals


_INTEGER = re.compile(r"-?[0-9]{1,30}")
_HTTP_CODES = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


# errors -----------------------------------------------------------------------------


class ErrorMapper:
    """Turns an error raised on a roomcast route into its SPEC 6 response."""

    def __init__(self, refusals: Refusals) -> None:
        self._refusals = refusals

    def response(self, exc: Exception) -> JSONResponse:
        if isinstance(exc, RoomcastError):
            status, body = self._refusals.http(exc)
            return JSONResponse(body, status_code=status)
        if isinstance(exc, RequestValidationError):
            return self.response(invalid_payload(exc.errors(), where="request"))
        if isinstance(exc, StarletteHTTPException):
            code = _HTTP_CODES.get(exc.status_code, "http_error")
            return JSONResponse(
                {"error": {"code": code, "message": str(exc.detail)}},
                status_code=exc.status_code,
                headers=exc.headers,
            )
        raise TypeError(f"no mapping for {type(exc).__name__}")


_MAPPED = (RoomcastError, RequestValidationError, StarletteHTTPException)


def roomcast_route_class(mapper: ErrorMapper) -> type[APIRoute]:
    """An APIRoute whose errors `mapper` answers, whatever handlers the app has."""

    class RoomcastRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def answer(request: Request) -> Response:
                try:
                    return await handler(request)
                except _MAPPED as exc:
                    return mapper.response(exc)

            return answer

        async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
            try:
                await super().handle(scope, receive, send)
            except StarletteHTTPException as exc:
                # Raised before the handler runs: this path, a method it does not take (405).
                await mapper.response(exc)(scope, receive, send)

    return RoomcastRoute


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Answer the paths no route matches as SPEC 6 says (only on roomcast's own app)."""
    mapper = ErrorMapper(Refusals(metrics))

    async def on_error(request: Request, exc: Exception) -> Response:
        return mapper.response(exc)

    for error in _MAPPED:
        app.add_exception_handler(error, on_error)


# request parsing (shared with fast_publish.py) ---------------------------------------


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
    return parse_request(model, body, where="body")


def _query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidPayload(f"{name} must be an integer between {low} and {high}")
    return int(raw)


def check_api_key(keys: list[bytes], authorization: str) -> None:
    scheme, _, value = authorization.partition(" ")
    given = value.strip().encode()
    if scheme.lower() != "bearer" or not any(hmac.compare_digest(given, k) for k in keys):
        raise Unauthorized("missing or wrong API key: send Authorization: Bearer <key>")


async def publish_one(rc: HttpServices, raw: bytes) -> JSON:
    """`POST /api/v1/publish` on a raw body (shared by the FastAPI route and the fast path).

    Over Redis, a publish without `idempotency_key` is given one (`rc-` and 24 hex
    digits), and the answer carries the key used, on success and in a temporary
    error (`outcome_unknown`, `broker_unavailable`): when Redis stalls, the write may
    be applied after the answer said 503, and only a retry with that key is then
    safe. In memory an outcome is never in doubt, so none is made (a key costs a
    stored result for idempotency_ttl_seconds).
    """
    limit = rc.settings.max_payload_bytes
    if len(raw) > limit:
        raise PayloadTooLarge(f"body is {len(raw)} bytes; the limit is {limit}")
    body: PublishBody = _parse(PublishBody, _loads(raw))
    key = body.idempotency_key
    if key is None and rc.settings.uses_redis:
        key = f"rc-{secrets.token_hex(12)}"
    try:
        result = await rc.broadcast.publish(
            body.room,
            body.type,
            body.data,
            actor=body.actor.model_dump() if body.actor else None,
            idempotency_key=key,
        )
    except RoomcastError as exc:
        if not exc.temporary or key is None:
            raise
        # A copy: an error instance may be shared by the callers of one failed batch.
        raise type(exc)(exc.message, **{**exc.details, "idempotency_key": key}) from exc
    answer: JSON = {"id": result.id, "epoch": result.epoch, "seq": result.seq}
    if key is not None:
        answer["idempotency_key"] = key
    return answer


async def publish_many(rc: HttpServices, raw: bytes) -> JSON:
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
        rc.refusals.count(error)
    return {
        "results": [{"error": r.to_wire()} if isinstance(r, RoomcastError) else r for r in results]
    }


# routes -----------------------------------------------------------------------------


def build_router(app: FastAPI, rc: HttpServices) -> None:
    """Add roomcast's routes to a FastAPI application, leaving its other routes alone."""
    settings = rc.settings
    keys = [k.encode() for k in settings.api_key_list]
    route_class = roomcast_route_class(ErrorMapper(rc.refusals))
    # Read for the OpenAPI document's security scheme; the key is checked below with
    # the function the fast publish path uses.
    bearer = HTTPBearer(
        auto_error=False,
        scheme_name="roomcastApiKey",
        description="an API key of ROOMCAST_API_KEYS: `Authorization: Bearer <key>`",
    )

    async def require_key(
        request: Request,
        _: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        check_api_key(keys, request.headers.get("authorization", ""))

    async def json_body(request: Request, *, optional: bool = False) -> Any:
        raw = await request.body()
        if len(raw) > settings.max_payload_bytes:
            raise PayloadTooLarge(
                f"body is {len(raw)} bytes; the limit is {settings.max_payload_bytes}"
            )
        if optional and not raw.strip():
            return {}
        return _loads(raw)

    api = APIRouter(
        prefix="/api/v1",
        dependencies=[Depends(require_key)],
        route_class=route_class,
        tags=["roomcast"],
    )

    @api.post(
        "/publish",
        response_model=None,
        responses=docs.answers(PublishResult, 400, 409, 413),
        openapi_extra=docs.body(docs.inline(PublishBody.model_json_schema()), docs.PUBLISH_EXAMPLE),
    )
    async def publish(request: Request) -> JSON:
        return await publish_one(rc, await request.body())

    @api.post(
        "/publish/batch",
        response_model=None,
        responses=docs.answers(BatchResults, 400, 413),
        openapi_extra=docs.body(docs.batch_schema(), {"events": [docs.PUBLISH_EXAMPLE]}),
    )
    async def publish_batch(request: Request) -> Response:
        # A JSONResponse, not a dict: FastAPI's generic encoding of 1000 results cost
        # as much as a fifth of the whole request.
        return JSONResponse(await publish_many(rc, await request.body()))

    @api.get(
        "/rooms/{room}/history",
        response_model=None,
        responses=docs.answers(HistoryPageBody, 400),
        openapi_extra={"parameters": docs.HISTORY_PARAMS},
    )
    async def history(request: Request) -> JSON:
        ref = rc.kinds.parse(request.path_params["room"])
        since_seq = _query_int(request, "since_seq", 0, 0, MAX_SEQ)
        limit = _query_int(request, "limit", 100, 1, MAX_HISTORY_LIMIT)
        page = await rc.history.history(ref.name, since_seq, limit)
        return {
            "room": ref.name,
            "epoch": page.epoch,
            "seq": page.head,
            "events": [p.envelope() for p in page.events],
            "complete": page.complete,
        }

    @api.get(
        "/rooms/{room}/presence",
        response_model=None,
        responses=docs.answers(PresenceBody, 400),
        openapi_extra={"parameters": [docs.ROOM]},
    )
    async def presence(request: Request) -> JSON:
        ref = rc.kinds.parse(request.path_params["room"])
        members = await rc.presence.members(ref.name)
        return {"room": ref.name, "count": len(members), "members": [m.to_wire() for m in members]}

    @api.put(
        "/rooms/{room}/binding",
        response_model=None,
        responses=docs.answers(BindingResult, 400, 413),
        openapi_extra={
            "parameters": [docs.ROOM],
            **docs.body(docs.inline(BindingBody.model_json_schema()), {"project_id": "p1"}),
        },
    )
    async def bind(request: Request) -> JSON:
        ref = rc.kinds.parse(request.path_params["room"])
        if not ref.kind.bindable:
            raise InvalidRoom(f"{ref.kind.name} rooms cannot be bound to a project")
        body: BindingBody = _parse(BindingBody, await json_body(request))
        room = await rc.broadcast.bind(ref.name, body.project_id)
        return {"room": room, "project_id": body.project_id}

    @api.get(
        "/rooms/{room}/binding",
        response_model=None,
        responses=docs.answers(BindingResult, 400, 404),
        openapi_extra={"parameters": [docs.ROOM]},
    )
    async def get_binding(request: Request) -> JSON:
        room, project = await rc.broadcast.binding(request.path_params["room"])
        if project is None:
            raise NotFound(f"{room} is not bound to a project")
        return {"room": room, "project_id": project}

    @api.post(
        "/users/{user_id}/disconnect",
        response_model=None,
        responses=docs.answers(OkBody, 400, 413),
        openapi_extra={
            "parameters": [docs.USER],
            **docs.body(
                docs.inline(DisconnectBody.model_json_schema()), {"reason": "api"}, required=False
            ),
        },
    )
    async def disconnect_user(request: Request) -> JSON:
        body = _parse(DisconnectBody, await json_body(request, optional=True))
        await rc.broadcast.disconnect_user(request.path_params["user_id"], body.reason or "api")
        return {"ok": True}

    @api.get("/stats", response_model=None, responses=docs.answers(StatsBody))
    async def stats() -> JSON:
        instance_id = settings.instance_id
        connections = rc.stats.connection_count()
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
                "rooms": rc.stats.room_count(),
                "events_in": rc.stats.events_in(),
                "events_out": rc.stats.events_out(),
                "started_at": rc.stats.started_at_ms,
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

    ops = APIRouter(route_class=route_class, tags=["roomcast"])

    @ops.get("/healthz", response_model=None, responses={200: {"model": HealthBody}})
    async def healthz() -> JSON:
        return {"ok": True, "instance_id": settings.instance_id}

    @ops.get(
        "/readyz",
        response_model=None,
        responses={
            200: {"model": ReadyBody},
            503: {"model": ReadyBody, "description": "not ready, and why"},
        },
    )
    async def readyz() -> Response:
        reason = await rc.readiness.check()
        if reason is None:
            return JSONResponse({"ready": True})
        return JSONResponse({"ready": False, "reason": reason}, status_code=503)

    @ops.get(
        "/metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics() -> Response:
        return PlainTextResponse(rc.metrics.render(), media_type="text/plain; version=0.0.4")

    app.include_router(ops)

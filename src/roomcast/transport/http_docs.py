"""What roomcast's HTTP routes answer, for the OpenAPI document only.

The routes read their own bodies and parameters (see http_api.py), so FastAPI can
infer none of this; these models and helpers describe each request and answer from
the pydantic models of protocol/requests.py, and list the errors a route really gives.
Nothing here validates a request.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from ..domain import JSON
from ..protocol.requests import BatchBody, PublishBody

MAX_HISTORY_LIMIT = 1000
MAX_SEQ = 2**63 - 1


class ErrorDetail(BaseModel):
    """What went wrong: a wire code for programs, a message for people."""

    model_config = ConfigDict(extra="allow")
    code: str
    message: str
    temporary: bool | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class PublishResult(BaseModel):
    id: str
    epoch: str
    seq: int
    # The key used; made by the server over Redis when none was given.
    idempotency_key: str | None = None


class BatchResults(BaseModel):
    results: list[PublishResult | ErrorBody]


class HistoryPageBody(BaseModel):
    room: str
    epoch: str
    seq: int
    events: list[dict[str, Any]]
    complete: bool


class PresenceBody(BaseModel):
    room: str
    count: int
    members: list[dict[str, Any]]


class BindingResult(BaseModel):
    room: str
    project_id: str


class OkBody(BaseModel):
    ok: bool


class InstanceStats(BaseModel):
    instance_id: str
    connections: int
    rooms: int
    events_in: int
    events_out: int
    started_at: int


class InstanceSeen(BaseModel):
    instance_id: str
    connections: int
    last_seen: int


class ClusterStats(BaseModel):
    instances_alive: int
    connections: int
    instances: list[InstanceSeen]


class StatsBody(BaseModel):
    instance: InstanceStats
    cluster: ClusterStats


class HealthBody(BaseModel):
    ok: bool
    instance_id: str


class ReadyBody(BaseModel):
    ready: bool
    reason: str | None = None


ERROR_STATUSES = {
    400: "invalid_room, invalid_type or invalid_payload (request validation included)",
    401: "unauthorized: missing or wrong API key",
    404: "not_found",
    409: "conflict",
    413: "payload_too_large",
    503: (
        "broker_unavailable (temporary: retry) or outcome_unknown"
        " (temporary: retry with the same idempotency_key)"
    ),
}


def answers(model: type[BaseModel], *errors: int) -> dict[int | str, dict[str, Any]]:
    """`responses` of an /api/v1 route: its 200 body and the errors it gives."""
    answers: dict[int | str, dict[str, Any]] = {200: {"model": model}}
    for status in sorted({401, 503, *errors}):
        answers[status] = {"model": ErrorBody, "description": ERROR_STATUSES[status]}
    return answers


def inline(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` written in place (none are recursive).

    Inside an OpenAPI document `#/$defs/...` would point at the document's root.
    """
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


def body(schema: dict[str, Any], example: JSON, *, required: bool = True) -> dict[str, Any]:
    return {
        "requestBody": {
            "required": required,
            "content": {"application/json": {"schema": schema, "example": example}},
        }
    }


PUBLISH_EXAMPLE = {
    "room": "project_p1",
    "type": "project_progress_update",
    "data": {"total": 10, "completed": 3, "percent": 30},
}


def batch_schema() -> dict[str, Any]:
    schema = inline(BatchBody.model_json_schema())
    schema["properties"]["events"]["items"] = inline(PublishBody.model_json_schema())
    schema["properties"]["events"]["description"] = (
        "publish bodies; one that is invalid gets its own error in `results`"
    )
    return schema


def path_param(name: str, description: str, pattern: str, *examples: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
        "examples": {value: {"value": value} for value in examples},
    }


def query_param(name: str, description: str, low: int, high: int, default: int) -> JSON:
    schema = {"type": "integer", "minimum": low, "maximum": high, "default": default}
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
        "examples": {"default": {"value": default}},
    }


ROOM = path_param(
    "room",
    "`<kind prefix><id>`: project_p1, annotation_42, detection_stream_t9, user_u1",
    r"^[a-z][a-z0-9_]*_[A-Za-z0-9_-]{1,64}$",
    "project_p1",
    "annotation_42",
)
USER = path_param("user_id", "the user whose connections close", r"^[^/]{1,256}$", "u1")
HISTORY_PARAMS = [
    ROOM,
    query_param("since_seq", "events with a greater seq", 0, MAX_SEQ, 0),
    query_param("limit", "at most this many events", 1, MAX_HISTORY_LIMIT, 100),
]

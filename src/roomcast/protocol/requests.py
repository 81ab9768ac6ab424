"""Client-to-server and HTTP request bodies.

Room names are plain strings here; whether a name is valid is the rooms layer's
call, so that the error is `invalid_room` and not a schema error.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import to_json

from ..errors import invalid_payload
from .events import Actor

_ID = r"^[A-Za-z0-9_.:-]{1,128}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Since(_Request):
    epoch: str = Field(min_length=1, max_length=128)
    seq: int = Field(ge=0)


class JoinRequest(_Request):
    room: str = Field(max_length=200)
    since: Since | None = None
    token: str | None = Field(default=None, max_length=8192)


class LeaveRequest(_Request):
    room: str = Field(max_length=200)


class ClientPublish(_Request):
    room: str = Field(max_length=200)
    data: dict[str, Any]
    client_event_id: str | None = Field(default=None, pattern=_ID)


class LockRequest(_Request):
    room: str = Field(max_length=200)
    annotation_id: str = Field(pattern=_ID)
    ttl_ms: int | None = Field(default=None, ge=100)


class UnlockRequest(_Request):
    room: str = Field(max_length=200)
    annotation_id: str = Field(pattern=_ID)


class PublishBody(_Request):
    room: str = Field(max_length=200)
    type: str = Field(max_length=64)
    data: dict[str, Any]
    actor: Actor | None = None
    idempotency_key: str | None = Field(default=None, pattern=_ID)


class BatchBody(_Request):
    events: list[dict[str, Any]] = Field(max_length=1000)


class BindingBody(_Request):
    project_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")


class DisconnectBody(_Request):
    reason: str | None = Field(default=None, max_length=256)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads_strict(raw: bytes | str) -> Any:
    """Parse JSON as RFC 8259 defines it: NaN and Infinity are refused (ValueError)."""
    return json.loads(raw, parse_constant=_refuse_constant)


def json_size(value: Any) -> int:
    """Bytes of a value's compact UTF-8 JSON, as a client would send it.

    Raises ValueError for values that are not JSON (NaN, infinities, other types).
    """
    # pydantic's serializer writes the same compact UTF-8 text as the json module,
    # five times faster (it matters for batches of 1000 events), except for
    # non-finite numbers and one-digit negative exponents (1e-7, not 1e-07): where
    # its text may hold either, the json module decides.
    text = to_json(value, inf_nan_mode="constants")
    if b"NaN" in text or b"Infinity" in text or b"e-" in text:
        exact = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        return len(exact.encode())
    return len(text)


def parse_request(model: type[BaseModel], data: Any, *, where: str) -> Any:
    """Validate a request body (HTTP) or event argument (Socket.IO) against its model.

    Raises InvalidPayload naming the first field that does not fit (`where` when the
    error has no field: the whole body or payload).
    """
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise invalid_payload(exc.errors(), where=where) from None

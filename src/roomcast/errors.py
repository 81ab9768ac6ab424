"""The error tree, and the wire code each error carries.

    RoomcastError                    .code, .temporary, .http_status
    ├── AuthError
    │   ├── AuthMissing              auth_missing
    │   ├── AuthInvalid              auth_invalid
    │   └── AuthExpired              auth_expired
    ├── ConnectionLimit              connection_limit
    ├── RateLimited                  rate_limited (temporary)
    ├── ServerDraining               server_draining (temporary)
    ├── InvalidRoom                  invalid_room
    ├── InvalidType                  invalid_type
    ├── InvalidPayload               invalid_payload
    ├── PayloadTooLarge              payload_too_large
    ├── Forbidden                    forbidden
    ├── NotJoined                    not_joined
    ├── TooManyRooms                 too_many_rooms
    ├── Conflict                     conflict (+ current_version)
    ├── Locked                       locked (+ holder, expires_at)
    ├── NotFound                     not_found
    ├── Unauthorized                 unauthorized
    ├── BrokerUnavailable            broker_unavailable (temporary)
    │   └── OutcomeUnknown           outcome_unknown (temporary)
    └── PlatformUnavailable          platform_unavailable (temporary)

The edges (Socket.IO handlers, HTTP routes) turn any of these into a wire reply in
one place each; the core raises them and never formats replies itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar


class RoomcastError(Exception):
    code: ClassVar[str] = "internal"
    temporary: ClassVar[bool] = False
    http_status: ClassVar[int] = 500

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.temporary:
            body["temporary"] = True
        body.update(self.details)
        return body


class AuthError(RoomcastError):
    http_status = 401


class AuthMissing(AuthError):
    code = "auth_missing"


class AuthInvalid(AuthError):
    code = "auth_invalid"


class AuthExpired(AuthError):
    code = "auth_expired"


class ConnectionLimit(RoomcastError):
    code = "connection_limit"
    temporary = True
    http_status = 429


class RateLimited(RoomcastError):
    code = "rate_limited"
    temporary = True
    http_status = 429


class ServerDraining(RoomcastError):
    code = "server_draining"
    temporary = True
    http_status = 503


class InvalidRoom(RoomcastError):
    code = "invalid_room"
    http_status = 400


class InvalidType(RoomcastError):
    code = "invalid_type"
    http_status = 400


class InvalidPayload(RoomcastError):
    code = "invalid_payload"
    http_status = 400


class PayloadTooLarge(RoomcastError):
    code = "payload_too_large"
    http_status = 413


class Forbidden(RoomcastError):
    code = "forbidden"
    http_status = 403


class NotJoined(RoomcastError):
    code = "not_joined"
    http_status = 403


class TooManyRooms(RoomcastError):
    code = "too_many_rooms"
    http_status = 429


class Conflict(RoomcastError):
    code = "conflict"
    http_status = 409


class Locked(RoomcastError):
    code = "locked"
    http_status = 409


class NotFound(RoomcastError):
    code = "not_found"
    http_status = 404


class Unauthorized(RoomcastError):
    code = "unauthorized"
    http_status = 401


class BrokerUnavailable(RoomcastError):
    code = "broker_unavailable"
    temporary = True
    http_status = 503


class OutcomeUnknown(BrokerUnavailable):
    """A write that may or may not have happened: it went to Redis and no answer came.

    A stalled Redis can run the command after the caller gave up, so a plain retry
    could apply it twice; a retry with the same idempotency key (HTTP) or
    client_event_id (Socket.IO) cannot. A subclass of BrokerUnavailable, so every
    place that treats Redis trouble as temporary keeps doing so; only the code differs.
    """

    code = "outcome_unknown"


class PlatformUnavailable(RoomcastError):
    """The platform's join or publish proxy did not answer in time, answered 5xx, or is
    unreachable (SPEC section 10): retry, with the same client_event_id for a publish."""

    code = "platform_unavailable"
    temporary = True
    http_status = 503


def invalid_payload(
    errors: Sequence[Mapping[str, Any]], *, where: str, prefix: str = "", limit: int = 1
) -> InvalidPayload:
    """The one translation of a validation failure into InvalidPayload.

    `errors` is pydantic's `ValidationError.errors()` (FastAPI's RequestValidationError
    has the same shape): the first `limit` of them, each as "<loc>: <msg>", where an
    error with no location is said to be in `where` (the body, the payload, ...).
    """
    shown = list(errors[:limit]) or [{"loc": (), "msg": "invalid request"}]
    parts = [
        f"{'.'.join(str(p) for p in e.get('loc', ())) or where}: {e.get('msg')}" for e in shown
    ]
    return InvalidPayload(prefix + "; ".join(parts))

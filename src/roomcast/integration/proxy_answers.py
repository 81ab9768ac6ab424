"""What a proxy's answer means: allow, allow with new data, or a refusal as an error.

A refusal's `code` reaches the client as is. A code roomcast knows (`conflict`,
`forbidden`, `locked`, ...) becomes that error, so it is counted and answered over
HTTP like roomcast's own; any other becomes a PlatformRefusal, counted under one
label (`platform_refused`) so that a platform's codes cannot grow the metric's
cardinality, but sent with the platform's code. Each field of `details` becomes a
field of the wire error (`details.current_version` -> `error.current_version`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from ..domain import JSON
from ..errors import Forbidden, RoomcastError

# Wire fields an error always sets itself: details may not overwrite them.
_RESERVED = frozenset({"code", "message", "temporary"})


def _subclasses(cls: type[RoomcastError]) -> Iterator[type[RoomcastError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _known_codes() -> Mapping[str, type[RoomcastError]]:
    table: dict[str, type[RoomcastError]] = {}
    for cls in _subclasses(RoomcastError):
        table.setdefault(cls.code, cls)
    table.pop(RoomcastError.code, None)
    table.pop(PlatformRefusal.code, None)  # its own constructor: the platform's code first
    return MappingProxyType(table)


class PlatformRefusal(RoomcastError):
    """The platform refused with a code of its own, carried to the client as is."""

    code = "platform_refused"
    http_status = 403

    def __init__(self, platform_code: str, message: str, **details: Any) -> None:
        super().__init__(message, **details)
        self.platform_code = platform_code

    def to_wire(self) -> dict[str, Any]:
        body = super().to_wire()
        body["code"] = self.platform_code
        return body


@dataclass(frozen=True, slots=True)
class Verdict:
    """An allowing answer; `data` is the replacement data, if the platform sent one."""

    data: JSON | None = None


class BadAnswer(Exception):
    """The answer is not one of SPEC section 10's shapes (a platform fault)."""


def refusal(code: object, message: object, details: object) -> RoomcastError:
    """The error a refusing answer stands for."""
    text = message if isinstance(message, str) and message else "refused by the platform"
    extra = (
        {k: v for k, v in details.items() if isinstance(k, str) and k not in _RESERVED}
        if isinstance(details, dict)
        else {}
    )
    if not isinstance(code, str) or not code:
        return Forbidden(text, **extra)
    known = KNOWN_CODES.get(code)
    if known is not None and not known.temporary:
        return known(text, **extra)
    return PlatformRefusal(code, text, **extra)


def read_answer(answer: object, *, may_replace: bool) -> Verdict:
    """Allow (Verdict) or raise the refusal; BadAnswer for anything else."""
    if not isinstance(answer, dict) or not isinstance(answer.get("allow"), bool):
        raise BadAnswer('the answer is no JSON object with a boolean "allow"')
    if not answer["allow"]:
        raise refusal(answer.get("code"), answer.get("message"), answer.get("details"))
    data = answer.get("data")
    if data is None or not may_replace:
        return Verdict()
    if not isinstance(data, dict):
        raise BadAnswer('"data" of an allowing answer must be a JSON object')
    return Verdict(data)


KNOWN_CODES: Mapping[str, type[RoomcastError]] = _known_codes()

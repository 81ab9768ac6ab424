"""The `X-Roomcast-Signature` header of SPEC section 10, made and checked.

`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`: the timestamp is inside the
MAC, so a captured request cannot be replayed later than `max_age` seconds, and the
body is signed as the exact bytes sent (a receiver must verify before parsing).
Several `v1=` values may be present while a secret is being rotated; any one that
matches is enough.
"""

from __future__ import annotations

import hashlib
import hmac
import time

HEADER = "X-Roomcast-Signature"
MAX_AGE_SECONDS = 300


def _mac(secret: bytes, timestamp: int, body: bytes) -> str:
    return hmac.new(secret, str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, now: float | None = None) -> str:
    """The header's value for `body`, sent at `now` (default: the current time)."""
    timestamp = int(time.time() if now is None else now)
    return f"t={timestamp},v1={_mac(secret, timestamp, body)}"


def verify(
    secret: bytes,
    header: str,
    body: bytes,
    now: float | None = None,
    max_age: float = MAX_AGE_SECONDS,
) -> bool:
    """Whether `header` signs `body` with `secret` and is at most `max_age` seconds old."""
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            macs.append(value)
    if timestamp is None or not macs:
        return False
    current = time.time() if now is None else now
    if abs(current - timestamp) > max_age:
        return False
    expected = _mac(secret, timestamp, body)
    return any(hmac.compare_digest(expected, mac) for mac in macs)

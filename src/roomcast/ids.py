"""Identifiers: sortable event ids (ULID layout) and opaque epochs."""

from __future__ import annotations

import os
import secrets
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_event_id(now_ms: int | None = None) -> str:
    """A 26-character ULID: sorts by creation time, unique without coordination."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = (ms << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_epoch() -> str:
    return secrets.token_hex(4)


def now_ms() -> int:
    return int(time.time() * 1000)

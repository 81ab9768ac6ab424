"""Identifiers: sortable event ids (ULID layout) and opaque epochs.

The one ULID generator: one id or many for one instant (a batch publisher makes
them in bulk, one random read and one base32 pass, because one at a time they cost
as much as encoding the event).
"""

from __future__ import annotations

import base64
import os
import secrets
import time

# RFC 4648 base32 -> Crockford's, the alphabet of ULIDs
_CROCKFORD = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", b"0123456789ABCDEFGHJKMNPQRSTVWXYZ"
)


def new_event_ids(count: int, now_ms: int | None = None) -> list[str]:
    """`count` 26-character ULIDs of one instant: sort by creation time, unique without
    coordination (48 bits of ms, then 80 random bits)."""
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    # 80 bits whose top 50 are two zero bits and the 48-bit time: 10 base32 digits.
    stamp = base64.b32encode((ms << 30).to_bytes(10, "big"))[:10].translate(_CROCKFORD)
    tails = base64.b32encode(os.urandom(10 * count)).translate(_CROCKFORD).decode()
    prefix = stamp.decode()
    return [prefix + tails[i : i + 16] for i in range(0, 16 * count, 16)]


def new_event_id(now_ms: int | None = None) -> str:
    """One ULID (see `new_event_ids`)."""
    return new_event_ids(1, now_ms)[0]


def new_epoch() -> str:
    return secrets.token_hex(4)


def now_ms() -> int:
    return int(time.time() * 1000)

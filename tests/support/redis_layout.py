"""Reading roomcast's Redis keys from outside, by their documented layout.

docs/operations.md (Keys in Redis) documents each key an operator may read; a test
or benchmark that checks what roomcast wrote reads those, not roomcast's internal
`KeyLayout`, so the check stays a check of the documented contract.
"""

from __future__ import annotations


def room_meta_key(prefix: str, room: str) -> str:
    """The room's metadata hash: `epoch`, and `seq`, the room's head."""
    return f"{prefix}:{{{room}}}:meta"


def room_history_key(prefix: str, room: str) -> str:
    """The room's history stream (at most history_size entries)."""
    return f"{prefix}:{{{room}}}:hist"

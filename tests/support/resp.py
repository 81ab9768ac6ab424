"""A minimal synchronous RESP client for the process helpers' readiness checks and queries."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Sequence
from typing import Any

from tests.support.processes import HOST

# A minimal synchronous RESP client: one command per connection, no retries, nothing
# left open. Used for readiness checks and for the few administrative queries here.


class RedisReplyError(Exception):
    """An error reply (`-ERR ...`) from the server."""


def command(
    port: int,
    *args: str | int,
    timeout: float = 1.0,
    host: str = HOST,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Any:
    """Send one command to host:port and return its decoded reply (str, int, list, None).

    With `password`, an AUTH goes first (its error reply is raised); with `tls`, the
    connection is wrapped in that context before anything is sent.
    """
    commands = ([("AUTH", password)] if password is not None else []) + [args]
    payload = b"".join(_encode(c) for c in commands)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
        with sock:
            sock.sendall(payload)
            with sock.makefile("rb") as stream:
                replies = [_read_reply_or_error(stream) for _ in commands]
    for reply in replies:
        if isinstance(reply, RedisReplyError):
            raise reply
    return replies[-1]


def _encode(args: Sequence[str | int]) -> bytes:
    parts = [str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _read_reply_or_error(stream: Any) -> Any:
    """A reply, or its error as a value: every pipelined reply is read before raising."""
    try:
        return _read_reply(stream)
    except RedisReplyError as exc:
        return exc


def _read_reply(stream: Any) -> Any:
    line: bytes = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data: bytes = stream.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply line {line!r}")

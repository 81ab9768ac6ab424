"""The WebSocket upgrade request (RFC 6455, section 4.2), checked and answered.

Pure functions over the request head that `RawWebSocketProtocol` received: what
it refuses, with which HTTP status, and the Sec-WebSocket-Accept of what it takes.
The limits are websockets' (which uvicorn's own protocol applies), so a request
refused by one protocol is refused by the other.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

#: The longest header line, and the most header lines, taken: past either, 431.
MAX_LINE_BYTES = 8192
MAX_HEADERS = 128

_ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

Headers = list[tuple[bytes, bytes]]


class Refusal(Exception):
    """An upgrade request answered with an HTTP error instead of 101."""

    def __init__(self, status: int, detail: str, headers: Sequence[bytes] = ()) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def parse_upgrade(head: bytes) -> tuple[bytes, Headers]:
    """The request target and headers (names lower-cased) of an upgrade request head
    (without its final blank line); Refusal when it is no valid GET."""
    lines = head.split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        raise Refusal(431, "too many headers")
    if any(len(line) > MAX_LINE_BYTES for line in lines):
        raise Refusal(431, "header line too long")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"HTTP/1.1":
        raise Refusal(400, "invalid request line")
    if parts[0] != b"GET":
        raise Refusal(400, "a WebSocket upgrade is a GET")
    headers: Headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise Refusal(400, "invalid header line")
        headers.append((name.lower(), value.strip(b" \t")))
    return parts[1], headers


def accept_key(headers: Headers) -> bytes:
    """The Sec-WebSocket-Accept answering these headers; Refusal when they ask for no
    WebSocket (426) or carry no valid key (400)."""
    key = _check_upgrade(headers)
    return base64.b64encode(hashlib.sha1(key + _ACCEPT_GUID).digest())


def _check_upgrade(headers: list[tuple[bytes, bytes]]) -> bytes:
    """The request's Sec-WebSocket-Key, or the refusal of a request that is no upgrade."""
    connection: list[bytes] = []
    upgrade: list[bytes] = []
    keys: list[bytes] = []
    versions: list[bytes] = []
    for name, value in headers:
        if name == b"connection":
            connection += [token.strip().lower() for token in value.split(b",")]
        elif name == b"upgrade":
            upgrade += [token.strip().lower() for token in value.split(b",")]
        elif name == b"sec-websocket-key":
            keys.append(value)
        elif name == b"sec-websocket-version":
            versions.append(value)
    if b"upgrade" not in connection or b"websocket" not in upgrade:
        raise Refusal(426, "a WebSocket upgrade was expected", [b"upgrade: websocket"])
    if versions != [b"13"]:
        raise Refusal(426, "unsupported WebSocket version", [b"sec-websocket-version: 13"])
    if len(keys) != 1:
        raise Refusal(400, "missing or repeated Sec-WebSocket-Key")
    try:
        valid = len(base64.b64decode(keys[0], validate=True)) == 16
    except binascii.Error:
        valid = False
    if not valid:
        raise Refusal(400, "invalid Sec-WebSocket-Key")
    return keys[0]


def remote_address(info: Any) -> tuple[str, int] | None:
    if isinstance(info, (list, tuple)) and len(info) >= 2:
        return (str(info[0]), int(info[1]))
    return None


def local_address(info: Any) -> tuple[str, int | None] | None:
    if isinstance(info, str):
        return (info, None)  # a Unix socket
    return remote_address(info)


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""

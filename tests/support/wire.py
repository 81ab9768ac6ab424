"""The client side of the Socket.IO wire, by hand: what the raw clients share.

The tests' raw clients (raw_socketio.py: ones that read only when asked) and the
benchmark's subscribers (benchmarks/harness/wsclient.py: ones that cost little per
frame) speak the same handshake and frames; they are built here once.

    client: GET /socket.io/?EIO=4&transport=websocket, Upgrade: websocket
    server: 101, then text frames: "0{open}"
    client: "40" + auth JSON        server: "40{sid}" (or "44{error}")
    client: '42<id>["event",data]'  server: '43<id>[reply]'
    server events: '42["<name>",<arg>]'; server ping "2", client pong "3".

A client frame must be masked (RFC 6455 5.3). A zero key is legal and leaves the
payload as it is, which the benchmark wants; a test may pass a random key.
"""

from __future__ import annotations

import base64
import os

ENGINEIO_WEBSOCKET_PATH = "/socket.io/?EIO=4&transport=websocket"
ENGINEIO_POLLING_PATH = "/socket.io/?EIO=4&transport=polling"
ZERO_MASK = b"\0\0\0\0"


def client_frame(payload: bytes, mask: bytes = ZERO_MASK) -> bytes:
    """One unfragmented, masked client text frame carrying `payload`."""
    size = len(payload)
    if size < 126:
        header = bytes((0x81, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x81, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 0x80 | 127)) + size.to_bytes(8, "big")
    if mask != ZERO_MASK:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return header + mask + payload


def upgrade_request(host: str, port: int) -> bytes:
    """The HTTP/1.1 request that opens an Engine.IO WebSocket (a fresh random key)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {ENGINEIO_WEBSOCKET_PATH} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()

"""Connect to roomcast, join one room and print every event that arrives.

    python examples/listen.py http://127.0.0.1:8000 <token> project_demo
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import socketio


async def main(url: str, token: str, room: str) -> None:
    sio = socketio.AsyncClient()

    @sio.on("*")
    async def on_any(event: str, data: Any = None) -> None:
        print(event, data, flush=True)

    await sio.connect(url, auth={"token": token}, transports=["websocket"])
    print("join", await sio.call("join", {"room": room}), flush=True)
    await sio.wait()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    asyncio.run(main(*sys.argv[1:4]))

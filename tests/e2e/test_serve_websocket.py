"""`roomcast serve`'s WebSocket settings, seen by a client that asks for compression."""

from __future__ import annotations

import aiohttp

from tests.support.instances import RoomcastProcess


async def test_compression_is_off_unless_configured() -> None:
    for setting, expected_off in (("false", True), ("true", False)):
        async with RoomcastProcess({"ROOMCAST_WS_PER_MESSAGE_DEFLATE": setting}) as server:
            url = f"{server.url}/socket.io/?EIO=4&transport=websocket"
            async with (
                aiohttp.ClientSession() as session,
                session.ws_connect(url, compress=15) as ws,  # as browsers ask for it
            ):
                opening = await ws.receive_str()
                assert opening.startswith("0{")  # the Engine.IO open packet
                assert (ws.compress == 0) is expected_off

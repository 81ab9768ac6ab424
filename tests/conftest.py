from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from roomcast.observability.logging import configure_logging
from tests.support.server import WS_PROTOCOLS, RunningServer, running_server


@pytest.fixture(params=sorted(WS_PROTOCOLS), ids=lambda ws: f"ws={ws}")
async def server(request: pytest.FixtureRequest) -> AsyncIterator[RunningServer]:
    """The application under each WebSocket protocol: roomcast's and uvicorn's default."""
    async with running_server(ws=request.param) as running:
        yield running


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    configure_logging("console", "warning")

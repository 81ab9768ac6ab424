from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from roomcast.observability.logging import configure_logging
from tests.support.server import RunningServer, running_server


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server() as running:
        yield running


@pytest.fixture(autouse=True, scope="session")
def _quiet_logs() -> None:
    configure_logging("console", "warning")

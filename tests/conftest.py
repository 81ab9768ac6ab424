from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.server import RunningServer, running_server


@pytest.fixture
async def server() -> AsyncIterator[RunningServer]:
    async with running_server() as running:
        yield running

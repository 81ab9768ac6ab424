"""Real `redis-server` and Redis Sentinel processes on free loopback ports, for tests.

Every process is started through `tests.support.processes.launch`, in its own
temporary directory (its log file, and for a sentinel the configuration file it
rewrites), and stopped by its PID there: SIGTERM, a bounded wait, SIGKILL if it will
not go. Nothing is persisted
(`--save "" --appendonly no`).

A process start has no event to await, so readiness is a bounded loop of PING
attempts (at most 10 s), failing with the tail of the process's log. A failover does
have events: `SentinelCluster.wait_for_new_master` subscribes to `+switch-master` on
every sentinel and wakes on those, not on a timer.

The blocking methods (`start`, `stop`, `kill`, `restart`) have `a`-prefixed async
twins that run them in a worker thread, for use inside a running event loop.

Optionally a server requires a password (`requirepass`, and `masterauth` for when it
is or becomes a replica), a sentinel has its own password and the master's
(`sentinel auth-pass`), and everything speaks TLS only, with certificates that
`TLSFiles.make` issues with `openssl` from a throw-away CA in a temporary directory.
Without those options every process is started exactly as before.

The parts live in small modules, all re-exported here (import them from here):
redis_server.py (`RedisServer`, `SentinelProcess`), sentinel.py (`SentinelCluster`),
resp.py (`command`, `RedisReplyError`), tls_files.py (`TLSFiles`) and processes.py
(free ports, start and stop by PID).

Fixtures: `redis_server` and `sentinel_cluster` (function scope). Use them from a test
module with `from tests.support.redis_procs import redis_server` or register the module
with `pytest_plugins`.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.processes import HOST, ProcessStartError, free_port
from tests.support.redis_server import MASTER_NAME, RedisServer, SentinelProcess
from tests.support.resp import RedisReplyError, command
from tests.support.sentinel import SentinelCluster
from tests.support.tls_files import TLSFiles

__all__ = [
    "HOST",
    "MASTER_NAME",
    "ProcessStartError",
    "RedisReplyError",
    "RedisServer",
    "SentinelCluster",
    "SentinelProcess",
    "TLSFiles",
    "command",
    "free_port",
    "redis_server",
    "sentinel_cluster",
]


# -- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A fresh redis-server on a free port, stopped (by PID) after the test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    """A master, a replica and three sentinels, all stopped (by PID) after the test."""
    cluster = SentinelCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()

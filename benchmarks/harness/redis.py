"""A private redis-server on a free loopback port, for one run of the suite.

It is the tests' `RedisServer` (tests.support.redis_procs): nothing persisted, loopback
only, waited for with PING, stopped by its PID; the run's registry adopts it so that
`stop_all` stops it with the rest. `room_meta_key` names a room's head by the key layout
docs/operations.md documents (tests.support.redis_layout), not roomcast's internals.
"""

from __future__ import annotations

from tests.support.redis_layout import room_meta_key
from tests.support.redis_procs import RedisServer

from .procs import Processes

__all__ = ["room_meta_key", "start_redis"]


def start_redis(procs: Processes) -> tuple[RedisServer, str]:
    """Start redis-server and hand it to `procs`; return it and its URL.

    Raises ProcessStartError (a RuntimeError) when it does not answer PING in time.
    """
    server = RedisServer().start()
    procs.adopt(server)
    return server, server.url

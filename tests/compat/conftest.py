from __future__ import annotations

from tests.support.redis_procs import redis_server, sentinel_cluster

__all__ = ["redis_server", "sentinel_cluster"]  # imported so that pytest registers them here

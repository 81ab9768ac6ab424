"""A real Redis Cluster for tests: three primaries and three replicas on free loopback ports.

Each node is a `RedisServer` (redis_server.py) started with `--cluster-enabled yes`
and its own cluster config file in its own temporary directory, so it is started,
waited for (PING) and stopped by PID exactly like the standalone and Sentinel
servers. The nodes are then joined with `redis-cli --cluster create ...
--cluster-replicas 1 --cluster-yes`, which assigns all 16384 slots to the primaries
and a replica to each.

Joining has no event to await: readiness is a bounded poll of `CLUSTER INFO` on
every node until each says `cluster_state:ok` with all slots assigned (a node that
has not yet heard of the others' slots by gossip would refuse its clients' keys with
CLUSTERDOWN), then until every node sees all six nodes and each replica is linked.

Fixture: `redis_cluster` (module scope: creating a cluster takes a second or more;
tests share it and keep apart by key prefix).
"""

from __future__ import annotations

import random
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any, Self

import pytest

from tests.support.lifecycle import Managed
from tests.support.processes import HOST, SYSTEM_REDIS_PORT, ProcessStartError, wait_until
from tests.support.redis_server import RedisServer
from tests.support.resp import RedisReplyError

REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"
SLOTS = 16384
PRIMARIES = 3
REPLICAS_PER_PRIMARY = 1
JOIN_TIMEOUT = 20.0
# Short enough for a failover test to see a replica promoted in a few seconds; long
# enough that a loaded two-core machine does not mark a busy node as failed.
NODE_TIMEOUT_MS = 2000
BUS_OFFSET = 10000  # a node's cluster bus listens on its port + 10000
# Below the ephemeral range (so a port is not taken by an outgoing connection) and
# low enough for port + 10000 to exist.
PORT_RANGE = (20000, 30000)
START_ATTEMPTS = 5


def cluster_info(node: RedisServer) -> dict[str, str]:
    """`CLUSTER INFO` of one node as a dict."""
    out: dict[str, str] = {}
    for line in str(node.command("CLUSTER", "INFO")).splitlines():
        key, sep, value = line.strip().partition(":")
        if sep:
            out[key] = value
    return out


class RedisCluster(Managed):
    """Six cluster-enabled redis-servers joined into three shards of primary + replica."""

    def __init__(
        self, primaries: int = PRIMARIES, replicas_per_primary: int = REPLICAS_PER_PRIMARY
    ) -> None:
        self.primaries = primaries
        self.replicas_per_primary = replicas_per_primary
        self.nodes: list[RedisServer] = []
        self.started_in: float | None = None  # seconds start() took, join included

    # -- topology -------------------------------------------------------------------------

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [node.address for node in self.nodes]

    @property
    def nodes_setting(self) -> str:
        """The value for ROOMCAST_REDIS_CLUSTER_NODES (every node, `host:port,...`)."""
        return ",".join(f"{host}:{port}" for host, port in self.addresses)

    @property
    def pids(self) -> list[int]:
        return [node.pid for node in self.nodes]

    def node_at(self, port: int) -> RedisServer:
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def shards(self, node: RedisServer | None = None) -> list[dict[str, Any]]:
        """Per shard: its slot ranges, its primary and replicas (`CLUSTER SHARDS`, flattened).

        Each item: {"slots": [(start, end), ...], "primary": port, "replicas": [port, ...]},
        nodes not failed, as `node` (by default the first running one) sees them.
        """
        reply = (node or self._any_node()).command("CLUSTER", "SHARDS")
        out: list[dict[str, Any]] = []
        for shard in reply:
            fields = _pairs(shard)
            flat = [int(x) for x in fields["slots"]]
            ranges = list(zip(flat[::2], flat[1::2], strict=True))
            primary, replicas = None, []
            for member in fields["nodes"]:
                info = _pairs(member)
                # A replica shows "loading" until gossip has carried its replication
                # offset (seconds after it has synced): only a failed node is left out.
                if info.get("health") == "fail":
                    continue
                if info["role"] == "master":
                    primary = int(info["port"])
                else:
                    replicas.append(int(info["port"]))
            out.append({"slots": ranges, "primary": primary, "replicas": replicas})
        return out

    def slot_owner(self, slot: int) -> RedisServer:
        """The primary that serves `slot` now."""
        for shard in self.shards():
            if any(start <= slot <= end for start, end in shard["slots"]):
                return self.node_at(int(shard["primary"]))
        raise LookupError(f"slot {slot} is not served")

    def key_slot(self, key: str) -> int:
        return int(self._any_node().command("CLUSTER", "KEYSLOT", key))

    # -- faults ---------------------------------------------------------------------------

    def failover(self, primary: RedisServer) -> RedisServer:
        """`CLUSTER FAILOVER` on `primary`'s replica; returns it once every node sees it primary."""
        replica = self._replica_of(primary)
        replica.command("CLUSTER", "FAILOVER")
        self._wait_primary(replica, f"CLUSTER FAILOVER to {replica.port}")
        return replica

    def kill_primary(self, primary: RedisServer) -> RedisServer:
        """SIGKILL `primary` by PID; returns its replica once the others have promoted it."""
        replica = self._replica_of(primary)
        primary.kill()
        self._wait_primary(replica, f"promotion of {replica.port} after SIGKILL of {primary.port}")
        return replica

    def move_slot(self, slot: int, target: RedisServer) -> None:
        """Migrate `slot`, keys included, to the primary `target` (what `redis-cli
        --cluster reshard` does per slot: IMPORTING, MIGRATING, MIGRATE, SETSLOT NODE)."""
        source = self.slot_owner(slot)
        source_id, target_id = source.command("CLUSTER", "MYID"), target.command("CLUSTER", "MYID")
        target.command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        source.command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := source.command("CLUSTER", "GETKEYSINSLOT", slot, 100):
            source.command("MIGRATE", HOST, target.port, "", 0, 5000, "KEYS", *keys, timeout=6.0)
        for node in (target, source):
            node.command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        self._wait_owner(slot, target)

    def _wait_owner(self, slot: int, node: RedisServer) -> None:
        def moved() -> bool:
            for other in self.nodes:
                if other.running and not any(
                    s["primary"] == node.port and any(a <= slot <= b for a, b in s["slots"])
                    for s in self.shards(other)
                ):
                    return False
            return True

        wait_until(
            moved,
            alive=lambda: node.running,
            what=f"slot {slot} moving to {node.port}",
            timeout=JOIN_TIMEOUT,
        )

    def _replica_of(self, primary: RedisServer) -> RedisServer:
        for shard in self.shards():
            if shard["primary"] == primary.port:
                return self.node_at(int(shard["replicas"][0]))
        raise LookupError(f"{primary.port} is no primary")

    def _wait_primary(self, node: RedisServer, what: str) -> None:
        def promoted() -> bool:
            for other in self.nodes:
                if not other.running:
                    continue
                if cluster_info(other).get("cluster_state") != "ok":
                    return False
                if not any(s["primary"] == node.port and s["slots"] for s in self.shards(other)):
                    return False
            return True

        wait_until(
            promoted,
            alive=lambda: node.running,
            what=what,
            timeout=JOIN_TIMEOUT,
            details=lambda: node.log_tail(15),
        )

    def _any_node(self) -> RedisServer:
        for node in self.nodes:
            if node.running:
                return node
        raise RuntimeError("no cluster node is running")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        began = time.monotonic()
        try:
            count = self.primaries * (1 + self.replicas_per_primary)
            for _ in range(count):
                self.nodes.append(self._start_node())
            self._join()
            self._wait_ok(began + JOIN_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Stop every node by its PID (SIGTERM, bounded wait, SIGKILL) and remove its files."""
        for node in self.nodes:
            node.stop()

    def teardown(self) -> object:
        self.stop()
        return None

    def _start_node(self) -> RedisServer:
        """A node on a port whose bus port (+10000) is free too; another try if either is taken."""
        for attempt in range(START_ATTEMPTS):
            node = self._node(_cluster_port())
            try:
                return node.start()
            except ProcessStartError:
                if attempt == START_ATTEMPTS - 1 or "already in use" not in node.log_tail():
                    raise
        raise AssertionError("unreachable")

    def _node(self, port: int) -> RedisServer:
        # The config file is written by the node itself, in its own directory (--dir).
        return RedisServer(
            port=port,
            extra_args=[
                "--cluster-enabled", "yes",
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                # The other shards keep serving while one has no primary (the
                # setting docs/operations.md asks of a roomcast cluster).
                "--cluster-require-full-coverage", "no",
            ]
        )  # fmt: skip

    def _join(self) -> None:
        argv = [REDIS_CLI, "--cluster", "create"]
        argv += [f"{host}:{port}" for host, port in self.addresses]
        argv += ["--cluster-replicas", str(self.replicas_per_primary), "--cluster-yes"]
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=JOIN_TIMEOUT, check=False
        )
        if result.returncode != 0:
            raise ProcessStartError(
                f"redis-cli --cluster create failed ({result.returncode}):\n"
                f"{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
            )

    def _wait_ok(self, deadline: float) -> None:
        def ready() -> bool:
            try:
                infos = [cluster_info(node) for node in self.nodes]
            except RedisReplyError:
                return False
            return (
                all(
                    info.get("cluster_state") == "ok"
                    and info.get("cluster_slots_assigned") == str(SLOTS)
                    and info.get("cluster_known_nodes") == str(len(self.nodes))
                    for info in infos
                )
                and self._replicas_linked()
                and all(self._sees_topology(n) for n in self.nodes)
            )

        wait_until(
            ready,
            alive=lambda: all(node.running for node in self.nodes),
            what=f"Redis Cluster on {self.nodes_setting}",
            timeout=max(0.1, deadline - time.monotonic()),
            details=lambda: "\n".join(node.log_tail(8) for node in self.nodes),
        )

    def _sees_topology(self, node: RedisServer) -> bool:
        """`node` knows of each primary's slots and replicas (gossip has reached it)."""
        shards = [shard for shard in self.shards(node) if shard["slots"]]
        return len(shards) == self.primaries and all(
            len(shard["replicas"]) == self.replicas_per_primary for shard in shards
        )

    def _replicas_linked(self) -> bool:
        links = 0
        for node in self.nodes:
            replication = node.info("replication")
            if replication.get("role") == "slave":
                if replication.get("master_link_status") != "up":
                    return False
                links += 1
        return links == self.primaries * self.replicas_per_primary

    def __repr__(self) -> str:
        return f"<RedisCluster {HOST} {[node.port for node in self.nodes]}>"


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def _cluster_port() -> int:
    """A loopback port that, with its bus port, was free a moment ago (never 6379)."""
    while True:
        port = random.randrange(*PORT_RANGE)
        if port != SYSTEM_REDIS_PORT and _bindable(port) and _bindable(port + BUS_OFFSET):
            return port


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[RedisCluster]:
    """A three-shard Redis Cluster (primary + replica each) for a module, stopped by PID."""
    cluster = RedisCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()

"""A Redis Sentinel set for tests: a master, a replica and three sentinels (quorum 2),
with failover helpers that wait on `+switch-master` events (see redis_procs.py)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any, Self

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.support.lifecycle import Managed
from tests.support.processes import (
    HOST,
    ProcessStartError,
    free_port,
)
from tests.support.redis_server import MASTER_NAME, START_TIMEOUT, RedisServer, SentinelProcess
from tests.support.resp import RedisReplyError, command
from tests.support.tls_files import TLSFiles


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class SentinelCluster(Managed):
    """A master, one replica of it, and three sentinels monitoring `mymaster` (quorum 2).

    `master` and `replica` follow the roles: after `wait_for_new_master` has seen a
    failover, `master` is the promoted server and `replica` the old (killed) master.

    `password`: both servers require it (and use it to replicate), and the sentinels
    are told it (`sentinel auth-pass`). `sentinel_password`: the sentinels require it
    of their clients and of each other (`requirepass`, `sentinel sentinel-pass`).
    `tls`: every process listens with TLS only, on certificates of a CA made at start
    (`tls_files`, whose `ca` a client must trust).
    """

    def __init__(
        self,
        master_name: str = MASTER_NAME,
        sentinel_count: int = 3,
        *,
        password: str | None = None,
        sentinel_password: str | None = None,
        tls: bool = False,
    ) -> None:
        self.master_name = master_name
        self.sentinel_count = sentinel_count
        self.password = password
        self.sentinel_password = sentinel_password
        self.tls = tls
        self._tls_dir: Path | None = None
        self.tls_files: TLSFiles | None = None
        self._servers: list[RedisServer] = []
        self._master_index = 0
        self.sentinel_procs: list[SentinelProcess] = []
        self.started_in: float | None = None  # seconds start() took
        self.last_failover_seconds: float | None = None  # kill_master() to new master
        self._killed_at: float | None = None

    # -- topology -------------------------------------------------------------------------

    @property
    def master(self) -> RedisServer:
        return self._servers[self._master_index]

    @property
    def replica(self) -> RedisServer:
        return self._servers[1 - self._master_index]

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        return [s.address for s in self.sentinel_procs]

    @property
    def sentinels_setting(self) -> str:
        """The value for ROOMCAST_REDIS_SENTINELS."""
        return ",".join(f"{host}:{port}" for host, port in self.sentinels)

    def master_addr(self) -> tuple[str, int]:
        """The master's address as the first answering sentinel reports it."""
        errors = []
        for sentinel in self.sentinel_procs:
            try:
                addr = sentinel.master_addr(self.master_name)
            except (OSError, RedisReplyError) as exc:
                errors.append(f"{sentinel.port}: {exc!r}")
                continue
            if addr is not None:
                return addr
        raise RuntimeError(f"no sentinel reports {self.master_name}: {errors}")

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        began = time.monotonic()
        try:
            if self.tls:
                self._tls_dir = Path(tempfile.mkdtemp(prefix="roomcast-tls-"))
                self.tls_files = TLSFiles.make(self._tls_dir)
            secured: dict[str, Any] = {"password": self.password, "tls": self.tls_files}
            master = RedisServer(**secured).start()
            self._servers = [master]
            self._servers.append(RedisServer(replicaof=master.address, **secured).start())
            self._master_index = 0
            self._wait_replica_linked(began + START_TIMEOUT)
            self._start_sentinels()
            self._wait_sentinels_ready(began + START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _start_sentinels(self) -> None:
        ports = [free_port() for _ in range(self.sentinel_count)]
        ids = [secrets.token_hex(20) for _ in ports]
        name = self.master_name
        for index, port in enumerate(ports):
            lines = [
                f"sentinel monitor {name} {HOST} {self.master.port} 2",
                f"sentinel down-after-milliseconds {name} 1000",
                f"sentinel failover-timeout {name} 5000",
                f"sentinel parallel-syncs {name} 1",
                # What Sentinel itself would have written after discovery: the replica
                # and the other sentinels are known from the start, not ~2 s later.
                f"sentinel known-replica {name} {HOST} {self.replica.port}",
            ]
            if self.password is not None:
                lines.append(f"sentinel auth-pass {name} {self.password}")
            if self.sentinel_password is not None:
                lines.append(f"sentinel sentinel-pass {self.sentinel_password}")
            lines += [
                f"sentinel known-sentinel {name} {HOST} {other_port} {ids[other]}"
                for other, other_port in enumerate(ports)
                if other != index
            ]
            sentinel = SentinelProcess(
                lines, port, ids[index], password=self.sentinel_password, tls=self.tls_files
            )
            self.sentinel_procs.append(sentinel)
            sentinel.start()

    def _wait_replica_linked(self, deadline: float) -> None:
        def linked() -> bool:
            return (
                self.master.info("replication").get("connected_slaves") == "1"
                and self.replica.info("replication").get("master_link_status") == "up"
            )

        self._until(linked, deadline, "the replica to link to the master")

    def _wait_sentinels_ready(self, deadline: float) -> None:
        """Every sentinel sees the master, the replica and the other sentinels, linked."""
        others = self.sentinel_count - 1
        name = self.master_name

        def ready() -> bool:
            for sentinel in self.sentinel_procs:
                if sentinel.master_addr(name) != self.master.address:
                    return False
                master = _pairs(sentinel.command("SENTINEL", "master", name))
                if master.get("flags") != "master" or int(master["num-other-sentinels"]) < others:
                    return False
                replicas = [_pairs(r) for r in sentinel.command("SENTINEL", "replicas", name)]
                if not any(
                    r.get("flags") == "slave" and r.get("master-link-status") == "ok"
                    for r in replicas
                ):
                    return False
                peers = [_pairs(s) for s in sentinel.command("SENTINEL", "sentinels", name)]
                if sum(p.get("flags") == "sentinel" for p in peers) < others:
                    return False
            return True

        self._until(ready, deadline, "the sentinels to see the whole topology")

    def _until(self, check: Any, deadline: float, what: str) -> None:
        last: Exception | None = None
        while True:
            try:
                if check():
                    return
            except (OSError, RedisReplyError, KeyError, ValueError) as exc:
                last = exc
            if time.monotonic() >= deadline:
                logs = "\n".join(p.log_tail(10) for p in [*self._servers, *self.sentinel_procs])
                raise ProcessStartError(f"timed out waiting for {what} (last: {last!r})\n{logs}")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop every process by its PID: the sentinels first, so they do not fail over."""
        for proc in [*self.sentinel_procs, *reversed(self._servers)]:
            proc.stop()
        if self._tls_dir is not None:
            shutil.rmtree(self._tls_dir, ignore_errors=True)
            self._tls_dir = None

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    # -- failover -------------------------------------------------------------------------

    def kill_master(self) -> int:
        """SIGKILL the current master (as the sentinels report it); returns its port."""
        host, port = self.master_addr()
        for index, server in enumerate(self._servers):
            if server.port == port:
                self._master_index = index
                self._killed_at = time.monotonic()
                server.kill()
                return port
        raise RuntimeError(f"the sentinels report {host}:{port}, which is not ours")

    def manual_failover(self) -> int:
        """`SENTINEL FAILOVER` on the first sentinel (the old master keeps running, and
        takes writes until the sentinels convert it); returns the old master's port."""
        _, port = self.master_addr()
        self.sentinel_procs[0].command("SENTINEL", "FAILOVER", self.master_name)
        return port

    def replicated(self, timeout_ms: int = 1000) -> bool:
        """`WAIT 1 <timeout_ms>` on the master: the replica has every write so far."""
        return int(self.master.command("WAIT", 1, timeout_ms, timeout=timeout_ms / 1000 + 1)) >= 1

    def cut_replica(self) -> None:
        """Leave the replica behind: it is stopped (SIGSTOP, by PID) and the master
        drops its link, so what is written next never reaches it (`resume_replica`)."""
        self.replica.send_signal(signal.SIGSTOP)
        self.master.command("CLIENT", "KILL", "TYPE", "replica")

    def resume_replica(self) -> None:
        self.replica.send_signal(signal.SIGCONT)

    async def wait_for_new_master(self, old_port: int, timeout: float = 15.0) -> int:
        """Wait until every answering sentinel reports a master other than `old_port`.

        Subscribes to `+switch-master` on each sentinel first, then checks the current
        answers, then sleeps until the next such event: a failover that completed
        before the call is seen at once, and none is missed in between.
        """
        clients: list[aioredis.Redis] = []
        pubsubs: list[Any] = []
        events: asyncio.Queue[object] = asyncio.Queue()
        watchers: list[asyncio.Task[None]] = []
        try:
            for host, port in self.sentinels:
                client = aioredis.Redis(
                    host=host,
                    port=port,
                    socket_timeout=None,
                    socket_connect_timeout=1,
                    retry=Retry(NoBackoff(), 0),
                    decode_responses=True,
                    **self.sentinel_client_kwargs(),
                )
                clients.append(client)
                pubsub = client.pubsub()
                pubsubs.append(pubsub)
                try:
                    await pubsub.subscribe("+switch-master")
                except (OSError, RedisError):
                    continue
                watchers.append(asyncio.create_task(_forward(pubsub, events)))
            async with asyncio.timeout(timeout):
                while True:
                    new_port = await asyncio.to_thread(self._agreed_new_master, old_port)
                    if new_port is not None:
                        break
                    # Woken by the next +switch-master; the 1 s cap is only a backstop
                    # for a state change that publishes nothing.
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(events.get(), 1.0)
        except TimeoutError:
            logs = "\n".join(p.log_tail(15) for p in self.sentinel_procs)
            raise TimeoutError(
                f"no new master for {self.master_name} within {timeout:g} s\n{logs}"
            ) from None
        finally:
            for task in watchers:
                task.cancel()
            for task in watchers:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            for pubsub in pubsubs:
                await pubsub.aclose()
            for client in clients:
                await client.aclose()
        for index, server in enumerate(self._servers):
            if server.port == new_port:
                self._master_index = index
        if self._killed_at is not None:
            self.last_failover_seconds = time.monotonic() - self._killed_at
        return new_port

    def sentinel_client_kwargs(self) -> dict[str, Any]:
        """redis-py keyword arguments that reach a sentinel (password, TLS), if any."""
        kwargs: dict[str, Any] = {}
        if self.sentinel_password is not None:
            kwargs["password"] = self.sentinel_password
        if self.tls_files is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls_files.ca))
        return kwargs

    def server_client_kwargs(self) -> dict[str, Any]:
        """redis-py keyword arguments that reach the master or replica (password, TLS)."""
        kwargs: dict[str, Any] = {}
        if self.password is not None:
            kwargs["password"] = self.password
        if self.tls_files is not None:
            kwargs.update(ssl=True, ssl_ca_certs=str(self.tls_files.ca))
        return kwargs

    def _agreed_new_master(self, old_port: int) -> int | None:
        answers = set()
        for sentinel in self.sentinel_procs:
            try:
                addr = sentinel.master_addr(self.master_name)
            except (OSError, RedisReplyError):
                continue  # a sentinel that is down has no say
            if addr is None:
                return None
            answers.add(addr[1])
        if len(answers) != 1 or old_port in answers:
            return None
        (port,) = answers
        servers = [s for s in self._servers if s.port == port]
        try:
            role = servers[0].command("ROLE") if servers else command(port, "ROLE")
        except (OSError, RedisReplyError):
            return None
        return port if role and role[0] == "master" else None

    def teardown(self) -> object:
        self.stop()
        return None


async def _forward(pubsub: Any, events: asyncio.Queue[object]) -> None:
    async for message in pubsub.listen():
        if message.get("type") == "message":
            events.put_nowait(message)

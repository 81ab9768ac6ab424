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

Fixtures: `redis_server` and `sentinel_cluster` (function scope). Use them from a test
module with `from tests.support.redis_procs import redis_server` or register the module
with `pytest_plugins`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from tests.support.lifecycle import Managed
from tests.support.processes import (
    HOST,
    STOP_TIMEOUT,
    ProcessStartError,
    free_port,
    launch,
    stop_pid,
)
from tests.support.processes import tail as _tail

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

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
START_TIMEOUT = 10.0
MASTER_NAME = "mymaster"


# A minimal synchronous RESP client: one command per connection, no retries, nothing
# left open. Used for readiness checks and for the few administrative queries here.


class RedisReplyError(Exception):
    """An error reply (`-ERR ...`) from the server."""


def command(
    port: int,
    *args: str | int,
    timeout: float = 1.0,
    host: str = HOST,
    password: str | None = None,
    tls: ssl.SSLContext | None = None,
) -> Any:
    """Send one command to host:port and return its decoded reply (str, int, list, None).

    With `password`, an AUTH goes first (its error reply is raised); with `tls`, the
    connection is wrapped in that context before anything is sent.
    """
    commands = ([("AUTH", password)] if password is not None else []) + [args]
    payload = b"".join(_encode(c) for c in commands)
    with socket.create_connection((host, port), timeout=timeout) as raw:
        sock = raw if tls is None else tls.wrap_socket(raw, server_hostname=host)
        with sock:
            sock.sendall(payload)
            with sock.makefile("rb") as stream:
                replies = [_read_reply_or_error(stream) for _ in commands]
    for reply in replies:
        if isinstance(reply, RedisReplyError):
            raise reply
    return replies[-1]


def _encode(args: Sequence[str | int]) -> bytes:
    parts = [str(a).encode() for a in args]
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _read_reply_or_error(stream: Any) -> Any:
    """A reply, or its error as a value: every pipelined reply is read before raising."""
    try:
        return _read_reply(stream)
    except RedisReplyError as exc:
        return exc


def _read_reply(stream: Any) -> Any:
    line: bytes = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("connection closed mid-reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode())
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data: bytes = stream.read(size + 2)
        return data[:-2].decode()
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected reply line {line!r}")


@dataclass(frozen=True)
class TLSFiles:
    """A throw-away CA and one certificate it signed for 127.0.0.1, in PEM files.

    Every server and sentinel of a test uses the one certificate (as its server and
    its client certificate: replicas and sentinels connect out over TLS too); clients
    trust `ca` only.
    """

    ca: Path
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path) -> TLSFiles:
        """Issue the CA and the certificate into `directory` with `openssl` (EC P-256)."""
        files = cls(directory / "ca.crt", directory / "server.crt", directory / "server.key")
        ca_key, csr = directory / "ca.key", directory / "server.csr"
        extensions = directory / "server.ext"
        extensions.write_text(
            "basicConstraints=CA:FALSE\n"
            "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "keyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth,clientAuth\n"
            "subjectKeyIdentifier=hash\n"
            "authorityKeyIdentifier=keyid\n"
        )
        new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        steps = [
            [OPENSSL, "req", "-x509", *new_key, "-keyout", str(ca_key), "-out", str(files.ca),
             "-days", "2", "-subj", "/CN=roomcast-test-ca"],
            [OPENSSL, "req", *new_key, "-keyout", str(files.key), "-out", str(csr),
             "-subj", "/CN=127.0.0.1"],
            [OPENSSL, "x509", "-req", "-in", str(csr), "-CA", str(files.ca), "-CAkey",
             str(ca_key), "-CAcreateserial", "-out", str(files.cert), "-days", "2",
             "-extfile", str(extensions)],
        ]  # fmt: skip
        for argv in steps:
            done = subprocess.run(argv, capture_output=True, timeout=30, check=False)
            if done.returncode != 0:
                raise ProcessStartError(f"{' '.join(argv[:3])} failed: {done.stderr.decode()}")
        return files

    def client_context(self) -> ssl.SSLContext:
        """What a client that trusts only this CA uses (hostname 127.0.0.1 is checked)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def server_config(self) -> list[tuple[str, str]]:
        """The TLS directives of a server or sentinel, as (name, value) pairs."""
        return [
            ("tls-cert-file", str(self.cert)),
            ("tls-key-file", str(self.key)),
            ("tls-ca-cert-file", str(self.ca)),
            ("tls-auth-clients", "no"),
            ("tls-replication", "yes"),  # to the master, and a sentinel to every server
        ]


def _pairs(flat: list[Any]) -> dict[str, Any]:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class _RedisProcess(Managed):
    """One redis-server process (a server or a sentinel) in its own temporary directory."""

    kind = "redis-server"

    def __init__(
        self,
        port: int | None = None,
        *,
        password: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        self._fixed_port = port is not None
        self._port = port if port is not None else 0
        self.password = password  # what a client must AUTH with; None: no AUTH
        self.tls = tls  # TLS only (no plain port) when set
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None  # seconds the last start took

    # -- what a subclass supplies -------------------------------------------------------

    def _argv(self, directory: Path) -> list[str]:
        raise NotImplementedError

    # -- properties -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def host(self) -> str:
        return HOST

    @property
    def address(self) -> tuple[str, int]:
        return (HOST, self._port)

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.kind} has not been started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def directory(self) -> Path:
        if self._dir is None:
            raise RuntimeError(f"{self.kind} has not been started")
        return self._dir

    @property
    def logfile(self) -> Path:
        return self.directory / "redis.log"

    def command(self, *args: str | int, timeout: float = 1.0) -> Any:
        """`command()` to this process, with its password and TLS."""
        context = None if self.tls is None else self.tls.client_context()
        return command(self._port, *args, timeout=timeout, password=self.password, tls=context)

    def log_tail(self, lines: int = 25) -> str:
        if self._dir is None:
            return "(not started)"
        return (
            f"--- {self.logfile} ---\n{_tail(self.logfile, lines)}\n"
            f"--- stdout/stderr ---\n{_tail(self._dir / 'stdio.log', lines)}"
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start on a free port (or the given one) and wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"{self.kind} on port {self._port} is already running")
        self._ensure_dir()
        attempts = 1 if self._fixed_port else 3  # another process may take a free port
        for attempt in range(attempts):
            if not self._fixed_port:
                self._port = free_port()
            try:
                self._launch()
                return self
            except ProcessStartError:
                if attempt == attempts - 1 or "Address already in use" not in self.log_tail():
                    self._cleanup_dir()
                    raise
        raise AssertionError("unreachable")

    def restart(self) -> Self:
        """Start again on the same port (after kill() or stop(); stops it first if needed)."""
        if self._port == 0:
            raise RuntimeError(f"{self.kind} was never started")
        if self.running:
            self.stop(remove_files=False)
        self._ensure_dir()
        try:
            self._launch()
        except BaseException:
            self._cleanup_dir()
            raise
        return self

    def stop(self, *, remove_files: bool = True) -> int | None:
        """SIGTERM by PID, wait, SIGKILL if it will not go; returns the exit status."""
        code = None if self._proc is None else stop_pid(self._proc, signal.SIGTERM, STOP_TIMEOUT)
        if remove_files:
            self._cleanup_dir()
        return code

    def kill(self) -> int | None:
        """SIGKILL by PID and wait (files are kept, so restart() works)."""
        if self._proc is None:
            return None
        return stop_pid(self._proc, signal.SIGKILL, STOP_TIMEOUT)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process exits (by itself or by a signal); its exit status."""
        if self._proc is None:
            raise RuntimeError(f"{self.kind} has not been started")
        return self._proc.wait(timeout)

    def send_signal(self, sig: int) -> None:
        """Signal the process by its PID (SIGSTOP and SIGCONT for a stall)."""
        if self._proc is None or self._proc.poll() is not None:
            raise RuntimeError(f"{self.kind} on port {self._port} is not running")
        self._proc.send_signal(sig)

    async def arestart(self) -> Self:
        return await asyncio.to_thread(self.restart)

    async def astop(self) -> int | None:
        return await asyncio.to_thread(self.stop)

    async def akill(self) -> int | None:
        return await asyncio.to_thread(self.kill)

    def _launch(self) -> None:
        directory = self.directory
        began = time.monotonic()
        with (directory / "stdio.log").open("ab") as stdio:
            self._proc = launch(self._argv(directory), cwd=directory, stdout=stdio)
        try:
            self._wait_ready(began + START_TIMEOUT)
        except BaseException:
            stop_pid(self._proc, signal.SIGKILL, STOP_TIMEOUT)
            raise
        self.started_in = time.monotonic() - began

    def _wait_ready(self, deadline: float) -> None:
        assert self._proc is not None
        while True:
            if self._proc.poll() is not None:
                raise ProcessStartError(
                    f"{self.kind} on port {self._port} exited with {self._proc.returncode}\n"
                    + self.log_tail()
                )
            try:
                if self.command("PING", timeout=0.5) == "PONG":
                    return
            except (OSError, RedisReplyError):
                pass
            if time.monotonic() >= deadline:
                raise ProcessStartError(
                    f"{self.kind} on port {self._port} did not answer PING within "
                    f"{START_TIMEOUT:g} s\n" + self.log_tail()
                )
            time.sleep(0.02)

    def _ensure_dir(self) -> None:
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix=f"roomcast-{self.kind}-"))

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def teardown(self) -> object:
        return self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<{type(self).__name__} {HOST}:{self._port} {state}>"


class RedisServer(_RedisProcess):
    """A redis-server on a free loopback port; `replicaof=(host, port)` makes a replica."""

    def __init__(
        self,
        *,
        replicaof: tuple[str, int] | None = None,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        password: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        super().__init__(port, password=password, tls=tls)
        self.replicaof = replicaof
        self.extra_args = list(extra_args)

    @property
    def url(self) -> str:
        """redis://host:port/0; with a password in it, and rediss:// with TLS."""
        scheme = "redis" if self.tls is None else "rediss"
        auth = "" if self.password is None else f":{self.password}@"
        return f"{scheme}://{auth}{HOST}:{self._port}/0"

    def _argv(self, directory: Path) -> list[str]:
        argv = [
            REDIS_SERVER,
            "--bind", HOST,
            "--port", str(self._port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(directory),
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(directory / "redis.log"),
            # SIGTERM must not wait (up to 10 s by default) for lagging replicas.
            "--shutdown-timeout", "0",
            # A replica's full sync starts at once instead of after the default 5 s.
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip
        if self.password is not None:
            # masterauth too: after a failover a master may become a replica.
            argv += ["--requirepass", self.password, "--masterauth", self.password]
        if self.tls is not None:
            argv[argv.index("--port") + 1] = "0"  # TLS only: no plaintext port at all
            argv += ["--tls-port", str(self._port)]
            for name, value in self.tls.server_config():
                argv += [f"--{name}", value]
        if self.replicaof is not None:
            argv += ["--replicaof", self.replicaof[0], str(self.replicaof[1])]
        return argv + self.extra_args

    def info(self, section: str = "") -> dict[str, str]:
        """`INFO [section]` as a dict (synchronous, one short-lived connection)."""
        text = self.command("INFO", *([section] if section else []))
        out: dict[str, str] = {}
        for line in str(text).splitlines():
            key, sep, value = line.partition(":")
            if sep and not key.startswith("#"):
                out[key] = value
        return out

    def client(self, **kwargs: Any) -> aioredis.Redis:
        """A redis.asyncio client for this server (close it with `await client.aclose()`)."""
        if self.tls is not None:
            kwargs.setdefault("ssl_ca_certs", str(self.tls.ca))
        return aioredis.Redis.from_url(self.url, **kwargs)


class SentinelProcess(_RedisProcess):
    """One `redis-server <sentinel.conf> --sentinel`, with its own writable config file."""

    kind = "redis-sentinel"

    def __init__(
        self,
        config_lines: Sequence[str],
        port: int,
        myid: str | None = None,
        *,
        password: str | None = None,
        tls: TLSFiles | None = None,
    ) -> None:
        super().__init__(port, password=password, tls=tls)
        self.config_lines = list(config_lines)
        self.myid = myid or secrets.token_hex(20)

    @property
    def config_file(self) -> Path:
        return self.directory / "sentinel.conf"

    def _argv(self, directory: Path) -> list[str]:
        if not self.config_file.exists():  # on restart, Sentinel's own rewrite is kept
            header = [
                f"port {self._port}",
                f"bind {HOST}",
                "protected-mode no",
                "daemonize no",
                f"dir {directory}",
                f"logfile {directory / 'redis.log'}",
                "sentinel resolve-hostnames no",
                f"sentinel myid {self.myid}",
            ]
            if self.password is not None:
                header.append(f"requirepass {self.password}")
            if self.tls is not None:
                header[0] = "port 0"
                header.append(f"tls-port {self._port}")
                header += [f"{name} {value}" for name, value in self.tls.server_config()]
            self.config_file.write_text("\n".join(header + self.config_lines) + "\n")
        return [REDIS_SERVER, str(self.config_file), "--sentinel"]

    def master_addr(self, name: str = MASTER_NAME) -> tuple[str, int] | None:
        reply = self.command("SENTINEL", "get-master-addr-by-name", name)
        return None if reply is None else (str(reply[0]), int(reply[1]))


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

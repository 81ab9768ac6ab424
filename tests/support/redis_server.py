"""One redis-server process, as a server or replica (`RedisServer`) or a sentinel
(`SentinelProcess`), in its own temporary directory, started and stopped by PID
through tests.support.processes and waited for with PING (see redis_procs.py)."""

from __future__ import annotations

import asyncio
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Self

import redis.asyncio as aioredis

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
from tests.support.resp import RedisReplyError, command
from tests.support.tls_files import TLSFiles

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
START_TIMEOUT = 10.0
MASTER_NAME = "mymaster"


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

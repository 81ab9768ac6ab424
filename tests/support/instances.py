"""The roomcast server run as a separate OS process, for multi-instance and SIGKILL tests.

`RoomcastProcess(env)` runs `python -m roomcast.cli serve` on a free loopback port (or
the given one) with the test secret and API key, and waits until GET /healthz answers
200: a process start has no event to await, so that is a bounded loop (at most 15 s)
failing with the tail of the process's stderr. It is stopped by its PID: `terminate()`
(SIGTERM, the draining shutdown) or `kill()` (SIGKILL).

The blocking methods have `a`-prefixed async twins that run them in a worker thread,
so a test's event loop (and the clients on it) keeps running meanwhile; `async with`
uses those.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import httpx

from roomcast.auth.tokens import mint_access_token
from tests.support.credentials import API_KEY, SECRET
from tests.support.lifecycle import Managed
from tests.support.processes import (
    HOST,
    ProcessStartError,
    free_port,
    launch,
    stop_pid,
    tail,
)

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0  # the draining shutdown's bound


class RoomcastProcess(Managed):
    """`roomcast serve` in a child process; the given env is added over the defaults."""

    def __init__(self, env: Mapping[str, str] | None = None, port: int | None = None) -> None:
        self.port = port if port is not None else free_port()
        self.env: dict[str, str] = {
            k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")
        }
        self.env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "ROOMCAST_PORT": str(self.port),
                "ROOMCAST_HOST": HOST,
                "ROOMCAST_JWT_SECRET": SECRET,
                "ROOMCAST_API_KEYS": API_KEY,
                "ROOMCAST_LOG_LEVEL": "warning",
                "ROOMCAST_CONNECT_RATE_PER_ADDRESS": "0",
            }
        )
        self.env.update(env or {})
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None  # seconds until /healthz answered 200

    # -- properties -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError("roomcast has not been started")
        return self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def secret(self) -> str:
        return self.env["ROOMCAST_JWT_SECRET"]

    @property
    def api_key(self) -> str:
        return self.env["ROOMCAST_API_KEYS"].split(",")[0].strip()

    @property
    def api_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def token(self, user: str = "u1", **claims: Any) -> str:
        """An access token this process accepts (HS256 with its secret)."""
        return mint_access_token(self.secret, user, **claims)

    def output(self, lines: int = 40) -> str:
        """The tail of the process's stderr and stdout."""
        if self._dir is None:
            return "(not started)"
        return "\n".join(
            f"--- {name} ---\n{tail(self._dir / name, lines)}" for name in ("stderr", "stdout")
        )

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Launch and wait until GET /healthz answers 200 (at most 15 s)."""
        if self.running:
            raise RuntimeError(f"roomcast on port {self.port} is already running")
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="roomcast-process-"))
        began = time.monotonic()
        with (
            (self._dir / "stdout").open("ab") as stdout,
            (self._dir / "stderr").open("ab") as stderr,
        ):
            self._proc = launch(
                [sys.executable, "-m", "roomcast.cli", "serve"],
                cwd=REPO,
                env=self.env,
                stdout=stdout,
                stderr=stderr,
            )
        try:
            self._wait_healthy(began + START_TIMEOUT)
        except BaseException:
            self.kill()
            raise
        self.started_in = time.monotonic() - began
        return self

    def _wait_healthy(self, deadline: float) -> None:
        assert self._proc is not None
        last: object = None
        with httpx.Client(base_url=self.url, timeout=1.0) as http:
            while True:
                if self._proc.poll() is not None:
                    raise ProcessStartError(
                        f"roomcast on port {self.port} exited with {self._proc.returncode}\n"
                        + self.output()
                    )
                try:
                    response = http.get("/healthz")
                    if response.status_code == 200:
                        return
                    last = response.status_code
                except httpx.TransportError as exc:
                    last = exc
                if time.monotonic() >= deadline:
                    raise ProcessStartError(
                        f"roomcast on port {self.port} was not healthy within "
                        f"{START_TIMEOUT:g} s (last: {last!r})\n" + self.output()
                    )
                time.sleep(0.05)

    def terminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        """SIGTERM by PID and wait for the draining shutdown; SIGKILL after `timeout`.

        Returns the exit status; raises TimeoutError (after the SIGKILL) if it had to.
        """
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                stop_pid(self._proc, signal.SIGKILL)
                raise TimeoutError(
                    f"roomcast did not exit within {timeout:g} s of SIGTERM\n" + self.output()
                ) from None
        return stop_pid(self._proc)

    def kill(self) -> int | None:
        """SIGKILL by PID and wait."""
        if self._proc is None:
            return None
        return stop_pid(self._proc, signal.SIGKILL)

    def wait(self, timeout: float | None = None) -> int:
        """Block until the process exits (by itself or by a signal); its exit status."""
        if self._proc is None:
            raise RuntimeError("roomcast has not been started")
        return self._proc.wait(timeout)

    def close(self) -> None:
        """Stop it if it still runs (SIGTERM, then SIGKILL) and remove its files."""
        try:
            # On TimeoutError it has been killed; a test that cares calls terminate().
            with contextlib.suppress(TimeoutError):
                self.terminate()
        finally:
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    async def aterminate(self, timeout: float = STOP_TIMEOUT) -> int | None:
        return await asyncio.to_thread(self.terminate, timeout)

    async def akill(self) -> int | None:
        return await asyncio.to_thread(self.kill)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    # -- context managers ------------------------------------------------------------------

    def teardown(self) -> object:
        self.close()
        return None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RoomcastProcess {self.url} {state}>"

"""A real `roomcast serve --demo` process and Debian's chromium, for the demo's browser test.

The browser is /usr/bin/chromium driven by Playwright (the `playwright` package from
PyPI, never `playwright install`); the Makefile installs both when missing. Without
them the tests are skipped, with the command that installs them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
HOST = "127.0.0.1"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class DemoServer:
    """`roomcast serve --demo` in a child process, stopped by its PID."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.api_key = "demo-test-" + secrets.token_urlsafe(12)
        self.dir = Path(tempfile.mkdtemp(prefix="roomcast-demo-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
        self.env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "ROOMCAST_PORT": str(self.port),
                "ROOMCAST_HOST": HOST,
                "ROOMCAST_JWT_SECRET": secrets.token_urlsafe(32),
                "ROOMCAST_API_KEYS": self.api_key,
                "ROOMCAST_LOG_LEVEL": "warning",
                "ROOMCAST_CONNECT_RATE_PER_ADDRESS": "0",
            }
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        with (self.dir / "out").open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roomcast.cli", "serve", "--demo"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(base_url=self.url, timeout=1.0) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"roomcast serve --demo exited:\n{self.output()}")
                try:
                    if http.get("/healthz").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"roomcast serve --demo not healthy:\n{self.output()}")
                time.sleep(0.05)  # polling a process that is starting: there is no event

    def output(self) -> str:
        path = self.dir / "out"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""

    def presence(self, room: str) -> list[str]:
        headers = {"Authorization": f"Bearer {self.api_key}"}
        answer = httpx.get(f"{self.url}/api/v1/rooms/{room}/presence", headers=headers)
        answer.raise_for_status()
        return sorted(m["user_id"] for m in answer.json()["members"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # by PID: SIGTERM, the draining shutdown
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def demo_server() -> Iterator[DemoServer]:
    server = DemoServer()
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="needs playwright (make test installs the dev extra)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(f"needs {CHROMIUM}: apt-get install -y chromium (make test does)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

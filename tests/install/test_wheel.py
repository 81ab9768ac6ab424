"""The installed wheel works: `roomcast serve` over Redis, and a worker publishing.

One venv per test session (module-scoped fixture): building the wheel and installing
its dependencies from the package index is the slow part. The server is the venv's
console script in a child process over a real redis-server; the worker is a script
run by the venv's python. Neither can import roomcast from the checkout.

Deselect with `-m "not install"`.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from roomcast.auth.tokens import mint_access_token
from tests.install.wheel_venv import InstalledWheel, build_and_install, isolated_env, runtime_files
from tests.support.redis_procs import HOST, RedisServer, free_port, redis_server
from tests.support.server import API_KEY, SECRET, Client

__all__ = ["redis_server"]  # the fixture, imported for pytest

pytestmark = [pytest.mark.install, pytest.mark.timeout(900)]

READY_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0
WORKER_TIMEOUT = 60.0
ROOM = "project_p1"

# Run by the fresh venv's python: one event through EventBroadcastService over Redis.
WORKER = """
import asyncio, json, sys

import roomcast
from roomcast import Settings
from roomcast.broadcast.service import EventBroadcastService


async def main() -> None:
    settings = Settings(redis_url=sys.argv[1])
    async with EventBroadcastService.from_settings(settings) as service:
        published = await service.project_progress("p1", completed=1, total=10)
    print(json.dumps({"file": roomcast.__file__, **published._asdict()}))


asyncio.run(main())
"""


@pytest.fixture(scope="module")
def installed() -> Iterator[InstalledWheel]:
    workdir = Path(tempfile.mkdtemp(prefix="roomcast-wheel-"))
    try:
        result = build_and_install(workdir)
        print(
            f"\nwheel built in {result.build_seconds:.1f} s, "
            f"venv with its dependencies in {result.install_seconds:.1f} s"
        )
        yield result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


class Serve:
    """The venv's `roomcast serve` in a child process, stopped by its PID."""

    def __init__(
        self, installed: InstalledWheel, redis_url: str | None, logdir: Path, *flags: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.logdir = logdir
        env = isolated_env()
        env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "ROOMCAST_HOST": HOST,
                "ROOMCAST_PORT": str(self.port),
                "ROOMCAST_JWT_SECRET": SECRET,
                "ROOMCAST_API_KEYS": API_KEY,
                "ROOMCAST_LOG_LEVEL": "warning",
            }
        )
        if redis_url is not None:
            env["ROOMCAST_REDIS_URL"] = redis_url
        with (logdir / "serve.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [str(installed.roomcast), "serve", *flags],
                cwd=logdir,  # not the checkout: nothing there may be imported
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return (self.logdir / "serve.log").read_text(errors="replace")[-4000:]

    async def wait_ready(self) -> None:
        """A process start has no event to await: poll /readyz, bounded."""
        deadline = time.monotonic() + READY_TIMEOUT
        last: object = None
        async with httpx.AsyncClient(base_url=self.url, timeout=1.0) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"roomcast serve exited with {self.proc.returncode}:\n" + self.output()
                    )
                try:
                    response = await http.get("/readyz")
                    if response.status_code == 200:
                        return
                    last = response.status_code
                except httpx.TransportError as exc:
                    last = exc
                await asyncio.sleep(0.05)
        pytest.fail(
            f"/readyz not 200 within {READY_TIMEOUT:g} s (last: {last!r}):\n" + self.output()
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)


async def run_worker(installed: InstalledWheel, redis_url: str, workdir: Path) -> dict[str, object]:
    script = workdir / "worker.py"
    script.write_text(WORKER)
    proc = await asyncio.create_subprocess_exec(
        str(installed.python),
        str(script),
        redis_url,
        cwd=workdir,
        env=isolated_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(WORKER_TIMEOUT):
            out, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode(errors="replace")
    printed: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return printed


def test_wheel_carries_every_file_read_at_run_time(installed: InstalledWheel) -> None:
    wanted = runtime_files()
    assert any(name.startswith("roomcast/brokers/lua/") for name in wanted)
    assert "roomcast/static/demo.html" in wanted
    missing = sorted(set(wanted) - installed.members())
    assert not missing, f"the wheel lacks {missing}"


async def test_installed_serve_and_worker_over_redis(
    installed: InstalledWheel, redis_server: RedisServer
) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="roomcast-wheel-run-"))
    serve = Serve(installed, redis_server.url, workdir)
    client = Client()
    try:
        await serve.wait_ready()
        await client.connect(serve.url, mint_access_token(SECRET, "u1", projects=["p1"]))
        ack = await client.call("join", {"room": ROOM})
        assert ack["ok"] is True and ack["seq"] == 0, ack

        worker = await run_worker(installed, redis_server.url, workdir)
        assert str(worker["file"]).startswith(str(installed.venv)), worker
        assert worker["epoch"] == ack["epoch"] and worker["seq"] == 1, worker
        assert isinstance(worker["id"], str) and worker["id"], worker

        async with httpx.AsyncClient(
            base_url=serve.url, headers={"Authorization": f"Bearer {API_KEY}"}
        ) as http:
            response = await http.post(
                "/api/v1/publish",
                json={
                    "room": ROOM,
                    "type": "project_progress_update",
                    "data": {"total": 10, "completed": 2, "percent": 20},
                },
            )
        assert response.status_code == 200, response.text
        assert response.json()["seq"] == 2

        first = await client.next("project_progress_update", timeout=10)
        second = await client.next("project_progress_update", timeout=10)
        assert (first["seq"], second["seq"]) == (1, 2), (first, second)
        assert first["id"] == worker["id"] and first["data"]["completed"] == 1
        assert second["data"]["completed"] == 2
        assert first["epoch"] == second["epoch"] == ack["epoch"]
    finally:
        await client.close()
        await asyncio.to_thread(serve.stop)
        shutil.rmtree(workdir, ignore_errors=True)
    assert serve.proc.returncode == 0, serve.output()


async def test_installed_demo_page_has_its_client_libraries(installed: InstalledWheel) -> None:
    """`roomcast serve --demo` from the wheel serves the page and both JS libraries."""
    workdir = Path(tempfile.mkdtemp(prefix="roomcast-wheel-demo-"))
    serve = Serve(installed, None, workdir, "--demo")
    try:
        await serve.wait_ready()
        async with httpx.AsyncClient(base_url=serve.url, timeout=5.0) as http:
            page = await http.get("/demo")
            assert page.status_code == 200, page.text[:300]
            found = re.search(r'<script type="importmap">(.*?)</script>', page.text, re.S)
            assert found is not None, page.text[:300]
            imports: dict[str, str] = json.loads(found.group(1))["imports"]
            assert set(imports) >= {"roomcast-client", "socket.io-client"}, imports
            for name, url in imports.items():
                module = await http.get(url)
                assert module.status_code == 200, (name, url, module.status_code)
                assert "javascript" in module.headers["content-type"], (name, module.headers)
                base = url.rsplit("/", 1)[0]
                for relative in re.findall(r'from "\./([^"]+)"', module.text):
                    imported = await http.get(f"{base}/{relative}")
                    assert imported.status_code == 200, (name, relative, imported.status_code)
    finally:
        serve.stop()
        shutil.rmtree(workdir, ignore_errors=True)

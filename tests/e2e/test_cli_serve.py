"""The command line, run as a real process: `roomcast serve` (refusal without a secret,
`--demo`, draining on SIGTERM, `--app` with an application of one's own) and
`roomcast token`.

Every process is started with subprocess.Popen and stopped by its PID in `finally`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import httpx
import jwt
import pytest

from roomcast.auth.tokens import mint_access_token
from tests.support.server import Client

REPO = Path(__file__).resolve().parents[2]
ROOMCAST = REPO / ".venv" / "bin" / "roomcast"
#: The same CLI as a module, as tests/support/instances.py runs it.
PYTHON_M = [sys.executable, "-m", "roomcast.cli"]
SECRET = "cli-test-secret-0123456789abcdef0123456789abcdef"
API_KEY = "cli-test-api-key-0123456789"

pytestmark = pytest.mark.skipif(not ROOMCAST.exists(), reason="console script not installed")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROOMCAST_")}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(proc: subprocess.Popen[str]) -> None:
    """Stop a process we started, by its PID: terminate, wait, kill if it will not go."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


class Process:
    """A child process whose stdout and stderr lines are read by two threads."""

    def __init__(
        self, args: list[str], env: dict[str, str], command: list[str] | None = None
    ) -> None:
        self.loop = asyncio.get_running_loop()
        self.stdout_lines: asyncio.Queue[str | None] = asyncio.Queue()
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self.proc = subprocess.Popen(
            [*(command or [str(ROOMCAST)]), *args],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._threads = [
            threading.Thread(target=self._read, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._read, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self, stream: IO[str], is_stdout: bool) -> None:
        for line in stream:
            (self.stdout if is_stdout else self.stderr).append(line)
            if is_stdout:
                self._hand_over(line)
        if is_stdout:
            self._hand_over(None)

    def _hand_over(self, line: str | None) -> None:
        with contextlib.suppress(RuntimeError):  # the loop may be closed already
            self.loop.call_soon_threadsafe(self.stdout_lines.put_nowait, line)

    async def next_line(self, timeout: float = 10) -> str:
        async with asyncio.timeout(timeout):
            line = await self.stdout_lines.get()
        assert line is not None, f"stdout closed; stderr:\n{self.output()}"
        return line

    async def exit_code(self, timeout: float) -> int:
        return await asyncio.to_thread(self.proc.wait, timeout)

    def output(self) -> str:
        return "".join(self.stdout) + "\n--- stderr ---\n" + "".join(self.stderr)

    def close(self) -> None:
        try:
            stop(self.proc)
        finally:
            for t in self._threads:
                t.join(timeout=10)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@contextlib.asynccontextmanager
async def roomcast(
    *args: str, env: dict[str, str], command: list[str] | None = None
) -> AsyncIterator[Process]:
    process = Process(list(args), env, command)
    try:
        yield process
    finally:
        process.close()


@contextlib.contextmanager
def popen_run(args: list[str], env: dict[str, str]) -> Iterator[tuple[int, str, str]]:
    """Run a short-lived command to completion (bounded) and yield (code, stdout, stderr)."""
    proc = subprocess.Popen(
        [str(ROOMCAST), *args],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=20)
        yield proc.returncode, out, err
    finally:
        stop(proc)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def wait_healthy(process: Process, base: str, timeout: float = 15) -> None:
    """A starting process has no event to await: poll /healthz, bounded."""
    async with httpx.AsyncClient(base_url=base, timeout=1) as http:
        for _ in range(int(timeout / 0.05)):
            if process.proc.poll() is not None:
                pytest.fail(f"roomcast exited with {process.proc.returncode}:\n{process.output()}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    pytest.fail(f"roomcast did not become healthy:\n{process.output()}")


# serve without a secret ----------------------------------------------------------------


def test_serve_without_secret_or_api_key_names_what_to_set() -> None:
    with popen_run(["serve", "--port", str(free_port())], clean_env()) as (code, out, err):
        assert code != 0, out + err
        assert "ROOMCAST_JWT_SECRET" in err
        assert "ROOMCAST_API_KEYS" in err


def test_serve_with_secret_but_no_api_key_names_the_api_key() -> None:
    env = clean_env(ROOMCAST_JWT_SECRET=SECRET)
    with popen_run(["serve", "--port", str(free_port())], env) as (code, out, err):
        assert code != 0, out + err
        assert "ROOMCAST_API_KEYS" in err
        assert "ROOMCAST_JWT_SECRET" not in err


# serve --demo -----------------------------------------------------------------------------


async def test_demo_prints_credentials_that_work() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    async with roomcast("serve", "--demo", "--port", str(port), env=clean_env()) as process:
        printed: dict[str, str] = {}
        while not {"JWT secret", "API key", "token"} <= printed.keys():
            line = await process.next_line()
            match = re.match(r"^\s*(JWT secret|API key|token)\s*:\s*(\S+)\s*$", line)
            if match:
                printed[match.group(1)] = match.group(2)
        secret, key, token = printed["JWT secret"], printed["API key"], printed["token"]
        claims = jwt.decode(token, secret, algorithms=["HS256"])
        assert isinstance(claims["sub"], str) and claims["sub"]
        assert "demo" in claims.get("projects", [])

        await wait_healthy(process, base)

        client = Client()
        try:
            await client.connect(base, token)
            status = await client.next("connection_status")
            assert status["status"] == "connected" and status["user_id"] == claims["sub"]
            ack = await client.call("join", {"room": "project_demo"})
            assert ack["ok"] is True, ack
            async with httpx.AsyncClient(base_url=base, timeout=5) as http:
                r = await http.post(
                    "/api/v1/publish",
                    headers={"Authorization": f"Bearer {key}"},
                    json={
                        "room": "project_demo",
                        "type": "project_progress_update",
                        "data": {"total": 10, "completed": 3, "percent": 30},
                    },
                )
                assert r.status_code == 200, r.text
                event = await client.next("project_progress_update")
                assert event["room"] == "project_demo" and event["data"]["completed"] == 3
                assert event["seq"] == r.json()["seq"]

                # a wrong API key is refused
                r = await http.post(
                    "/api/v1/publish",
                    headers={"Authorization": "Bearer not-the-key"},
                    json={"room": "project_demo", "type": "notification", "data": {}},
                )
                assert r.status_code == 401

                page = await http.get("/demo")
                assert page.status_code == 200
                assert page.headers["content-type"].startswith("text/html")
                assert "<html" in page.text.lower()

                r = await http.get("/demo/token")
                assert r.status_code == 200
                demo_token = r.json()["token"]
                demo_claims = jwt.decode(demo_token, secret, algorithms=["HS256"])
                assert demo_claims["sub"] and demo_claims["exp"]
        finally:
            await client.close()


async def test_demo_routes_absent_without_demo() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = clean_env(ROOMCAST_JWT_SECRET=SECRET, ROOMCAST_API_KEYS=API_KEY)
    async with roomcast("serve", "--port", str(port), env=env) as process:
        await wait_healthy(process, base)
        async with httpx.AsyncClient(base_url=base, timeout=5) as http:
            assert (await http.get("/demo/token")).status_code == 404
            assert (await http.get("/demo")).status_code == 404


# SIGTERM drains ----------------------------------------------------------------------------


async def _serve_connect_and_sigterm(process: Process, base: str) -> int:
    """With one client connected, SIGTERM the server; check the drain; return the exit code."""
    await wait_healthy(process, base)
    client = Client()
    try:
        await client.connect(base, mint_access_token(SECRET, "u1"))
        assert (await client.next("connection_status"))["status"] == "connected"

        process.proc.send_signal(signal.SIGTERM)

        status = await client.next("connection_status", timeout=10)
        assert status == {"status": "draining"}
        async with asyncio.timeout(10):
            await client.disconnected.wait()
        try:
            return await process.exit_code(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"roomcast did not exit within 10 s of SIGTERM:\n{process.output()}")
    finally:
        await client.close()


def _serve_env(port: int) -> dict[str, str]:
    return clean_env(ROOMCAST_JWT_SECRET=SECRET, ROOMCAST_API_KEYS=API_KEY, ROOMCAST_PORT=str(port))


async def test_sigterm_drains_clients_and_exits() -> None:
    port = free_port()
    async with roomcast("serve", env=_serve_env(port)) as process:
        await _serve_connect_and_sigterm(process, f"http://127.0.0.1:{port}")
        assert process.proc.poll() is not None


async def test_sigterm_exit_code_is_zero() -> None:
    port = free_port()
    async with roomcast("serve", env=_serve_env(port)) as process:
        code = await _serve_connect_and_sigterm(process, f"http://127.0.0.1:{port}")
        assert code == 0, process.output()


# roomcast token -----------------------------------------------------------------------------


def test_token_prints_an_access_token() -> None:
    args = ["token", "--user", "u1", "--project", "p1", "--jwt-secret", SECRET]
    with popen_run(args, clean_env()) as (code, out, err):
        assert code == 0, err
    token = out.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1"
    assert claims["projects"] == ["p1"]
    assert isinstance(claims["exp"], int)
    assert "room" not in claims


def test_token_for_room_prints_a_room_token() -> None:
    args = ["token", "--user", "u1", "--for-room", "annotation_1", "--jwt-secret", SECRET]
    with popen_run(args, clean_env()) as (code, out, err):
        assert code == 0, err
    claims = jwt.decode(out.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "u1"
    assert claims["room"] == "annotation_1"
    assert isinstance(claims["exp"], int)


def test_token_without_secret_fails() -> None:
    with popen_run(["token", "--user", "u1"], clean_env()) as (code, out, err):
        assert code != 0
        assert out.strip() == ""
        assert "ROOMCAST_JWT_SECRET" in err


# serve --app: an application of one's own under the same server -------------------------

CUSTOM_APP = "examples.custom_app:factory"


async def test_app_factory_serves_its_room_kind_event_type_and_hook_then_drains() -> None:
    """examples/custom_app.py: a `review_` kind (role rule), a `review_comment` type that
    clients may publish, a join hook for assigned users; SIGTERM still drains."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    args = ["serve", "--app", CUSTOM_APP]
    async with roomcast(*args, env=_serve_env(port), command=PYTHON_M) as process:
        await wait_healthy(process, base)
        ann, bob, eve = Client(), Client(), Client()
        try:
            await ann.connect(base, mint_access_token(SECRET, "ann"))  # assigned: the hook
            await bob.connect(base, mint_access_token(SECRET, "bob", roles=["reviewer"]))
            await eve.connect(base, mint_access_token(SECRET, "eve"))
            for client in (ann, bob, eve):
                assert (await client.next("connection_status"))["status"] == "connected"

            assert (await ann.call("join", {"room": "review_r1"}))["ok"] is True
            assert (await bob.call("join", {"room": "review_r1"}))["ok"] is True
            refused = await eve.call("join", {"room": "review_r1"})
            assert refused["ok"] is False and refused["error"]["code"] == "forbidden", refused

            comment = {"comment_id": "c1", "text": "label looks wrong"}
            ack = await ann.call(
                "review_comment", {"room": "review_r1", "data": comment, "client_event_id": "x1"}
            )
            assert ack["ok"] is True, ack
            event = await bob.next("review_comment")
            assert event["data"] == comment and event["actor"]["user_id"] == "ann"
            assert event["seq"] == ack["seq"]

            # The built-in types keep to their kinds, the new one to its own.
            wrong = await ann.call(
                "review_comment", {"room": "project_p1", "data": comment, "client_event_id": "x2"}
            )
            assert wrong["ok"] is False

            process.proc.send_signal(signal.SIGTERM)
            for client in (ann, bob, eve):
                assert await client.next("connection_status", timeout=10) == {"status": "draining"}
            async with asyncio.timeout(10):
                for client in (ann, bob, eve):
                    await client.disconnected.wait()
            assert await process.exit_code(timeout=10) == 0, process.output()
        finally:
            for client in (ann, bob, eve):
                await client.close()


@contextlib.contextmanager
def run_module(args: list[str], env: dict[str, str]) -> Iterator[tuple[int, str, str]]:
    """`python -m roomcast.cli ...` to completion (bounded): (code, stdout, stderr)."""
    done = subprocess.run(
        [*PYTHON_M, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=30
    )
    yield done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ("examples.custom_app", "expected MODULE:FACTORY"),
        ("examples.no_such_module:factory", "cannot import examples.no_such_module"),
        ("examples.custom_app:nothing", "has no 'nothing'"),
        ("examples.custom_app:ASSIGNED", "not callable"),
        # dict(settings) returns a dict: not what create_app builds, refused before listening
        ("builtins:dict", "not an application built by roomcast.create_app"),
    ],
)
def test_a_wrong_app_is_one_line_and_status_2(spec: str, says: str) -> None:
    env = _serve_env(free_port())
    with run_module(["serve", "--app", spec], env) as (code, out, err):
        assert code == 2, out + err
        assert says in err and err.count("\n") == 1, err
        assert out == ""

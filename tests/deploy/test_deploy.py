"""deploy/ checked as far as this machine can run it (no container daemon here).

- Every `ROOMCAST_*` name in deploy/ is a real setting, and the example env file and
  Kubernetes settings are values `Settings` accepts.
- Every `roomcast` command line in the Dockerfile, compose file and Deployment parses
  with roomcast's own CLI parser; the image's HEALTHCHECK command passes against a
  live instance and fails against a closed port.
- The compose topology, the Deployment's grace period (against the drain's length),
  the sentinel configuration (run by a real Sentinel over a real Redis).
- Every metric family the Grafana dashboard queries is exported by a running server.
- deploy/nginx/nginx.conf, with its upstreams rewritten to loopback ports, passes
  `nginx -t` and carries real sessions of a stock socket.io-client (Node) to two
  `roomcast serve` processes over a real Redis: WebSocket, and long-polling thanks to
  its sticky upstream (without which the same polling client is refused).

Every process is started here or by tests/support and stopped by its PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from roomcast.cli import build_parser
from roomcast.config import Settings
from roomcast.server import DRAIN_PAUSE_SECONDS
from tests.install.wheel_venv import BUILD_INPUTS
from tests.support.instances import RoomcastProcess
from tests.support.redis_procs import RedisServer, SentinelProcess, free_port
from tests.support.server import running_server

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
NODE_CLIENT = Path(__file__).with_name("nginx_client.cjs")
NODE_MODULES = REPO / "clients" / "js" / "node_modules"
NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
)
NODE = shutil.which("node")

SETTING_NAME = re.compile(r"\bROOMCAST_[A-Z0-9_]+\b")
# The drain's fixed parts (src/roomcast/transport/gateway.py and server.py): up to
# 10 s for the last connections to close, then uvicorn's graceful shutdown of 10 s.
DRAIN_WAIT_SECONDS = 10
UVICORN_GRACE_SECONDS = 10


def deploy_files() -> list[Path]:
    return sorted(p for p in DEPLOY.rglob("*") if p.is_file())


def load_yaml_docs(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return data


def k8s_objects() -> dict[str, dict[str, Any]]:
    """Every manifest under deploy/k8s, by kind (one object of each kind here)."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in load_yaml_docs(path):
            assert doc["kind"] not in out, f"two {doc['kind']} manifests"
            out[doc["kind"]] = doc
    return out


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (DEPLOY / "roomcast.env.example").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            values[name] = value
    return values


def settings_from_env(env: dict[str, str]) -> Settings:
    """Settings built from ROOMCAST_* variables exactly as roomcast serve reads them."""
    fields = {name.removeprefix("ROOMCAST_").lower(): value for name, value in env.items()}
    return Settings(**fields)


def dockerfile_json(instruction: str) -> list[str]:
    """The exec-form argv of the Dockerfile's (last) CMD or HEALTHCHECK ... CMD."""
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(rf"^{instruction}\b.*?(?:CMD\s+)?(\[.*\])\s*$", text, re.MULTILINE)
    assert found, f"no exec-form {instruction} in deploy/Dockerfile"
    argv: list[str] = json.loads(found[-1])
    return argv


# -- settings and command lines ---------------------------------------------------------


def test_every_roomcast_variable_in_deploy_is_a_setting() -> None:
    real = {f"ROOMCAST_{name.upper()}" for name in Settings.model_fields}
    seen: dict[str, set[str]] = {}
    for path in deploy_files():
        for name in SETTING_NAME.findall(path.read_text()):
            seen.setdefault(name, set()).add(str(path.relative_to(REPO)))
    unknown = {name: sorted(files) for name, files in seen.items() if name not in real}
    assert not unknown, f"not roomcast settings: {unknown}"
    # Each kind of file sets some, so the scan above saw them.
    for part in ("Dockerfile", "compose.yaml", "roomcast.env.example", "k8s/configmap.yaml"):
        assert any(f"deploy/{part}" in files for files in seen.values()), part


def test_env_example_is_valid_with_placeholders_only() -> None:
    env = env_example()
    assert all(name.startswith("ROOMCAST_") for name in env)
    settings = settings_from_env(env)  # raises on any invalid value
    assert settings.jwt_secret is not None
    assert "replace-me" in settings.jwt_secret.get_secret_value()
    assert all("replace-me" in key for key in settings.api_key_list)
    assert settings.sentinel_list, "compose runs Sentinel mode"
    # The operator's copy is never committed.
    assert "roomcast.env" in (DEPLOY / ".gitignore").read_text().split()


def test_k8s_settings_are_valid_with_placeholders_only() -> None:
    objects = k8s_objects()
    env = dict(objects["ConfigMap"]["data"]) | dict(objects["Secret"]["stringData"])
    container = objects["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    env |= {item["name"]: item["value"] for item in container.get("env", [])}
    settings = settings_from_env(env)
    assert settings.uses_redis
    assert all("replace-me" in value for value in objects["Secret"]["stringData"].values()), (
        "the Secret example holds placeholders only"
    )
    refs = {next(iter(ref.values()))["name"] for ref in container["envFrom"]}
    assert refs == {objects["ConfigMap"]["metadata"]["name"], objects["Secret"]["metadata"]["name"]}


def command_lines() -> dict[str, list[str]]:
    lines = {"Dockerfile CMD": dockerfile_json("CMD")}
    for name, service in compose()["services"].items():
        command = service.get("command")
        if isinstance(command, list) and command and command[0] == "roomcast":
            lines[f"compose {name}"] = command
    for container in k8s_objects()["Deployment"]["spec"]["template"]["spec"]["containers"]:
        lines[f"k8s {container['name']}"] = container["command"] + container.get("args", [])
    return lines


def test_every_roomcast_command_line_parses() -> None:
    lines = command_lines()
    assert len([k for k in lines if k.startswith("compose")]) == 2
    parser = build_parser()
    for where, argv in lines.items():
        assert argv[0] == "roomcast", where
        assert "--workers" not in argv, f"{where}: one process is one instance"
        try:
            args = parser.parse_args(argv[1:])
        except SystemExit as exc:
            pytest.fail(f"{where}: {argv} does not parse ({exc})")
        assert args.command == "serve", where
        assert not args.demo, f"{where}: --demo hands out tokens"


def test_dockerfile_shape() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+(\S+)", text, re.MULTILINE)
    assert stages == ["python:3.11-slim", "python:3.11-slim"], stages
    assert re.search(r"^FROM python:3.11-slim AS builder$", text, re.MULTILINE)
    assert "COPY --from=builder" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.MULTILINE)
    assert user and not user[-1].startswith(("root", "0")), "runs as non-root"
    assert re.search(r"^EXPOSE 8000$", text, re.MULTILINE)
    assert re.search(r"ROOMCAST_HOST=0\.0\.0\.0", text)
    # The context is filtered by the Dockerfile's own ignore file.
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    assert ignore[ignore.index("*") :][:2] == ["*", "!pyproject.toml"]
    for needed in ("README.md", "LICENSE", "src/"):
        assert f"!{needed}" in ignore


def test_image_builds_the_wheel_as_the_installed_wheel_test_does() -> None:
    """The builder stage copies what tests/install builds its tested wheel from, and
    builds it the same way, so the image carries the artefact that test runs."""
    text = (DEPLOY / "Dockerfile").read_text()
    builder = text.split("\nFROM ", 2)[1]
    copied = set()
    for line in re.findall(r"^COPY (?!--from)(.+)$", builder, re.MULTILINE):
        *sources, _destination = line.split()
        copied |= set(sources)
    assert copied == {*BUILD_INPUTS, "src"}, copied
    assert re.search(r"^RUN pip wheel --no-deps --wheel-dir /wheels \.$", builder, re.MULTILINE)
    assert "pip install /wheels/roomcast-*.whl" in text.split("\nFROM ", 2)[2]


@pytest.fixture
def instance() -> Iterator[RoomcastProcess]:
    with RoomcastProcess() as proc:
        yield proc


def test_healthcheck_command_passes_on_a_live_instance(instance: RoomcastProcess) -> None:
    argv = dockerfile_json("HEALTHCHECK")
    assert argv[0] == "python"
    run = [sys.executable, *argv[1:]]
    env = {"PATH": os.environ.get("PATH", ""), "ROOMCAST_PORT": str(instance.port)}
    assert subprocess.run(run, env=env, timeout=10, capture_output=True).returncode == 0
    env["ROOMCAST_PORT"] = str(free_port())  # nothing listens there
    assert subprocess.run(run, env=env, timeout=10, capture_output=True).returncode != 0


# -- compose, Kubernetes, Sentinel ------------------------------------------------------


def nginx_upstreams(conf: str) -> list[str]:
    block = re.search(r"upstream roomcast \{(.*?)\}", conf, re.DOTALL)
    assert block is not None
    return re.findall(r"^\s*server\s+(\S+?)[\s;]", block.group(1), re.MULTILINE)


def test_compose_topology() -> None:
    services = compose()["services"]
    roomcast = sorted(n for n, s in services.items() if (s.get("command") or [""])[0] == "roomcast")
    assert roomcast == ["roomcast-1", "roomcast-2"]
    nginx_conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert nginx_upstreams(nginx_conf) == [f"{n}:8000" for n in roomcast]

    replicas = [n for n, s in services.items() if "--replicaof" in (s.get("command") or [])]
    assert replicas == ["redis-replica"]
    master_argv = services["redis-replica"]["command"]
    assert master_argv[master_argv.index("--replicaof") + 1] == "redis-master"
    for name in ("redis-master", "redis-replica"):
        argv = services[name]["command"]
        assert argv[argv.index("--maxmemory-policy") + 1] == "noeviction", name

    sentinels = sorted(n for n in services if n.startswith("sentinel-"))
    assert len(sentinels) == 3
    env = env_example()
    assert sorted(a.split(":")[0] for a in env["ROOMCAST_REDIS_SENTINELS"].split(",")) == sentinels
    for name in sentinels:
        mounts = services[name]["volumes"]
        assert "./redis/sentinel.conf:/etc/redis/sentinel.conf:ro" in mounts
        assert "/data/sentinel.conf" in services[name]["command"][-1], "a writable copy"

    for name in roomcast:
        service = services[name]
        assert service["env_file"] == "roomcast.env"
        nginx_ip = services["nginx"]["networks"]["front"]["ipv4_address"]
        assert service["environment"]["ROOMCAST_TRUSTED_PROXIES"] == nginx_ip
        assert service["stop_grace_period"] == "60s"
    assert (DEPLOY / "roomcast.env.example").exists()
    assert "./nginx/nginx.conf:/etc/nginx/nginx.conf:ro" in services["nginx"]["volumes"]


def drain_seconds(settings: Settings) -> float:
    """How long SIGTERM may take at most, from docs/operations.md and server.py."""
    batches = math.ceil(settings.max_connections / settings.drain_batch_size)
    return (batches - 1) * DRAIN_PAUSE_SECONDS + DRAIN_WAIT_SECONDS + UVICORN_GRACE_SECONDS


def test_k8s_deployment_probes_and_grace_cover_the_drain() -> None:
    objects = k8s_objects()
    pod = objects["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    port = {p["name"]: p["containerPort"] for p in container["ports"]}["http"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["ROOMCAST_PORT"] == str(port) and env["ROOMCAST_HOST"] == "0.0.0.0"
    assert pod["securityContext"]["runAsNonRoot"] is True

    settings = settings_from_env(
        dict(objects["ConfigMap"]["data"]) | dict(objects["Secret"]["stringData"])
    )
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    needed = float(pre_stop[1]) + drain_seconds(settings)
    assert pod["terminationGracePeriodSeconds"] >= needed, (needed, pod)

    selector = objects["Deployment"]["spec"]["selector"]["matchLabels"]
    assert objects["Service"]["spec"]["selector"] == selector
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == selector
    assert objects["Service"]["spec"]["sessionAffinity"] == "ClientIP"
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"secret.example.yaml"}, "all but the Secret example applied"


def test_sentinel_conf_runs_under_a_real_sentinel() -> None:
    """The committed sentinel.conf, pointed at a loopback Redis, monitors it."""
    lines = []
    with RedisServer() as redis:
        for line in (DEPLOY / "redis" / "sentinel.conf").read_text().splitlines():
            if line.startswith("port "):
                continue  # SentinelProcess gives the port
            if line.startswith("sentinel monitor "):
                assert line == "sentinel monitor mymaster redis-master 6379 2"
                line = f"sentinel monitor mymaster 127.0.0.1 {redis.port} 2"
            lines.append(line)
        with SentinelProcess(lines, free_port()) as sentinel:
            assert sentinel.master_addr("mymaster") == ("127.0.0.1", redis.port)


# -- the dashboard against a running server ---------------------------------------------

METRIC_NAME = re.compile(r"\b((?:roomcast|process|python)_[a-zA-Z0-9_]+)\b")
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((DEPLOY / "grafana" / "roomcast-dashboard.json").read_text())
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(t["expr"] for t in panel.get("targets", []))
            walk(panel.get("panels", []))

    walk(dashboard["panels"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(variable["definition"])
    return exprs


def exported_families(text: str) -> dict[str, str]:
    """Metric family -> type, from the # TYPE lines of a /metrics page."""
    return {
        parts[2]: parts[3]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and len(parts := line.split()) == 4
    }


async def test_every_dashboard_metric_is_exported() -> None:
    exprs = dashboard_expressions()
    queried = {name for expr in exprs for name in METRIC_NAME.findall(expr)}
    assert len(queried) >= 15, queried
    async with running_server() as server:
        client = await server.client("u1", projects=["p1"])
        try:
            assert (await client.call("join", {"room": "project_p1"}))["ok"] is True
            async with httpx.AsyncClient(base_url=server.url, timeout=5) as http:
                published = await http.post(
                    "/api/v1/publish",
                    headers=server.api_headers,
                    json={
                        "room": "project_p1",
                        "type": "project_progress_update",
                        "data": {"total": 10, "completed": 3, "percent": 30},
                    },
                )
                assert published.status_code == 200, published.text
                await client.next("project_progress_update")
                page = await http.get("/metrics")
        finally:
            await client.close()
    assert page.status_code == 200
    families = exported_families(page.text)
    helped = {line.split()[2] for line in page.text.splitlines() if line.startswith("# HELP ")}

    def exported(name: str) -> bool:
        if name in families and name in helped:
            return True
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        return base is not None and families.get(base) == "histogram"

    missing = sorted(name for name in queried if not exported(name))
    assert not missing, f"queried by the dashboard, not on /metrics: {missing}"


# -- nginx: nginx -t, and real sessions through it ----------------------------------------

needs_nginx = pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed")


def loopback_nginx_conf(directory: Path, port: int, upstreams: list[int], *, sticky: bool) -> Path:
    """deploy/nginx/nginx.conf with loopback addresses and files under `directory`.

    Each rewrite must match exactly once, so a change of the committed file's shape
    shows here rather than leaving a line unrewritten.
    """
    text = (DEPLOY / "nginx" / "nginx.conf").read_text()

    def sub(pattern: str, replacement: str) -> None:
        nonlocal text
        text, count = re.subn(pattern, replacement, text, flags=re.MULTILINE)
        assert count == 1, f"{pattern!r} matched {count} times in nginx.conf"

    temp_paths = "".join(
        f"    {kind}_temp_path {directory / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    sub(r"^worker_processes .*;$", "worker_processes 1;")
    sub(r"^error_log \S+", f"error_log {directory / 'error.log'}")
    sub(r"^(\s*)access_log \S+", rf"\g<1>access_log {directory / 'access.log'}")
    sub(r"^http \{\n", "http {\n" + temp_paths)
    sub(r"^(\s*)listen 80;", rf"\g<1>listen 127.0.0.1:{port};")
    sub(r"server roomcast-1:8000", f"server 127.0.0.1:{upstreams[0]}")
    sub(r"server roomcast-2:8000", f"server 127.0.0.1:{upstreams[1]}")
    if not sticky:
        sub(r"^\s*hash \$remote_addr consistent;\n", "")
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def nginx_argv(conf: Path, *extra: str) -> list[str]:
    assert NGINX is not None
    directory = conf.parent
    return [
        NGINX,
        "-p", str(directory),
        "-e", str(directory / "error.log"),
        "-c", str(conf),
        "-g", f"daemon off; pid {directory / 'nginx.pid'};",
        *extra,
    ]  # fmt: skip


@needs_nginx
@pytest.mark.parametrize("sticky", [True, False])
def test_nginx_conf_passes_nginx_t(tmp_path: Path, sticky: bool) -> None:
    conf = loopback_nginx_conf(tmp_path, free_port(), [free_port(), free_port()], sticky=sticky)
    result = subprocess.run(nginx_argv(conf, "-t"), capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


class Nginx:
    """nginx as a foreground process on a free loopback port, stopped by its PID."""

    def __init__(self, upstreams: list[int], *, sticky: bool) -> None:
        self.directory = Path(tempfile.mkdtemp(prefix="roomcast-nginx-"))
        self.port = free_port()
        self.conf = loopback_nginx_conf(self.directory, self.port, upstreams, sticky=sticky)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Nginx:
        with (self.directory / "output").open("wb") as output:
            self.proc = subprocess.Popen(
                nginx_argv(self.conf),
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        # A process start has no event to await: a bounded loop on /healthz.
        deadline = time.monotonic() + 10
        with httpx.Client(base_url=self.url, timeout=1) as http:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"nginx exited: {self.log()}")
                with contextlib.suppress(httpx.TransportError):
                    if http.get("/healthz").status_code == 200:
                        return self
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"nginx did not proxy /healthz within 10 s: {self.log()}")
                time.sleep(0.05)

    def log(self) -> str:
        parts = []
        for name in ("output", "error.log"):
            with contextlib.suppress(OSError):
                parts.append((self.directory / name).read_text()[-2000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # nginx's fast shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.directory, ignore_errors=True)


class NodeClient:
    """tests/deploy/nginx_client.cjs in a child process; its JSON lines, in order."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def start(cls, url: str, token: str, room: str, transport: str) -> NodeClient:
        assert NODE is not None
        if not (NODE_MODULES / "socket.io-client").is_dir():
            pytest.fail("clients/js/node_modules lacks socket.io-client: run `make test-js` first")
        proc = await asyncio.create_subprocess_exec(
            NODE, str(NODE_CLIENT), url, token, room, transport,
            env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        return cls(proc)

    async def next(self, *kinds: str, timeout: float = 10) -> dict[str, Any]:
        """The next line of one of these kinds (others are kept in `seen`)."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    stderr = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"node client ended; saw {self.seen}; {stderr!r}")
                line: dict[str, Any] = json.loads(raw)
                self.seen.append(line)
                if line["kind"] in kinds:
                    return line

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()  # the script ends when its stdin does
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@contextlib.asynccontextmanager
async def node_client(url: str, token: str, room: str, transport: str) -> AsyncIterator[NodeClient]:
    client = await NodeClient.start(url, token, room, transport)
    try:
        yield client
    finally:
        await client.close()


class Stack:
    """A Redis, two `roomcast serve` processes on it, and the nginx of deploy/."""

    def __init__(self, redis: RedisServer, instances: list[RoomcastProcess], nginx: Nginx):
        self.redis = redis
        self.instances = instances
        self.nginx = nginx

    def instance_by_id(self, instance_id: str) -> RoomcastProcess:
        for proc in self.instances:
            if proc.env["ROOMCAST_INSTANCE_ID"] == instance_id:
                return proc
        raise AssertionError(f"no instance {instance_id}")

    async def publish(self, base_url: str, room: str, completed: int) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
            response = await http.post(
                "/api/v1/publish",
                headers=self.instances[0].api_headers,
                json={
                    "room": room,
                    "type": "project_progress_update",
                    "data": {"total": 10, "completed": completed, "percent": completed * 10},
                },
            )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture(scope="module")
def redis_for_stack() -> Iterator[RedisServer]:
    with RedisServer() as redis:
        yield redis


@pytest.fixture(scope="module")
def roomcast_pair(redis_for_stack: RedisServer) -> Iterator[list[RoomcastProcess]]:
    prefix = f"deploy{secrets.token_hex(3)}"
    procs = [
        RoomcastProcess(
            {
                "ROOMCAST_REDIS_URL": redis_for_stack.url,
                "ROOMCAST_KEY_PREFIX": prefix,
                "ROOMCAST_INSTANCE_ID": f"deploy-{n}",
                "ROOMCAST_TRUSTED_PROXIES": "127.0.0.1",
            }
        )
        for n in (1, 2)
    ]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            # SIGKILL: the refused polling session of the unsticky test leaves a
            # connection that a drain would wait 10 s for; draining is not tested here.
            proc.kill()
            proc.close()


@contextlib.contextmanager
def started_nginx(instances: list[RoomcastProcess], *, sticky: bool) -> Iterator[Nginx]:
    nginx = Nginx([proc.port for proc in instances], sticky=sticky)
    try:
        yield nginx.start()
    finally:
        nginx.stop()


@pytest.fixture(scope="module")
def stack(redis_for_stack: RedisServer, roomcast_pair: list[RoomcastProcess]) -> Iterator[Stack]:
    if NGINX is None or NODE is None:
        pytest.skip("nginx and node are needed")
    with started_nginx(roomcast_pair, sticky=True) as nginx:
        yield Stack(redis_for_stack, roomcast_pair, nginx)


@needs_nginx
@needs_node
async def test_websocket_session_through_nginx(stack: Stack) -> None:
    room = "project_ws"
    token = stack.instances[0].token("ws-user", projects=["ws"])
    async with node_client(stack.nginx.url, token, room, "websocket") as client:
        status = (await client.next("connection_status"))["data"]
        assert status["status"] == "connected" and status["transport"] == "websocket"
        home = stack.instance_by_id(status["instance_id"])
        ack = (await client.next("join"))["data"]
        assert ack["ok"] is True, ack

        # Through nginx's API route, then straight to each instance: all three reach
        # the client on whichever instance it is, over Redis.
        sent = [await stack.publish(stack.nginx.url, room, 1)]
        for n, proc in enumerate(stack.instances, start=2):
            sent.append(await stack.publish(proc.url, room, n))
        received = [(await client.next("event"))["data"] for _ in sent]
    assert [e["payload"]["seq"] for e in received] == [s["seq"] for s in sent]
    assert [e["payload"]["data"]["completed"] for e in received] == [1, 2, 3]
    assert {e["event"] for e in received} == {"project_progress_update"}
    assert {e["transport"] for e in received} == {"websocket"}
    assert home in stack.instances


@needs_nginx
@needs_node
async def test_long_polling_session_is_sticky_through_nginx(stack: Stack) -> None:
    room = "project_poll"
    token = stack.instances[0].token("poll-user", projects=["poll"])
    async with node_client(stack.nginx.url, token, room, "polling") as client:
        status = (await client.next("connection_status"))["data"]
        assert status["status"] == "connected" and status["transport"] == "polling"
        home = stack.instance_by_id(status["instance_id"])
        (other,) = [proc for proc in stack.instances if proc is not home]
        ack = (await client.next("join"))["data"]
        assert ack["ok"] is True, ack

        # Published on the instance that does not hold the session, then through
        # nginx: both arrive over the session's long-polling requests, every one of
        # which nginx sent to the same instance (any other would refuse the sid).
        sent = [
            await stack.publish(other.url, room, 1),
            await stack.publish(stack.nginx.url, room, 2),
        ]
        received = [(await client.next("event"))["data"] for _ in sent]
    assert [e["payload"]["seq"] for e in received] == [s["seq"] for s in sent]
    assert {e["transport"] for e in received} == {"polling"}
    assert not [line for line in client.seen if line["kind"] in ("connect_error", "disconnect")]


@needs_nginx
@needs_node
async def test_long_polling_without_stickiness_is_refused(
    roomcast_pair: list[RoomcastProcess],
) -> None:
    """The same config minus its `hash` line spreads one session's requests over both
    instances, and the one that did not create it refuses it: stickiness is needed."""
    token = roomcast_pair[0].token("spread-user", projects=["spread"])
    with started_nginx(roomcast_pair, sticky=False) as nginx:
        async with node_client(nginx.url, token, "project_spread", "polling") as client:
            line = await client.next("connect_error", "disconnect", "join")
    assert line["kind"] in ("connect_error", "disconnect"), client.seen

"""`import roomcast` in a worker leaves the server stack unloaded (SPEC section 7).

Each check runs in a fresh interpreter: this test process has long imported
everything, so its own `sys.modules` proves nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SERVER_STACK = ("uvicorn", "fastapi", "starlette", "socketio", "engineio")

WORKER = """
import asyncio, json, sys
import roomcast
from roomcast import BlockingEventBroadcastService, EventBroadcastService, Settings

async def publish():
    # Memory mode: the whole publish path runs, with no Redis to reach.
    async with EventBroadcastService.from_settings(Settings()) as broadcast:
        return await broadcast.project_progress("p7", completed=1, total=2)

published = asyncio.run(publish())
EventBroadcastService.from_settings(Settings(redis_url="redis://127.0.0.1:1/0"))  # lazy
loaded = sorted({name.split(".")[0] for name in sys.modules} & set(json.loads(sys.argv[1])))
print(json.dumps({"loaded": loaded, "seq": published.seq, "version": roomcast.__version__}))
"""


def run_fresh(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_worker_that_publishes_loads_no_server_stack() -> None:
    result = json.loads(run_fresh(WORKER, json.dumps(SERVER_STACK)))
    assert result["seq"] == 1
    assert result["loaded"] == [], f"a worker's import pulled in {result['loaded']}"


def test_create_app_still_importable_from_the_package() -> None:
    code = (
        "from roomcast import Roomcast, Settings, create_app\n"
        "print(create_app.__module__, Roomcast.__name__, Settings.__module__)\n"
    )
    assert run_fresh(code).split() == ["roomcast.app", "Roomcast", "roomcast.config"]


def test_version_is_the_installed_distributions() -> None:
    code = (
        "import importlib.metadata, roomcast\n"
        "print(roomcast.__version__, importlib.metadata.version('roomcast'))\n"
    )
    ours, installed = run_fresh(code).split()
    assert ours == installed


def test_an_unknown_name_is_an_attribute_error() -> None:
    code = (
        "import roomcast\n"
        "try:\n    roomcast.nothing_here\n"
        "except AttributeError as exc:\n    print('AttributeError', exc)\n"
    )
    assert run_fresh(code).startswith("AttributeError")

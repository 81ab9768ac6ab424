"""The support package's processes for tests in other languages (the JavaScript SDK's).

    python -m tests.support.cli redis [--password PW]
    python -m tests.support.cli sentinel
    python -m tests.support.cli serve [--port N]      (ROOMCAST_* from the environment)

Run from the repository root. Starts what was asked through the same helpers the
Python tests use (`RedisServer`, `SentinelCluster`, `RoomcastProcess`), waits until it
is ready, and prints one JSON line on stdout: `{"kind", "pid", "port", "url", ...}`
(or `{"error": ...}` and exit status 1). It then holds the process until one of

- end of file on stdin (the test runner went away, even by SIGKILL: nothing is left),
- SIGTERM or SIGINT to this CLI (a stop: SIGTERM to the process by its PID, the
  draining shutdown for `serve`, SIGKILL after the bound),
- the process exiting by itself or by a signal someone sent its PID,

and then prints `{"event": "exited", "pid", "returncode"}` (negative: the signal that
ended it) and exits 0. For `serve`, the environment's ROOMCAST_* variables are laid over
the test defaults (secret, API key, port, loopback host).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Held:
    """A started process: what to print, how to wait for its exit, how to stop it."""

    info: dict[str, Any]
    wait: Callable[[], int] | None  # None: nothing single to watch (a Sentinel set)
    stop: Callable[[], int | None]


def _redis(args: argparse.Namespace) -> Held:
    from tests.support.redis_procs import RedisServer

    server = RedisServer(password=args.password).start()
    info = {"kind": "redis", "pid": server.pid, "port": server.port, "url": server.url}
    return Held(info, server.wait, server.stop)


def _sentinel(args: argparse.Namespace) -> Held:
    from tests.support.redis_procs import SentinelCluster

    cluster = SentinelCluster().start()
    info = {
        "kind": "sentinel",
        "pid": cluster.master.pid,
        "port": cluster.master.port,
        "url": cluster.master.url,
        "master_name": cluster.master_name,
        "sentinels": cluster.sentinels_setting,
        "pids": [cluster.master.pid, cluster.replica.pid] + [s.pid for s in cluster.sentinel_procs],
    }

    def stop() -> int | None:
        cluster.stop()
        return None

    return Held(info, None, stop)


def _serve(args: argparse.Namespace) -> Held:
    from tests.support.instances import RoomcastProcess

    # The port is --port's or a free one: ROOMCAST_PORT would bypass the free-port choice.
    env = {k: v for k, v in os.environ.items() if k.startswith("ROOMCAST_")}
    env.pop("ROOMCAST_PORT", None)
    proc = RoomcastProcess(env, port=args.port)
    try:
        proc.start()
    except BaseException:
        proc.close()
        raise

    def stop() -> int | None:
        try:
            return proc.terminate()
        except TimeoutError as exc:  # it was SIGKILLed after the bound
            print(exc, file=sys.stderr, flush=True)
            return proc.returncode
        finally:
            proc.close()

    info = {"kind": "serve", "pid": proc.pid, "port": proc.port, "url": proc.url}
    return Held(info, proc.wait, stop)


STARTERS: dict[str, Callable[[argparse.Namespace], Held]] = {
    "redis": _redis,
    "sentinel": _sentinel,
    "serve": _serve,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tests.support.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    redis = commands.add_parser("redis", help="a redis-server on a free loopback port")
    redis.add_argument("--password", default=None, help="requirepass (and masterauth)")
    commands.add_parser("sentinel", help="a master, a replica and three sentinels")
    serve = commands.add_parser("serve", help="roomcast serve on a free loopback port")
    serve.add_argument("--port", type=int, default=None, help="this port (a restart)")
    return parser


def _emit(record: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(record) + "\n")
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    """Start, print, hold until stdin EOF / SIGTERM / the process's exit, stop by PID."""
    args = _parser().parse_args(argv)
    done = threading.Event()  # set by whichever of the three ends comes first

    def on_signal(signum: int, frame: object) -> None:
        done.set()

    # Installed before the start: a stop sent while it starts is not lost.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        held = STARTERS[args.command](args)
    except Exception as exc:  # reported to the caller, who reads stdout
        _emit({"error": f"{type(exc).__name__}: {exc}"})
        return 1
    returncode: list[int] = []
    try:
        _emit(held.info)

        def read_stdin() -> None:
            # The raw descriptor, not sys.stdin: a daemon thread blocked in a buffered
            # read holds its lock, which the interpreter's shutdown then waits for.
            try:
                while os.read(0, 4096):
                    pass
            except OSError:
                pass  # no stdin at all counts as its end
            done.set()

        def watch() -> None:
            assert held.wait is not None
            returncode.append(held.wait())
            done.set()

        threading.Thread(target=read_stdin, daemon=True).start()
        if held.wait is not None:
            threading.Thread(target=watch, daemon=True).start()
        done.wait()
    finally:
        code = held.stop()
    status = returncode[0] if returncode else code
    _emit({"event": "exited", "pid": held.info["pid"], "returncode": status})
    return 0


if __name__ == "__main__":
    sys.exit(main())

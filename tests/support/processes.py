"""Child processes for tests and benchmarks: free ports, bounded readiness, stop by PID.

The one place where the support package (tests/support, benchmarks/harness and, through
`tests.support.cli`, the JavaScript tests) starts and stops processes. Every helper
that launches something uses `launch` and `stop_pid`, so that each process is

- started in its own session (a ^C to pytest does not reach it; teardown does),
- remembered until it is reaped, and SIGKILLed at interpreter exit as a last resort
  for a run that ends without its teardown,
- stopped by its PID: a signal (SIGTERM by default), a bounded wait, SIGKILL if it
  will not go. Nothing here looks a process up by name.

A process start has no event to await, so `wait_until` is a bounded poll that fails
at once when the process has exited, with what the caller says about it.

Only the standard library is imported, so a benchmark or the CLI pays nothing for it.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

HOST = "127.0.0.1"
STOP_TIMEOUT = 10.0
SYSTEM_REDIS_PORT = 6379  # a system Redis may listen there: never ours, never touched


class ProcessStartError(RuntimeError):
    """A process exited or did not become ready in time; the message carries its output."""


class _Reaper:
    """The processes started and not yet reaped (one per interpreter; see `launch`)."""

    def __init__(self) -> None:
        self.live: set[subprocess.Popen[bytes]] = set()

    def kill_all(self) -> None:
        for proc in list(self.live):
            stop_pid(proc, signal.SIGKILL)


_REAPER = _Reaper()
atexit.register(_REAPER.kill_all)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bound to port 0, then released).

    Never 6379: a system Redis may be down now and back later. (`--port 0` would turn
    TCP off in Redis, so a port is always chosen here.)
    """
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port != SYSTEM_REDIS_PORT:
            return port


def launch(
    argv: Sequence[str],
    *,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.STDOUT,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> subprocess.Popen[bytes]:
    """Start `argv` in its own session with stdin closed, and remember it until reaped."""
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdin=subprocess.DEVNULL,
        stdout=stdout,
        stderr=stderr,
        start_new_session=True,
    )
    _REAPER.live.add(proc)
    return proc


def stop_pid(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT
) -> int:
    """Signal a child by its PID (unless it has exited), wait, SIGKILL after `timeout`.

    Returns the exit status (negative: the signal that ended it).
    """
    try:
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                proc.wait(timeout=timeout)
        return proc.returncode
    finally:
        _REAPER.live.discard(proc)


def wait_until(
    check: Callable[[], bool],
    *,
    alive: Callable[[], bool],
    what: str,
    timeout: float,
    details: Callable[[], str] = lambda: "",
    interval: float = 0.05,
) -> None:
    """Poll `check()` until true, at most `timeout` s; fails at once once `alive()` is false.

    An OSError from `check` counts as "not yet" (the port is not open yet). Raises
    ProcessStartError with `details()` (the process's log tail, say).
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        if not alive():
            raise ProcessStartError(f"{what}: the process exited before it was ready\n{details()}")
        try:
            if check():
                return
        except OSError as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise ProcessStartError(
                f"{what}: not ready within {timeout:g} s (last: {last!r})\n{details()}"
            )
        time.sleep(interval)


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log file, or a note that there is none."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"({path.name}: nothing written)"
    return "\n".join(text.splitlines()[-lines:]) or f"({path.name}: empty)"


def gone(pid: int) -> bool:
    """True once no process has this PID (a reaped child's PID, checked with signal 0)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False

"""Processes the suite starts, and what /proc says about them.

Starting, stopping by PID and waiting for readiness are the support package's
(`tests.support.processes`, shared with the tests and the JavaScript tests' CLI); this
adds what a benchmark needs on top: a log file per process, one registry whose
`stop_all` stops everything the run started (also on Ctrl-C or an error), taskset
pinning, and CPU and memory read from /proc. Nothing here looks for processes by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from tests.support.processes import HOST, free_port, launch, stop_pid, wait_until

__all__ = [
    "HOST",
    "Process",
    "Processes",
    "Stoppable",
    "child_process",
    "cpu_seconds",
    "free_port",
    "machine_busy_seconds",
    "pinned",
    "process_tree",
    "rss_kib",
    "set_affinity",
    "wait_for",
]

_CLK_TCK = os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def child_process(
    argv: list[str], env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """A child process for a standalone script, stopped by its PID (SIGTERM, then SIGKILL)."""
    proc = launch(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        stop_pid(proc)


def process_tree(pid: int) -> list[int]:
    """pid and its live descendants, from /proc/<pid>/task/*/children (bounded walk)."""
    seen: list[int] = []
    todo = [pid]
    while todo and len(seen) < 1000:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    todo.extend(int(c) for c in (task / "children").read_text().split())
    return seen


def cpu_seconds(pid: int) -> float:
    """utime + stime of pid and its descendants, in seconds (0 once gone)."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{member}/stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])
    return total / _CLK_TCK


def rss_kib(pid: int) -> int:
    """Resident memory of pid and its descendants (VmRSS), in KiB."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{member}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
                    break
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs spent busy (not idle, not waiting on I/O) since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / _CLK_TCK


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    """cmd run on one CPU (taskset, so that every thread inherits it), or as is."""
    if cpu is None or cpu >= (os.cpu_count() or 1):
        return cmd
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cpu), *cmd] if taskset else cmd


def set_affinity(pid: int, cpus: set[int] | None, *, tree: bool = True) -> None:
    """Pin every thread of pid, and of its descendants when `tree`, to `cpus` (None:
    every CPU).

    Per thread, since sched_setaffinity applies to one; threads started later inherit
    their creator's mask. CPUs the machine lacks are dropped (a one-CPU machine runs all)."""
    every = set(range(os.cpu_count() or 1))
    mask = (cpus & every or every) if cpus is not None else every
    for member in process_tree(pid) if tree else [pid]:
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{member}/task").iterdir():
                with contextlib.suppress(OSError, ValueError):
                    os.sched_setaffinity(int(task.name), mask)


@dataclass
class Process:
    """One started process; its output goes to a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after `timeout`; always reaps the PID."""
        stop_pid(self.popen, timeout=timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


class Stoppable(Protocol):
    """What the registry can stop: a `Process`, or a support-package helper it adopted."""

    @property
    def pid(self) -> int: ...

    def stop(self) -> object: ...


class Processes:
    """The processes one run started; `stop_all` stops them, last started first."""

    def __init__(self, logdir: Path, env: dict[str, str] | None = None) -> None:
        self.logdir = logdir
        self.env = env or {}  # set in every started process's environment
        self._procs: list[Stoppable] = []

    def start(
        self,
        name: str,
        cmd: list[str],
        *,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> Process:
        env = {**(os.environ if env is None else env), **self.env}
        log_path = self.logdir / f"{name}.log"
        log = open(log_path, "wb")  # noqa: SIM115 (closed by Process.stop)
        try:
            popen = launch(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        except BaseException:
            log.close()
            raise
        proc = Process(name, popen, log_path, log)
        self._procs.append(proc)
        return proc

    def adopt(self, proc: Stoppable) -> None:
        """Stop `proc` with the others (a RedisServer the support package started)."""
        self._procs.append(proc)

    def stop(self, proc: Stoppable) -> None:
        proc.stop()
        with contextlib.suppress(ValueError):
            self._procs.remove(proc)

    def stop_all(self) -> None:
        while self._procs:
            proc = self._procs.pop()
            with contextlib.suppress(Exception):
                proc.stop()


def wait_for(check: Callable[[], bool], what: str, proc: Process, timeout: float = 30.0) -> None:
    """Poll `check()` every 0.1 s until true; a process start has no event to await."""
    wait_until(
        check,
        alive=proc.alive,
        what=f"{proc.name}: {what}",
        timeout=timeout,
        details=lambda: f"log:\n{proc.log_tail()}",
        interval=0.1,
    )

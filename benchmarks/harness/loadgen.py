"""The load generator: worker processes, each one uvloop event loop, driven over pipes.

A worker holds `WsClient` subscribers and runs `httppub.publish`; it answers
commands (`connect`, `begin`, `status`, `samples`, `publish`, `close_all`, `stop`)
sent by the suite through a multiprocessing pipe, read by a thread so that the pipe
stays blocking and answers of any size can be written from the loop. `LoadGen` is
the suite's side: it starts the workers (spawned, so they share nothing with the
suite's loop), calls them, and stops them by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import resource
import threading
import time
from array import array
from multiprocessing.connection import Connection
from typing import Any

from . import httppub, sockpub
from .wsclient import PROBE_EVERY, Acks, Readers, Tally, WsConn, connect

CALL_TIMEOUT_S = 180.0


class Worker:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.tally = Tally()
        self.readers: Readers | None = None
        self.clients: list[WsConn] = []
        self.publishers: list[WsConn] = []
        self.pub_tally = Tally()  # the publishers' own copies of events: not counted
        self.dialect = sockpub.PEER_DIALECT
        self.done = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.readers = Readers()
        threading.Thread(target=self._read_commands, args=(loop,), daemon=True).start()
        try:
            await self.done.wait()
        finally:
            self.cmd_close_all()
            if self.readers is not None:
                self.readers.close()
            for task in self.tasks:
                task.cancel()

    def _read_commands(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                cmd = self.conn.recv()
            except (EOFError, OSError):
                loop.call_soon_threadsafe(self.done.set)
                return
            loop.call_soon_threadsafe(self._start, cmd)
            if cmd[0] == "stop":
                return

    def _start(self, cmd: tuple[Any, ...]) -> None:
        task = asyncio.create_task(self._answer(cmd))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _answer(self, cmd: tuple[Any, ...]) -> None:
        try:
            result: Any = getattr(self, "cmd_" + cmd[0])(*cmd[1:])
            if asyncio.iscoroutine(result):
                result = await result
        except Exception as exc:  # reported to the suite, which stops the run
            result = {"error": f"{type(exc).__name__}: {exc}"}
        self.conn.send(result)

    async def cmd_connect(
        self, host: str, specs: list[tuple[int, bytes, bytes]], concurrency: int, timeout: float
    ) -> dict[str, Any]:
        """Open one client per (port, auth, room), `concurrency` handshakes at a time."""
        gate = asyncio.Semaphore(concurrency)
        readers = self.readers
        if readers is None:
            raise RuntimeError("the worker is not running")
        errors: list[str] = []
        cpu0, t0 = time.process_time(), time.perf_counter()

        async def one(i: int, port: int, auth: bytes, room: bytes) -> None:
            async with gate:
                try:
                    probe = i % PROBE_EVERY == 0
                    client = await connect(
                        self.tally, readers, host, port, auth, room, probe, timeout
                    )
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.clients.append(client)

        await asyncio.gather(*(one(i, *spec) for i, spec in enumerate(specs)))
        return {
            "connected": len(specs) - len(errors),
            "n_errors": len(errors),
            "errors": errors[:3],
            "elapsed": time.perf_counter() - t0,
            "cpu": time.process_time() - cpu0,
        }

    async def cmd_connect_publishers(
        self,
        host: str,
        specs: list[tuple[int, bytes, bytes]],
        concurrency: int,
        timeout: float,
        dialect: str,
    ) -> dict[str, Any]:
        """Open one publishing client per (port, auth, room): joined to its room."""
        readers = self.readers
        if readers is None:
            raise RuntimeError("the worker is not running")
        self.dialect = dialect
        gate = asyncio.Semaphore(concurrency)
        errors: list[str] = []

        async def one(port: int, auth: bytes, room: bytes) -> None:
            async with gate:
                try:
                    conn = await connect(
                        self.pub_tally, readers, host, port, auth, room, False, timeout, Acks()
                    )
                except (OSError, TimeoutError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                else:
                    self.publishers.append(conn)

        await asyncio.gather(*(one(*spec) for spec in specs))
        return {"connected": len(specs) - len(errors), "errors": errors[:3]}

    async def cmd_client_publish(
        self, total: int, duration: float, tag: str, phase: float, worker: int
    ) -> dict[str, Any]:
        tally = await sockpub.publish(
            self.publishers, self.dialect, total, duration, tag, phase, worker
        )
        return {
            "ok": tally.ok,
            "errors": tally.errors,
            "skipped": tally.skipped,
            "error_samples": tally.error_samples,
        }

    def cmd_close_all(self) -> int:
        for client in [*self.clients, *self.publishers]:
            if self.readers is not None:
                self.readers.remove(client)
            client.close()
        n = len(self.clients)
        self.clients = []
        self.publishers = []
        return n

    def cmd_begin(self, tag: str) -> bool:
        self.tally.tag = f"{tag}:".encode()
        self.tally.lat_us = array("q")
        return True

    def cmd_status(self) -> dict[str, Any]:
        lost = [c.close_reason for c in self.clients if not c.open]
        return {
            "events": self.tally.events,
            "last_ns": self.tally.last_ns,
            "cpu": time.process_time(),
            "sys": os.times().system,
            "open": len(self.clients) - len(lost),
            "lost": lost[:3],
        }

    def cmd_samples(self) -> bytes:
        data = self.tally.lat_us.tobytes()
        self.tally.lat_us = array("q")
        return data

    async def cmd_publish(self, *args: Any) -> dict[str, Any]:
        tally = await httppub.publish(*args)
        return {
            "ok": tally.ok,
            "errors": tally.errors,
            "skipped": tally.skipped,
            "error_samples": tally.error_samples,
        }

    def cmd_stop(self) -> bool:
        self.done.set()
        return True


def worker_main(conn: Connection) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        runner: Any = asyncio.run
    else:
        runner = uvloop.run
    with contextlib.suppress(KeyboardInterrupt):
        runner(Worker(conn).run())


class WorkerHandle:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=worker_main, args=(child,), daemon=True)
        self.proc.start()
        child.close()
        self.lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        return int(self.proc.pid)

    async def call(self, *cmd: Any, timeout: float = CALL_TIMEOUT_S) -> Any:
        async with self.lock:
            self.conn.send(cmd)
            if not await asyncio.to_thread(self.conn.poll, timeout):
                raise TimeoutError(f"load-generator worker did not answer {cmd[0]} in {timeout}s")
            result = self.conn.recv()
        if isinstance(result, dict) and set(result) == {"error"}:
            raise RuntimeError(f"load-generator worker failed on {cmd[0]}: {result['error']}")
        return result

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.send(("stop",))
        self.proc.join(5)
        for signal_it in (self.proc.terminate, self.proc.kill):
            if self.proc.is_alive():
                signal_it()
                self.proc.join(3)


class LoadGen:
    """`workers` load-generator processes; `stop()` ends them (also after errors)."""

    def __init__(self, workers: int) -> None:
        ctx = mp.get_context("spawn")
        self.workers: list[WorkerHandle] = []
        try:
            for _ in range(workers):
                self.workers.append(WorkerHandle(ctx))
        except BaseException:
            self.stop()
            raise

    async def all(self, *cmd: Any, timeout: float = CALL_TIMEOUT_S) -> list[Any]:
        """The same command to every worker, concurrently."""
        return list(await asyncio.gather(*(w.call(*cmd, timeout=timeout) for w in self.workers)))

    async def each(self, cmds: list[tuple[Any, ...]], timeout: float = CALL_TIMEOUT_S) -> list[Any]:
        """cmds[i] to worker i, concurrently."""
        calls = (w.call(*c, timeout=timeout) for w, c in zip(self.workers, cmds, strict=True))
        return list(await asyncio.gather(*calls))

    def stop(self) -> None:
        for w in self.workers:
            w.stop()

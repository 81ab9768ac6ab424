"""`roomcast serve` for the benchmark suite, with a way to ask the process about itself.

The suite runs roomcast through this launcher so that the idle scenario can report
what a connection costs inside the process, not only its RSS, without touching
roomcast's source: `roomcast.cli.main(["serve", ...])` runs as usual (settings from
the ROOMCAST_* variables, uvloop), and this module's `factory` builds the same
application `roomcast serve` builds, adding a SIGUSR1 handler that writes a JSON
line to $BENCH_STATS_FILE:

    {"n": <how many times asked>, "tasks": len(asyncio.all_tasks()),
     "pymalloc_bytes": <in pymalloc's allocated blocks>,
     "malloc_bytes": <glibc mallinfo2 uordblks + hblkhd>, "gc_objects": <len(gc.get_objects())>}

`pymalloc_bytes + malloc_bytes` is the Python heap (small objects live in pymalloc's
mmap'd arenas, larger ones in malloc); nothing is traced while connections arrive,
so asking costs nothing until the suite asks.

    python benchmarks/roomcast_launcher.py [roomcast serve options]
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import json
import os
import re
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any

ASKED = 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
            "uordblks", "fordblks", "keepcost",
        )
    ]  # fmt: skip


def malloc_bytes() -> int:
    """Bytes glibc's malloc has handed out and not had back (0 where there is no glibc)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        fn = libc.mallinfo2
    except (OSError, AttributeError):
        return 0
    fn.restype = _Mallinfo2
    info = fn()
    return int(info.uordblks + info.hblkhd)


def pymalloc_bytes() -> int:
    """Bytes in pymalloc's allocated blocks, from sys._debugmallocstats (it prints to fd 2)."""
    with tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode(errors="replace")
    found = re.search(r"# bytes in allocated blocks\s*=\s*([\d,]+)", text)
    return int(found.group(1).replace(",", "")) if found else 0


def write_stats() -> None:
    global ASKED
    ASKED += 1
    path = os.environ.get("BENCH_STATS_FILE")
    if not path:
        return
    gc.collect()
    stats = {
        "n": ASKED,
        "tasks": len(asyncio.all_tasks()),
        "pymalloc_bytes": pymalloc_bytes(),
        "malloc_bytes": malloc_bytes(),
        "gc_objects": len(gc.get_objects()),
    }
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(stats))
    tmp.replace(path)


def factory(settings: Any) -> Any:
    """roomcast's own application, as `roomcast serve` builds it, plus the SIGUSR1 handler."""
    import roomcast

    with contextlib.suppress(RuntimeError):  # called in the server's running loop
        asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, write_stats)
    return roomcast.create_app(settings)


def main() -> int:
    from roomcast.cli import main as roomcast_main

    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    return roomcast_main(["serve", "--app", "roomcast_launcher:factory", *sys.argv[1:]])


if __name__ == "__main__":
    sys.exit(main())

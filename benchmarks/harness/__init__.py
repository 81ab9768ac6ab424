"""The pieces of roomcast's benchmark suite (`benchmarks/suite.py`, `make bench`).

procs      processes started by the suite: a log each, one registry, CPU and memory from /proc
redis      a private redis-server on a free loopback port (the tests' RedisServer)
servers    roomcast and its two peers (plain python-socketio, Node socket.io)
wsclient   a raw Socket.IO-over-WebSocket client protocol (the subscribers)
httppub    a raw HTTP/1.1 publisher protocol (the publishers)
loadgen    load-generator worker processes and the handle that drives them
stats      step results, percentiles, the rate ladder's records
scenarios  the scenarios: fan-out ladders, many rooms, idle connections
report     docs/benchmarks.md; plots: the PNG figures

Processes (free ports, start, readiness, stop by PID) and the Socket.IO wire come from
the support package the tests use, `tests.support`; the repository root is put on
sys.path here for it, since the scripts are run as `python benchmarks/<script>.py`.
"""

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)

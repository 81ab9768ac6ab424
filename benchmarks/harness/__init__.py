"""The pieces of roomcast's benchmark suite (`benchmarks/suite.py`, `make bench`).

procs      processes started by the suite: launch, CPU and memory from /proc, stop by PID
redis      a private redis-server on a free loopback port
servers    roomcast and its two peers (plain python-socketio, Node socket.io)
wsclient   a raw Socket.IO-over-WebSocket client protocol (the subscribers)
httppub    a raw HTTP/1.1 publisher protocol (the publishers)
loadgen    load-generator worker processes and the handle that drives them
stats      step results, percentiles, the rate ladder's records
scenarios  the scenarios: fan-out ladders, many rooms, idle connections
report     docs/benchmarks.md; plots: the PNG figures
"""

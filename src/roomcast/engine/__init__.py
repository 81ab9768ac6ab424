"""roomcast's own Engine.IO v4 / Socket.IO v5 server (see contract.py)."""

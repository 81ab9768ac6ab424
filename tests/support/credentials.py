"""The secret and API key every test server and test process is started with.

Kept apart from server.py (which imports the whole server stack) so that a process
helper or the CLI can name them without loading uvicorn and python-socketio.
"""

from __future__ import annotations

SECRET = "test-secret-0123456789abcdef0123456789abcdef"
API_KEY = "test-api-key-0123456789"

"""Reconnect delays (the policy lives in roomcast.backoff, shared with the server)."""

from ..backoff import Backoff

__all__ = ["Backoff"]

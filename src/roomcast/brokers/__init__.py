"""Brokers: sequencing, history and fan-out of room events (memory and Redis)."""

from .base import Broker, BrokerSink, LockOutcome, PublishCommand, PublishOutcome

__all__ = ["Broker", "BrokerSink", "LockOutcome", "PublishCommand", "PublishOutcome"]

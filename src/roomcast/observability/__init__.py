"""Metrics (an app-owned Prometheus registry) and structured logging."""

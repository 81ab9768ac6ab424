"""Optimistic concurrency and editing leases for annotation rooms (pure rules)."""

"""Rate-limit arithmetic (pure, with an injected clock)."""

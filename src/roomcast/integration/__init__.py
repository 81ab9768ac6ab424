"""Talking to the platform over HTTP (SPEC section 10): join and publish proxies, webhooks."""

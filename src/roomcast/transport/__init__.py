"""The edges: Socket.IO handlers and HTTP routes. Parse, call a service, reply."""

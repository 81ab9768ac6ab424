"""The wire contract: payload models of events and of client requests."""

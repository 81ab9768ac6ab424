"""Recovery decisions: replay from history, or tell the client to reload."""

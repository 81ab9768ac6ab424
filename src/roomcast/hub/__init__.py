"""The local hub: this instance's rooms, their members, and every push to a socket."""

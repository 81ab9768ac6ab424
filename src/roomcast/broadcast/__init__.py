"""Publishing (EventBroadcastService) and the fan-out to this instance's sockets."""

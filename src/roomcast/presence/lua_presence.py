"""Lua scripts of the Redis presence store, read from package files (presence/lua/).

Kept as files like the broker's (brokers/lua/), so each script can be read and
linted as Lua. Connection ids are "<instance id>|<sid>", so a dead instance's
entries can be found and removed by the others.
"""

from __future__ import annotations

from importlib.resources import files


def _read(name: str) -> str:
    return files("roomcast.presence").joinpath("lua", name).read_text(encoding="utf-8")


ADD = _read("add.lua")
REMOVE = _read("remove.lua")
REAP_ROOM = _read("reap_room.lua")
REGISTER = _read("register.lua")
REAP_USER = _read("reap_user.lua")
HEARTBEAT = _read("heartbeat.lua")

"""Lua scripts of the Redis presence store (small enough to keep inline).

Connection ids are "<instance id>|<sid>", so a dead instance's entries can be
found and removed by the others.
"""

# KEYS: pconn, pusers, pnames
# ARGV: conn id, user id, name, TTL (s)
# -> {first (0/1), connections of the user, users in the room}
ADD = """
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
local n
if added == 1 then
  n = redis.call('HINCRBY', KEYS[2], ARGV[2], 1)
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
else
  n = tonumber(redis.call('HGET', KEYS[2], ARGV[2]) or '1')
end
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end
local first = 0
if added == 1 and n == 1 then first = 1 end
return {first, n, redis.call('HLEN', KEYS[2])}
"""

# KEYS: pconn, pusers, pnames
# ARGV: conn id, user id
# -> {last (0/1), name, users in the room}
REMOVE = """
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then
  return {0, '', redis.call('HLEN', KEYS[2])}
end
local n = redis.call('HINCRBY', KEYS[2], ARGV[2], -1)
if n <= 0 then
  local name = redis.call('HGET', KEYS[3], ARGV[2]) or ''
  redis.call('HDEL', KEYS[2], ARGV[2])
  redis.call('HDEL', KEYS[3], ARGV[2])
  return {1, name, redis.call('HLEN', KEYS[2])}
end
return {0, '', redis.call('HLEN', KEYS[2])}
"""

# Remove every connection of a dead instance from one room.
# KEYS: pconn, pusers, pnames; ARGV: instance id prefix ("<id>|")
# -> {users in the room, user id, name, user id, name, ...} for each user who left
REAP_ROOM = """
local all = redis.call('HGETALL', KEYS[1])
local out = {0}
local prefix = ARGV[1]
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #prefix) == prefix then
    redis.call('HDEL', KEYS[1], all[i])
    local user = all[i + 1]
    local n = redis.call('HINCRBY', KEYS[2], user, -1)
    if n <= 0 then
      table.insert(out, user)
      table.insert(out, redis.call('HGET', KEYS[3], user) or '')
      redis.call('HDEL', KEYS[2], user)
      redis.call('HDEL', KEYS[3], user)
    end
  end
end
out[1] = redis.call('HLEN', KEYS[2])
return out
"""

# KEYS: user conns hash
# ARGV: conn id, limit, instance id, TTL (s)
# -> 1 registered, 0 over the limit
REGISTER = """
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
end
redis.call('EXPIRE', KEYS[1], ARGV[4])
return 1
"""

# KEYS: user conns hash; ARGV: instance id prefix -> connections removed
REAP_USER = """
local all = redis.call('HGETALL', KEYS[1])
local removed = 0
for i = 1, #all, 2 do
  if string.sub(all[i], 1, #ARGV[1]) == ARGV[1] then
    redis.call('HDEL', KEYS[1], all[i])
    removed = removed + 1
  end
end
return removed
"""

# Heartbeat stamped with the Redis server's clock, so that instances on machines
# whose clocks disagree are still judged by one clock.
# KEYS: instances zset; ARGV: instance id, TTL (s) -> the server time (ms)
HEARTBEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return now
"""

-- Remove every connection of a dead instance from one room.
-- KEYS: pconn, pusers, pnames; ARGV: instance id prefix ("<id>|")
-- -> {users in the room, user id, name, user id, name, ...} for each user who left
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

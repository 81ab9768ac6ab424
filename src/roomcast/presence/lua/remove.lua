-- KEYS: pconn, pusers, pnames
-- ARGV: conn id, user id
-- -> {last (0/1), name, users in the room}
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

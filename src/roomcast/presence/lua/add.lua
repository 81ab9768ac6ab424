-- KEYS: pconn, pusers, pnames
-- ARGV: conn id, user id, name, TTL (s), list ('1': the room's members too)
-- -> {first (0/1), connections of the user, users in the room}, and with list
--    {user id, connections, name} of each user in the room after it
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
local out = {first, n, redis.call('HLEN', KEYS[2])}
if ARGV[5] == '1' then
  local counts = redis.call('HGETALL', KEYS[2])
  for i = 1, #counts, 2 do
    table.insert(out, counts[i])
    table.insert(out, counts[i + 1])
    table.insert(out, redis.call('HGET', KEYS[3], counts[i]) or '')
  end
end
return out

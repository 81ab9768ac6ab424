-- Heartbeat stamped with the Redis server's clock, so that instances on machines
-- whose clocks disagree are still judged by one clock.
-- KEYS: instances zset; ARGV: instance id, TTL (s) -> the server time (ms)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
return now

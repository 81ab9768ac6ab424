-- Settle one room after a failover (after sequence.lua, whose ARGV it ignores).
-- ARGV[5] the old master's replication id, ARGV[6] the room's epoch and
-- ARGV[7] its seq as the old master held them once it stopped taking writes.
-- Returns 1 kept (this server holds every event the old master handed out, so
-- the room keeps its epoch), 2 lost (the next call starts a new epoch), 0 not
-- this room's failover (already settled, written since, or another history).
local old_node, old_epoch, old_seq = ARGV[5], ARGV[6], tonumber(ARGV[7])
local node, previous = replication_ids()
local state = redis.call('HMGET', meta, 'epoch', 'seq', 'node')
if not state[1] or state[3] ~= old_node or previous ~= old_node then
  return 0
end
local seq = tonumber(state[2])
-- The meta and the stream agree: the last entry is the head (or both are empty).
local last = redis.call('XREVRANGE', hist, '+', '-', 'COUNT', 1)
local head = 0
if #last > 0 then head = tonumber(string.match(last[1][1], '^(%d+)')) end
if state[1] == old_epoch and seq == old_seq and head == seq then
  redis.call('HSET', meta, 'node', node)
  return 1
end
return 2

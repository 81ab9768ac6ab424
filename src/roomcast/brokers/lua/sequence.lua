-- Shared prelude of the room scripts: epoch and sequencing of one room.
-- KEYS[1] meta (hash: epoch, seq, node, fencing), KEYS[2] history stream,
-- KEYS[3] pub/sub channel. Every key of one room shares the room's hash tag.
-- ARGV[1] new epoch (used only if the epoch must change), ARGV[2] now (ms),
-- ARGV[3] history size, ARGV[4] history TTL (s).

local meta, hist, channel = KEYS[1], KEYS[2], KEYS[3]
local new_epoch, now = ARGV[1], tonumber(ARGV[2])
local history_size, ttl = ARGV[3], tonumber(ARGV[4])

-- The replication history the server writes: master_replid changes when another
-- server becomes master (a Sentinel failover) or when a server restarts, the two
-- ways written events can be lost. A room last written under another history gets
-- a new epoch, so an (epoch, seq) is never handed out for two different events,
-- unless the failover was settled for it (settle.lua): its meta then names this
-- server's history again, with the epoch it had.
local function replication_ids()
  local info = redis.call('INFO', 'replication')
  return string.match(info, 'master_replid:(%w+)'), string.match(info, 'master_replid2:(%w+)')
end

-- Returns epoch, head seq; starts a new epoch (at seq 0, the old history dropped)
-- when the room is new, expired, or was last written under another history.
local function current_stream()
  local state = redis.call('HMGET', meta, 'epoch', 'seq', 'node')
  local node = replication_ids()
  if state[1] and state[3] == node then
    return state[1], tonumber(state[2])
  end
  redis.call('DEL', hist)
  redis.call('HSET', meta, 'epoch', new_epoch, 'seq', 0, 'node', node)
  redis.call('EXPIRE', meta, ttl)
  return new_epoch, 0
end

-- Sequence, store and publish one event; returns the envelope (JSON text).
-- Every piece is already JSON (or a safe token) except epoch and seq.
local function append(epoch, seq, id, event_type, room, actor_json, cid_json, data_json)
  seq = seq + 1
  local envelope = '{"id":"' .. id .. '","type":"' .. event_type .. '","room":"' .. room ..
    '","epoch":"' .. epoch .. '","seq":' .. seq .. ',"ts":' .. now .. ',"actor":' .. actor_json ..
    ',"client_event_id":' .. cid_json .. ',"data":' .. data_json .. '}'
  redis.call('HSET', meta, 'seq', seq)
  redis.call('XADD', hist, 'MAXLEN', history_size, seq .. '-1', 'e', envelope)
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', hist, ttl)
  redis.call('PUBLISH', channel, 'p' .. envelope)
  return envelope, seq
end

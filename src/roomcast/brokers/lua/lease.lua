-- Grant, renew and release editing leases (after sequence.lua).
-- KEYS[4] leases (hash: annotation id -> lease JSON)
-- ARGV[5] event id, [6] room, [7] mode: lock | unlock | release_holder | expire,
-- [8] annotation id ('' for release_holder), [9] holder member JSON,
-- [10] holder user id, [11] ttl (ms)
-- lock:   {0, lease JSON, envelope} | {2, 'locked', details JSON}
-- others: {0, envelope, envelope, ...} (one per release) | {2, 'locked', details JSON}

local leases = KEYS[4]
local room, mode, aid = ARGV[6], ARGV[7], ARGV[8]
local user = ARGV[10]
local epoch, seq = current_stream()

local function event_data(lease, state)
  return cjson.encode({annotation_id = lease.annotation_id, state = state,
    holder = lease.holder, fencing_token = lease.fencing_token, expires_at = lease.expires_at})
end

local function live(lease)
  return lease ~= nil and tonumber(lease.expires_at) > now
end

local function load(id)
  local raw = redis.call('HGET', leases, id)
  if raw then return cjson.decode(raw) end
  return nil
end

if mode == 'lock' then
  local lease = load(aid)
  if live(lease) and lease.holder.user_id ~= user then
    return {2, 'locked', cjson.encode({holder = lease.holder, expires_at = lease.expires_at})}
  end
  local holder = cjson.decode(ARGV[9])
  local expires = now + tonumber(ARGV[11])
  if live(lease) then
    lease.holder = holder
    lease.expires_at = expires
  else
    local token = redis.call('HINCRBY', meta, 'fencing', 1)
    lease = {annotation_id = aid, holder = holder, fencing_token = token, expires_at = expires}
  end
  local encoded = cjson.encode(lease)
  redis.call('HSET', leases, aid, encoded)
  redis.call('EXPIRE', leases, ttl)
  local envelope = append(epoch, seq, ARGV[5], 'annotation_lock', room, 'null', 'null',
    event_data(lease, 'locked'))
  return {0, encoded, envelope}
end

local out = {0}
local function release(id, lease)
  redis.call('HDEL', leases, id)
  local envelope
  envelope, seq = append(epoch, seq, ARGV[5] .. string.format('%04d', #out), 'annotation_lock',
    room, 'null', 'null', event_data(lease, 'released'))
  table.insert(out, envelope)
end

-- A lease that expired but was not swept yet is released (and announced) too.
if mode == 'unlock' then
  local lease = load(aid)
  if lease == nil then return out end
  if live(lease) and lease.holder.user_id ~= user then
    return {2, 'locked', cjson.encode({holder = lease.holder, expires_at = lease.expires_at})}
  end
  release(aid, lease)
elseif mode == 'release_holder' then
  local all = redis.call('HGETALL', leases)
  for i = 1, #all, 2 do
    local lease = cjson.decode(all[i + 1])
    if lease.holder.user_id == user then release(all[i], lease) end
  end
elseif mode == 'expire' then
  local all = redis.call('HGETALL', leases)
  for i = 1, #all, 2 do
    local lease = cjson.decode(all[i + 1])
    if not live(lease) then release(all[i], lease) end
  end
end
return out

-- Publish one room event (after sequence.lua).
-- KEYS[4] annotation versions (hash), KEYS[5] leases (hash), KEYS[6] idempotency key
-- ARGV[5] event id, [6] type, [7] room, [8] actor JSON, [9] client_event_id JSON,
-- [10] data JSON, [11] idempotency TTL (s, 0: no key), [12] has write guard (0/1),
-- [13] annotation id, [14] action, [15] base version ('' = none), [16] user id,
-- [17] fencing token ('' = none)
-- Returns {0, envelope} | {1, envelope} (duplicate) | {2, code, details JSON}

local versions, leases, idem = KEYS[4], KEYS[5], KEYS[6]
local idem_ttl = tonumber(ARGV[11])
if idem_ttl > 0 then
  local seen = redis.call('GET', idem)
  if seen then return {1, seen} end
end

local data = ARGV[10]
local epoch, seq = current_stream()

if ARGV[12] == '1' then
  local aid, action, user = ARGV[13], ARGV[14], ARGV[16]
  local lease_json = redis.call('HGET', leases, aid)
  local lease = nil
  if lease_json then
    lease = cjson.decode(lease_json)
    if tonumber(lease.expires_at) <= now then lease = nil end
  end
  if lease and lease.holder.user_id ~= user then
    return {2, 'locked', cjson.encode({holder = lease.holder, expires_at = lease.expires_at})}
  end
  if ARGV[17] ~= '' and (lease == nil or tonumber(lease.fencing_token) ~= tonumber(ARGV[17])) then
    local details = {}
    if lease then details = {holder = lease.holder, expires_at = lease.expires_at} end
    return {2, 'locked_fencing', cjson.encode(details)}
  end
  local state = redis.call('HGET', versions, aid)
  local version, deleted = 0, false
  if state then
    version = tonumber(string.match(state, '^(%d+)'))
    deleted = string.sub(state, -2) == ':d'
  end
  local new_version
  if action == 'create' then
    if version ~= 0 then return {2, 'conflict_exists', tostring(version)} end
    new_version = 1
    deleted = false
  else
    if version == 0 or deleted then return {2, 'conflict_missing', tostring(version)} end
    if ARGV[15] == '' or tonumber(ARGV[15]) ~= version then
      return {2, 'conflict_stale', tostring(version)}
    end
    new_version = version + 1
    deleted = action == 'delete'
  end
  redis.call('HSET', versions, aid, new_version .. (deleted and ':d' or ''))
  redis.call('EXPIRE', versions, ttl)
  if data == '{}' then
    data = '{"version":' .. new_version .. '}'
  else
    data = '{"version":' .. new_version .. ',' .. string.sub(data, 2)
  end
end

local envelope = append(epoch, seq, ARGV[5], ARGV[6], ARGV[7], ARGV[8], ARGV[9], data)
-- Annotation state lives as long as the room's stream does.
redis.call('EXPIRE', versions, ttl)
redis.call('EXPIRE', leases, ttl)
if idem_ttl > 0 then
  redis.call('SET', idem, envelope, 'EX', idem_ttl)
end
return {0, envelope}

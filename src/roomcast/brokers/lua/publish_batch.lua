-- Publish events of one room, in order, in one atomic step (after sequence.lua).
-- KEYS[4] annotation versions (hash), KEYS[5] leases (hash); then, when ARGV[7]
-- is not '0', KEYS[6] the webhook journal (stream) and KEYS[7] its counter; then
-- the idempotency keys of the events that have one.
-- ARGV[5] room, ARGV[6] idempotency TTL (s), ARGV[7] the journal's MAXLEN ('0':
-- webhooks off, nothing is journaled and the journal's keys are not passed); then
-- two arguments per event:
--   head: event id (26 characters) .. type, optionally followed by '\n' and the
--         fields that most events leave out, '\n'-separated:
--         actor JSON, client_event_id JSON, idempotency key index in KEYS (0: none),
--         annotation id ('': no write guard), action, base version, fencing token,
--         journal ('j': a client-published event, journaled for webhooks), user id
--         (JSON text holds no raw newline; the user id, which may, comes last);
--   data JSON.
-- A journaled event's webhook entry is appended here, in the step that gives it
-- its seq, so the journal holds a room's client events in seq order whichever
-- instances published them (SPEC 10). The journal is one stream for the whole
-- deployment, outside the room's hash slot: under Redis Cluster a script may not
-- touch it beside the room's keys, and it would have to become one journal per
-- slot (see redis_keys.py); on one server or under Sentinel this is atomic.
-- Returns one string, 'epoch first_seq outcomes' and, when there are extras, '\n'
-- and a JSON list of them: outcomes has one character per event, '0' written, 'v'
-- written (an annotation write; its version is the next extra), '1' an idempotent
-- repeat (the first envelope is the next extra), '2' refused (code and details
-- JSON are the next two extras). Written events take seqs from the first seq on,
-- in order. One short reply per call, since parsing replies is a large part of
-- the publisher's work.
-- An event refused by its guard takes no seq and does not stop the others.

local versions, leases = KEYS[4], KEYS[5]
local room, idem_ttl = ARGV[5], tonumber(ARGV[6])
local journal_max = ARGV[7]
local journal, journal_counter = KEYS[6], KEYS[7]
local epoch, seq = current_stream()
local first_seq = seq + 1
local outcomes = {}
local extras = {}
local written = false
local envelopes = {}  -- published together at the end
local prefix = ',"room":"' .. room .. '","epoch":"' .. epoch .. '","seq":'

-- The guard of one annotation write: refusal {code, details} or nil, and the new version.
local function check_write(aid, action, base, fencing, user)
  local lease_json = redis.call('HGET', leases, aid)
  local lease = nil
  if lease_json then
    lease = cjson.decode(lease_json)
    if tonumber(lease.expires_at) <= now then lease = nil end
  end
  if lease and lease.holder.user_id ~= user then
    return {'locked', cjson.encode({holder = lease.holder, expires_at = lease.expires_at})}
  end
  if fencing ~= '' and (lease == nil or tonumber(lease.fencing_token) ~= tonumber(fencing)) then
    local details = {}
    if lease then details = {holder = lease.holder, expires_at = lease.expires_at} end
    return {'locked_fencing', cjson.encode(details)}
  end
  local state = redis.call('HGET', versions, aid)
  local version, deleted = 0, false
  if state then
    version = tonumber(string.match(state, '^(%d+)'))
    deleted = string.sub(state, -2) == ':d'
  end
  local new_version
  if action == 'create' then
    if version ~= 0 then return {'conflict_exists', tostring(version)} end
    new_version = 1
    deleted = false
  else
    if version == 0 or deleted then return {'conflict_missing', tostring(version)} end
    if base == '' or tonumber(base) ~= version then
      return {'conflict_stale', tostring(version)}
    end
    new_version = version + 1
    deleted = action == 'delete'
  end
  redis.call('HSET', versions, aid, new_version .. (deleted and ':d' or ''))
  return nil, new_version
end

for i = 8, #ARGV, 2 do
  local head, data = ARGV[i], ARGV[i + 1]
  local id = string.sub(head, 1, 26)
  local nl = string.find(head, '\n', 27, true)
  local event_type, actor, cid, idem = nil, 'null', 'null', nil
  local refusal, version = nil, ''
  local repeated, journaled = nil, false
  if nl then
    event_type = string.sub(head, 27, nl - 1)
    local f = {}
    local pos = nl + 1
    for _ = 1, 8 do
      local stop = string.find(head, '\n', pos, true)
      table.insert(f, string.sub(head, pos, stop - 1))
      pos = stop + 1
    end
    local user = string.sub(head, pos)
    actor, cid = f[1], f[2]
    journaled = f[8] == 'j' and journal_max ~= '0'
    if f[3] ~= '0' then
      idem = KEYS[tonumber(f[3])]
      repeated = redis.call('GET', idem)
    end
    if not repeated and f[4] ~= '' then
      refusal, version = check_write(f[4], f[5], f[6], f[7], user)
      if not refusal then
        if data == '{}' then
          data = '{"version":' .. version .. '}'
        else
          data = '{"version":' .. version .. ',' .. string.sub(data, 2)
        end
      end
    end
  else
    event_type = string.sub(head, 27)
  end
  if repeated then
    table.insert(outcomes, '1')
    table.insert(extras, repeated)
  elseif refusal then
    table.insert(outcomes, '2')
    table.insert(extras, refusal[1])
    table.insert(extras, refusal[2])
  else
    seq = seq + 1
    local envelope = '{"id":"' .. id .. '","type":"' .. event_type .. '"' .. prefix .. seq ..
      ',"ts":' .. now .. ',"actor":' .. actor .. ',"client_event_id":' .. cid ..
      ',"data":' .. data .. '}'
    redis.call('XADD', hist, seq .. '-1', 'e', envelope)
    table.insert(envelopes, envelope)
    if idem then redis.call('SET', idem, envelope, 'EX', idem_ttl) end
    if journaled then
      -- The webhook event of SPEC 10, as webhook_events.py would make it.
      local n = redis.call('INCR', journal_counter)
      redis.call('XADD', journal, 'MAXLEN', '~', journal_max, '*', 'n', n,
        'e', '{"id":"ce' .. id .. '","kind":"client_event","event":' .. envelope .. '}')
    end
    written = true
    if version == '' then
      table.insert(outcomes, '0')
    else
      table.insert(outcomes, 'v')
      table.insert(extras, version)
    end
  end
end

if written then
  -- One message for the call: a listener parses one message instead of one per
  -- event. Envelopes hold no raw newline (their JSON escapes it).
  if #envelopes == 1 then
    redis.call('PUBLISH', channel, 'p' .. envelopes[1])
  else
    redis.call('PUBLISH', channel, 'b' .. table.concat(envelopes, '\n'))
  end
  redis.call('HSET', meta, 'seq', seq)
  redis.call('XTRIM', hist, 'MAXLEN', history_size)
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', hist, ttl)
  -- Annotation state lives as long as the room's stream does.
  redis.call('EXPIRE', versions, ttl)
  redis.call('EXPIRE', leases, ttl)
end
local out = epoch .. ' ' .. first_seq .. ' ' .. table.concat(outcomes)
if #extras > 0 then out = out .. '\n' .. cjson.encode(extras) end
return out

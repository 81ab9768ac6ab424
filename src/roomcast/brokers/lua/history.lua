-- Events after a seq (after sequence.lua). ARGV[5] since seq, ARGV[6] limit.
-- Returns {epoch, head, oldest seq (head + 1 when empty), envelope, ...}
local epoch, seq = current_stream()
local since, limit = tonumber(ARGV[5]), tonumber(ARGV[6])
local first = redis.call('XRANGE', hist, '-', '+', 'COUNT', 1)
local oldest = seq + 1
if #first > 0 then oldest = tonumber(string.match(first[1][1], '^(%d+)')) end
local out = {epoch, seq, oldest}
if since < seq then
  local start = since + 1
  if start < oldest then start = oldest end
  local entries = redis.call('XRANGE', hist, start .. '-0', '+', 'COUNT', limit)
  for _, entry in ipairs(entries) do table.insert(out, entry[2][2]) end
end
return out

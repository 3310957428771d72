/**
 * The Lua scripts that make each channel operation one atomic step inside
 * Redis. Times come from Redis's own clock (TIME, in microseconds), bumped
 * past the channel's last time, so they strictly increase per channel whichever
 * node appends; the message ID in the stream is the time itself (`<time>-0`).
 *
 * Keys of a channel (see keys.ts), all in one hash slot:
 *   KEYS[1] stream of messages, one field `b` holding the JSON-encoded body
 *   KEYS[2] hash: t = last time, f = floor (history below it is not vouched
 *           for), b = bytes of the bodies held
 *   KEYS[3] the pub/sub channel announcing `<time> <body>`
 *
 * "Known since" for a channel with no keys (never written, expired, or lost
 * with a Redis restart that kept no data): messages it may have had are older
 * than both the Redis server's start and now minus the channel TTL (keys
 * expire at their last message's time plus the TTL), so a cursor below that
 * bound reports `missed`. A channel created by an append starts its floor
 * there too. Redis knows its start to the second only (uptime_in_seconds
 * counts whole seconds), so the start is taken as the end of that second, so
 * that a loss is never hidden; and a channel's time is never below that
 * start, so that a cursor handed out during that first second is not taken
 * for one from before it (which made chaining clients loop on `missed` for
 * the rest of that second). Times may so run up to a second ahead of the
 * clock while a Redis server is in its first second; they still increase
 * across a restart unless Redis lived less than a second before it.
 */

const PRELUDE = `
local function clock()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function started(now)
  local up = tonumber(string.match(redis.call('INFO', 'server'), 'uptime_in_seconds:(%d+)')) or 0
  return (math.floor(now / 1000000) - up + 1) * 1000000
end
local function knownSince(start, now, ttlMs)
  return math.max(start, now - ttlMs * 1000)
end
local function fmt(n) return string.format('%.0f', n) end
local function idTime(id) return tonumber(string.match(id, '^(%d+)')) end
`;

/**
 * ARGV: body, buffer size, buffer bytes, TTL ms, publish command (PUBLISH or
 * SPUBLISH). Trims the oldest messages past either bound (always keeping the
 * new one) before adding, raises the floor to the last one dropped, refreshes
 * the expiry of both keys (the new time plus the TTL), announces the message, and returns its time.
 */
export const APPEND = `${PRELUDE}
local body = ARGV[1]
local cap = tonumber(ARGV[2])
local bytesCap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local now = clock()
local meta = redis.call('HMGET', KEYS[2], 't', 'f', 'b')
local last, floor, bytes = 0, 0, 0
if meta[1] then
  last, floor, bytes = tonumber(meta[1]), tonumber(meta[2]), tonumber(meta[3])
else
  redis.call('DEL', KEYS[1])
  last = started(now)
  floor = knownSince(last, now, ttl)
end
local time = now
if time <= last then time = last + 1 end
local size = #body
local length = redis.call('XLEN', KEYS[1])
local kept = length
if kept >= cap or bytes + size > bytesCap then
  local from = '-'
  -- A full channel drops exactly one per append: fetch just what the count bound drops, then more in batches while bytes are over.
  local want = math.max(kept - cap + 1, 1)
  while kept > 0 and (kept >= cap or bytes + size > bytesCap) do
    local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', want)
    want = 16
    if #batch == 0 then break end
    for _, entry in ipairs(batch) do
      if not (kept > 0 and (kept >= cap or bytes + size > bytesCap)) then break end
      kept = kept - 1
      bytes = bytes - #entry[2][2]
      floor = math.max(floor, idTime(entry[1]))
      from = '(' .. entry[1]
    end
  end
end
local stamp = fmt(time)
if kept < length then
  redis.call('XADD', KEYS[1], 'MAXLEN', kept + 1, stamp .. '-0', 'b', body)
else
  redis.call('XADD', KEYS[1], stamp .. '-0', 'b', body)
end
redis.call('HSET', KEYS[2], 't', stamp, 'f', fmt(floor), 'b', bytes + size)
local expiry = math.floor(time / 1000) + 1 + ttl
redis.call('PEXPIREAT', KEYS[1], expiry)
redis.call('PEXPIREAT', KEYS[2], expiry)
redis.call(ARGV[5], KEYS[3], stamp .. ' ' .. body)
return time
`;

/**
 * ARGV: since (-1: no cursor), most messages, most bytes, TTL ms. Returns
 * { time, missed (0|1), time1, body1, time2, body2, ... }: the messages newer
 * than `since`, oldest first, within the caps (at least one when any), and
 * the time of the last one, or the channel's current time (never below
 * `since`) when none. A channel with no keys has the current Redis time minus
 * one (or the Redis start, if later) as its time: every later append is given
 * a greater one.
 */
export const READ = `${PRELUDE}
local since = tonumber(ARGV[1])
local meta = redis.call('HMGET', KEYS[2], 't', 'f')
if not meta[1] then
  local now = clock()
  local start = started(now)
  local time = math.max(now - 1, start)
  if since < 0 then return { time, 0 } end
  local missed = 0
  if since < knownSince(start, now, tonumber(ARGV[4])) then missed = 1 end
  return { math.max(time, since), missed }
end
local last = tonumber(meta[1])
if since < 0 then return { last, 0 } end
local missed = 0
if since < tonumber(meta[2]) then missed = 1 end
if since >= last then return { since, missed } end
local out = { last, missed }
local maxBytes = tonumber(ARGV[3])
local size = 0
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. fmt(since) .. '-0', '+', 'COUNT', ARGV[2])) do
  local body = entry[2][2]
  size = size + #body
  if size > maxBytes and #out > 2 then break end
  out[#out + 1] = idTime(entry[1])
  out[#out + 1] = body
end
if #out > 2 then out[1] = out[#out - 1] end
return out
`;

package redis

import "github.com/redis/rueidis"

// ensureMeta is the common head of the scripts: the channel's epoch, made
// from ARGV[1] (and the stale stream dropped) when the hash is missing.
const ensureMeta = `
local epoch = redis.call('HGET', KEYS[1], 'e')
if not epoch then
  epoch = ARGV[1]
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'e', epoch, 'o', 0)
end
`

// publishScript: KEYS meta, stream, idempotency key; ARGV epoch-if-new,
// data, history size, history TTL ms, meta TTL ms, pub/sub channel,
// "1" if an idempotency key is given, PUBLISH or SPUBLISH (a cluster's
// sharded pub/sub: the message goes to the channel's shard only). Returns {"<offset>:<epoch>", dup}.
var publishScript = rueidis.NewLuaScript(`
if ARGV[7] == '1' then
  local prev = redis.call('GET', KEYS[3])
  if prev then return {prev, 1} end
end
` + ensureMeta + `
local off = redis.call('HINCRBY', KEYS[1], 'o', 1)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], off .. '-0', 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
local pos = off .. ':' .. epoch
redis.call(ARGV[8], ARGV[6], pos .. ':' .. ARGV[2])
if ARGV[7] == '1' then
  redis.call('SET', KEYS[3], pos, 'PX', ARGV[4])
end
return {pos, 0}
`)

// positionScript: KEYS meta, stream; ARGV epoch-if-new, meta TTL ms.
// Returns {offset, epoch}.
var positionScript = rueidis.NewLuaScript(ensureMeta + `
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {redis.call('HGET', KEYS[1], 'o'), epoch}
`)

// historyScript: KEYS meta, stream; ARGV epoch-if-new, meta TTL ms, the
// caller's epoch, its offset, the most entries worth reading. Returns
// {offset, epoch, entries}; entries (XRANGE after the offset) only when
// the epoch matches and at most that many are missing.
var historyScript = rueidis.NewLuaScript(ensureMeta + `
redis.call('PEXPIRE', KEYS[1], ARGV[2])
local off = tonumber(redis.call('HGET', KEYS[1], 'o'))
local since = tonumber(ARGV[4])
if ARGV[3] ~= epoch or since >= off or off - since > tonumber(ARGV[5]) then
  return {off, epoch}
end
return {off, epoch, redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', off - since)}
`)

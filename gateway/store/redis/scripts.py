"""The Lua of the limits and the cache (:mod:`gateway.store.redis.limits` runs it; the key
layout is described there)."""

from __future__ import annotations

from typing import Final

LIMITS: Final = """
-- KEYS[1..n]  each limit's state, P{group}:l:<name>, all in the slot of {group}; a window
--             counts in KEYS[i]..':'..<window index>, the index from the server's clock
-- KEYS[n+1]   optional: a cache entry of the same slot (P{group}:c:<key>) to GET as well
-- KEYS[n+2]   optional: that entry's fill lock, taken (SET NX PX) if the entry is missing and
--             the request admitted
-- ARGV[1]     'take'; 'peek' (decide, take nothing); 'refund' (give back an earlier take)
-- ARGV[2]     cost (a bucket's tokens, a window's count); a concurrency limit takes one lease
-- ARGV[3]     the lease id, or ''
-- ARGV[4]     the fill lock's time to live in ms with KEYS[n+2], else ''
-- ARGV[5..]   six per limit: kind, limit, rate, window (s), lease_ttl (s), mark; the mark is
--             what 'take' returned for the limit (its window index; '1' if it added the
--             lease), read by 'refund', else ''
-- Returns {admitted 1|0, retry_after, then per limit: remaining, reset, mark; then the cache
-- value when KEYS[n+1] is given; then 1|0, whether the fill lock was taken, with KEYS[n+2]}.
-- Numbers as strings: a Lua number reply truncates.
-- All limits admit or none is touched (expired leases are swept either way).
local MARGIN = 1000  -- ms a key outlives its state's end
local t = redis.call('TIME')
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
local now = now_us / 1000000
local mode, cost, lease = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local n = (#ARGV - 4) / 6
local function num(x) return string.format('%.17g', x) end
local function ms(seconds) return string.format('%d', math.ceil(seconds * 1000) + MARGIN) end

local L = {}
for i = 1, n do
  local a = 4 + (i - 1) * 6
  local l = {key = KEYS[i], kind = ARGV[a + 1], limit = tonumber(ARGV[a + 2]),
             rate = tonumber(ARGV[a + 3]), window = tonumber(ARGV[a + 4]),
             ttl = tonumber(ARGV[a + 5]), mark = ARGV[a + 6]}
  if l.kind == 'bucket' then
    l.level = l.limit
    local s = redis.call('HMGET', l.key, 'tokens', 'ts')
    if s[1] then
      l.level = math.min(l.limit, tonumber(s[1]) + math.max(0, now - tonumber(s[2])) * l.rate)
    end
  elseif l.kind == 'window' then
    local w_us = math.floor(l.window * 1000000 + 0.5)
    local index = math.floor(now_us / w_us)
    l.ends = ((index + 1) * w_us - now_us) / 1000000
    if mode == 'refund' and l.mark ~= '' then
      local spent = l.key .. ':' .. l.mark
      if redis.call('EXISTS', spent) == 1 then
        if tonumber(redis.call('INCRBYFLOAT', spent, -cost)) <= 0 then
          redis.call('DEL', spent)
        end
      end
    end
    l.wkey = l.key .. ':' .. string.format('%d', index)
    l.index = string.format('%d', index)
    l.level = tonumber(redis.call('GET', l.wkey) or '0')
  else
    redis.call('ZREMRANGEBYSCORE', l.key, '-inf', num(now))
    if mode == 'refund' and l.mark == '1' then redis.call('ZREM', l.key, lease) end
    l.held = redis.call('ZSCORE', l.key, lease)
    l.level = redis.call('ZCARD', l.key)
  end
  if mode == 'refund' and l.kind == 'bucket' then
    l.level = math.min(l.limit, l.level + cost)
    redis.call('HSET', l.key, 'tokens', num(l.level), 'ts', num(now))
    redis.call('PEXPIRE', l.key, ms((l.limit - l.level) / l.rate))
  end
  L[i] = l
end

local admitted, retry = true, 0
for i = 1, n do
  local l, wait = L[i], nil
  if l.kind == 'bucket' and l.level < cost then
    wait = (cost > l.limit) and math.huge or (cost - l.level) / l.rate
  elseif l.kind == 'window' and l.level + cost > l.limit then
    wait = (cost > l.limit) and math.huge or l.ends
  elseif l.kind == 'concurrency' and not l.held and l.level >= l.limit then
    wait = math.huge
    local oldest = redis.call('ZRANGE', l.key, 0, 0, 'WITHSCORES')
    if oldest[2] then wait = math.max(tonumber(oldest[2]) - now, 0.001) end
  end
  if wait then admitted, retry = false, math.max(retry, wait) end
end

local take = admitted and mode == 'take'
local out = {admitted and 1 or 0, num(retry)}
for i = 1, n do
  local l, mark, remaining, reset = L[i], '', 0, 0
  if l.kind == 'bucket' then
    if take then
      l.level = l.level - cost
      redis.call('HSET', l.key, 'tokens', num(l.level), 'ts', num(now))
      redis.call('PEXPIRE', l.key, ms((l.limit - l.level) / l.rate))
    end
    remaining, reset = math.floor(l.level), (l.limit - l.level) / l.rate
  elseif l.kind == 'window' then
    if take then
      l.level = tonumber(redis.call('INCRBYFLOAT', l.wkey, cost))
      redis.call('PEXPIRE', l.wkey, ms(l.ends))
      mark = l.index
    end
    remaining, reset = l.limit - l.level, l.ends
  else
    if take then
      redis.call('ZADD', l.key, num(now + l.ttl), lease)
      if redis.call('PTTL', l.key) < l.ttl * 1000 + MARGIN then
        redis.call('PEXPIRE', l.key, ms(l.ttl))
      end
      if not l.held then l.level, mark = l.level + 1, '1' end
    end
    remaining = l.limit - l.level
  end
  out[#out + 1] = num(remaining)
  out[#out + 1] = num(reset)
  out[#out + 1] = mark
end
if KEYS[n + 1] then
  local value = redis.call('GET', KEYS[n + 1])
  out[#out + 1] = value
  if KEYS[n + 2] then
    local locked = 0
    if not value and take and redis.call('SET', KEYS[n + 2], '1', 'NX', 'PX', ARGV[4]) then
      locked = 1
    end
    out[#out + 1] = locked
  end
end
return out
"""

FILL: Final = """
-- KEYS[1] a cache entry, KEYS[2] its fill lock; ARGV[1] the value, ARGV[2] its ttl in ms
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('DEL', KEYS[2])
return 1
"""

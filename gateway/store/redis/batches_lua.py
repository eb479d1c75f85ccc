"""The batch files' Lua scripts (see :mod:`gateway.store.redis.batches` for the keys): each
runs on the keys of one batch, one slot ``{b:<id>}``, so atomically on Redis Cluster too."""

from __future__ import annotations

from typing import Final

FED: Final = """
-- KEYS[1] meta  KEYS[2] jobs  KEYS[3] open   ARGV[1] line index  ARGV[2] job id
-- Returns 1, or 0 when the batch is cancelled, finished or gone (nothing recorded).
local status = redis.call('HGET', KEYS[1], 'status')
if status ~= 'queued' and status ~= 'in_progress' then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('SADD', KEYS[3], ARGV[2])
local fed = tonumber(redis.call('HGET', KEYS[1], 'fed') or '0')
local next_line = tonumber(ARGV[1]) + 1
if next_line > fed then redis.call('HSET', KEYS[1], 'fed', next_line) end
redis.call('HSET', KEYS[1], 'status', 'in_progress')
return 1
"""

SETTLE: Final = """
-- KEYS[1] meta  KEYS[2] open   ARGV: job id, status, job id, status, ...
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('SREM', KEYS[2], ARGV[i]) == 1 then
    redis.call('HINCRBY', KEYS[1], ARGV[i + 1], 1)
    n = n + 1
  end
end
return n
"""

CANCEL: Final = """
-- KEYS[1] meta   ARGV[1] now.  Returns the status before ('' when gone).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return '' end
if status == 'queued' or status == 'in_progress' then
  redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
end
return status
"""

FINISH: Final = """
-- KEYS[1] meta  KEYS[2] open  KEYS[3] lines  KEYS[4] ids  KEYS[5] jobs
-- ARGV[1] now  ARGV[2] time to live (ms).  Returns 1 when it finished the batch now.
local row = redis.call('HMGET', KEYS[1], 'status', 'fed', 'total', 'finished')
if not row[1] or row[4] == '1' then return 0 end
if redis.call('SCARD', KEYS[2]) > 0 then return 0 end
if row[1] ~= 'cancelled' then
  if tonumber(row[2]) < tonumber(row[3]) then return 0 end
  redis.call('HSET', KEYS[1], 'status', 'completed', 'finished_at', ARGV[1])
end
redis.call('HSET', KEYS[1], 'finished', '1')
redis.call('DEL', KEYS[3])
for _, key in ipairs({KEYS[1], KEYS[4], KEYS[5]}) do redis.call('PEXPIRE', key, ARGV[2]) end
return 1
"""

READ: Final = """
-- KEYS[1] meta  KEYS[2] open.  Returns {meta as field, value, ...; the open job ids}, read
-- at once (the counters and the open set never disagree about a job).
return {redis.call('HGETALL', KEYS[1]), redis.call('SMEMBERS', KEYS[2])}
"""

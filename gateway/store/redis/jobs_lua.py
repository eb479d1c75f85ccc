"""The job queue's Lua scripts (see :mod:`gateway.store.redis.jobs` for the keys): each runs
on keys of the one slot ``{jobs}``, so atomically on Redis Cluster too."""

from __future__ import annotations

from typing import Final

SUBMIT: Final = """
-- KEYS[1] job hash  KEYS[2] idempotency key  KEYS[3] queued  KEYS[4] depth  KEYS[5] queue
-- KEYS[6] index all  KEYS[7] index owner  KEYS[8] index batch
-- ARGV[1] spec JSON  ARGV[2] owner  ARGV[3] model  ARGV[4] job id  ARGV[5] max queued
-- ARGV[6] '1' with an idempotency key  ARGV[7] '1' with a batch  ARGV[8] job key prefix
-- Returns {'existing', id} | {'full', ''} | {'created', id}.
if ARGV[6] == '1' then
  local known = redis.call('GET', KEYS[2])
  if known and redis.call('EXISTS', ARGV[8] .. known) == 1 then return {'existing', known} end
end
local queued = tonumber(redis.call('HGET', KEYS[3], ARGV[2]) or '0')
if queued >= tonumber(ARGV[5]) then return {'full', ''} end
local idem = ''
if ARGV[6] == '1' then
  idem = KEYS[2]
  redis.call('SET', KEYS[2], ARGV[4])
end
redis.call('HSET', KEYS[1], 'spec', ARGV[1], 'status', 'queued', 'attempts', '0',
  'owner', ARGV[2], 'model', ARGV[3], 'idem', idem)
redis.call('HINCRBY', KEYS[3], ARGV[2], 1)
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
redis.call('XADD', KEYS[5], '*', 'job', ARGV[4])
redis.call('ZADD', KEYS[6], 0, ARGV[4])
redis.call('ZADD', KEYS[7], 0, ARGV[4])
if ARGV[7] == '1' then redis.call('ZADD', KEYS[8], 0, ARGV[4]) end
return {'created', ARGV[4]}
"""

# Shared by START and RECLAIM: a delivered job starts a run (queued -> running, attempts + 1).
_START_RUN: Final = """
local function start_run(key, queued, depth, now)
  local status = redis.call('HGET', key, 'status')
  if status == 'queued' then
    local row = redis.call('HMGET', key, 'owner', 'model')
    redis.call('HINCRBY', queued, row[1], -1)
    redis.call('HINCRBY', depth, row[2], -1)
  elseif status ~= 'running' then
    return false
  end
  redis.call('HSET', key, 'status', 'running', 'started_at', now)
  redis.call('HINCRBY', key, 'attempts', 1)
  return true
end
local function drop(queue, group, entry)
  redis.call('XACK', queue, group, entry)
  redis.call('XDEL', queue, entry)
end
"""

START: Final = (
    _START_RUN
    + """
-- KEYS[1] queue  KEYS[2] queued  KEYS[3] depth
-- ARGV[1] group  ARGV[2] job key prefix  ARGV[3] now  ARGV[4..] entry, job id pairs
-- Starts each delivered job; an entry whose job is gone or done is dropped. Returns the
-- entries started.
local started = {}
for i = 4, #ARGV, 2 do
  if start_run(ARGV[2] .. ARGV[i + 1], KEYS[2], KEYS[3], ARGV[3]) then
    table.insert(started, ARGV[i])
  else
    drop(KEYS[1], ARGV[1], ARGV[i])
  end
end
return started
"""
)

RECLAIM: Final = (
    _START_RUN
    + """
-- KEYS[1] queue  KEYS[2] dead  KEYS[3] queued  KEYS[4] depth
-- ARGV[1] group  ARGV[2] consumer  ARGV[3] min idle ms  ARGV[4] count  ARGV[5] max deliveries
-- ARGV[6] job key prefix  ARGV[7] now  ARGV[8] ttl ms  ARGV[9] the dead letter's error
-- Returns {{entry, job id, deliveries, ...} of the deliveries taken over and started,
--          {job id, ...} of the jobs dead-lettered}.
local taken = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], '0-0',
  'COUNT', ARGV[4])
local out, dead = {}, {}
for _, item in ipairs(taken[2]) do
  local entry, fields = item[1], item[2]
  local id = fields and fields[2]
  local key = ARGV[6] .. (id or '')
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], entry, entry, 1)
  local deliveries = pending[1] and tonumber(pending[1][4]) or 1
  local status = id and redis.call('HGET', key, 'status')
  if status ~= 'queued' and status ~= 'running' then
    drop(KEYS[1], ARGV[1], entry)
  elseif deliveries > tonumber(ARGV[5]) then
    drop(KEYS[1], ARGV[1], entry)
    local row = redis.call('HMGET', key, 'owner', 'model', 'idem')
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', 10000, '*', 'job', id, 'owner', row[1],
      'model', row[2], 'deliveries', deliveries, 'at', ARGV[7])
    if status == 'queued' then
      redis.call('HINCRBY', KEYS[3], row[1], -1)
      redis.call('HINCRBY', KEYS[4], row[2], -1)
    end
    redis.call('HSET', key, 'status', 'failed', 'finished_at', ARGV[7], 'error', ARGV[9],
      'error_status', '500')
    redis.call('PEXPIRE', key, ARGV[8])
    if row[3] and row[3] ~= '' then redis.call('PEXPIRE', row[3], ARGV[8]) end
    table.insert(dead, id)
  elseif start_run(key, KEYS[3], KEYS[4], ARGV[7]) then
    table.insert(out, entry)
    table.insert(out, id)
    table.insert(out, deliveries)
  else
    drop(KEYS[1], ARGV[1], entry)
  end
end
return {out, dead}
"""
)

FINISH: Final = """
-- KEYS[1] job hash  KEYS[2] queue
-- ARGV[1] group  ARGV[2] entry  ARGV[3] status  ARGV[4] result  ARGV[5] error
-- ARGV[6] error status  ARGV[7] now  ARGV[8] ttl ms  ARGV[9] version
-- Acknowledges the delivery; finishes the job if it is still running (1), else 0.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[3], 'result', ARGV[4], 'error', ARGV[5],
  'error_status', ARGV[6], 'finished_at', ARGV[7], 'version', ARGV[9] or '')
redis.call('PEXPIRE', KEYS[1], ARGV[8])
local idem = redis.call('HGET', KEYS[1], 'idem')
if idem and idem ~= '' then redis.call('PEXPIRE', idem, ARGV[8]) end
return 1
"""

RELEASE: Final = """
-- KEYS[1] job hash  KEYS[2] queue  KEYS[3] delayed  KEYS[4] queued  KEYS[5] depth
-- ARGV[1] group  ARGV[2] entry  ARGV[3] due (unix seconds)  ARGV[4] job id
-- ARGV[5] '1' if the run counts as an attempt
-- Acknowledges the delivery and puts a running job back (1), else 0.
redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[2], ARGV[2])
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
if ARGV[5] ~= '1' then
  local attempts = tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0')
  if attempts > 0 then redis.call('HSET', KEYS[1], 'attempts', attempts - 1) end
end
local row = redis.call('HMGET', KEYS[1], 'owner', 'model')
redis.call('HINCRBY', KEYS[4], row[1], 1)
redis.call('HINCRBY', KEYS[5], row[2], 1)
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[4])
return 1
"""

SCHEDULE: Final = """
-- KEYS[1] delayed  KEYS[2] queue  ARGV[1] now  ARGV[2] count
-- Moves the put-back jobs that are due into the queue, and tells when the next one is due:
-- {their number, due (unix seconds) or ''}.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(due) do
  redis.call('XADD', KEYS[2], '*', 'job', id)
  redis.call('ZREM', KEYS[1], id)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return {#due, next[2] or ''}
"""

FORSAKE: Final = """
-- KEYS[1] queue  ARGV[1] group  ARGV[2] consumer  ARGV[3] job key prefix  ARGV[4..] entries kept
-- Puts back the consumer's deliveries whose job never started (still queued: a blocked read's
-- answer lost to a cancel), as new entries; their number. Others are left to XAUTOCLAIM.
local keep = {}
for i = 4, #ARGV do keep[ARGV[i]] = true end
local n = 0
for _, row in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])) do
  local entry = row[1]
  if not keep[entry] then
    local item = redis.call('XRANGE', KEYS[1], entry, entry)[1]
    local id = item and item[2][2]
    if id and redis.call('HGET', ARGV[3] .. id, 'status') == 'queued' then
      redis.call('XACK', KEYS[1], ARGV[1], entry)
      redis.call('XDEL', KEYS[1], entry)
      redis.call('XADD', KEYS[1], '*', 'job', id)
      n = n + 1
    end
  end
end
return n
"""

CANCEL: Final = """
-- KEYS[1] job hash  KEYS[2] queued  KEYS[3] depth  KEYS[4] delayed
-- ARGV[1] now  ARGV[2] ttl ms  ARGV[3] job id
-- Cancels a queued job; returns its status after (false when unknown).
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return false end
if status ~= 'queued' then return status end
local row = redis.call('HMGET', KEYS[1], 'owner', 'model', 'idem')
redis.call('HINCRBY', KEYS[2], row[1], -1)
redis.call('HINCRBY', KEYS[3], row[2], -1)
redis.call('ZREM', KEYS[4], ARGV[3])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if row[3] and row[3] ~= '' then redis.call('PEXPIRE', row[3], ARGV[2]) end
return 'cancelled'
"""

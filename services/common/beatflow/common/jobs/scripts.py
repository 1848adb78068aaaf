"""Lua scripts: every state change of a job is one atomic script.

Running each transition inside Redis makes the races of an at-least-once
queue harmless: two workers finishing the same job, a cancel arriving while a
worker claims the job, two submits with one idempotency key. Each script
checks the job's current state (and, for the worker's own calls, that it
still holds the current attempt) before writing, and writes the job hash, the
job's event stream and the queue stream together.

Key and argument conventions (all scripts that change a job):
    KEYS[1] job hash, KEYS[2] job event stream, KEYS[3] queue stream,
    KEYS[4] dead-letter stream (where used)
    ARGV[1] consumer group, ARGV[2] now (unix seconds), ARGV[3] retention in ms,
    ARGV[4] approximate max length of an event stream, then script arguments.
"""

from __future__ import annotations

PRELUDE = r"""
local TERMINAL = {SUCCEEDED = true, FAILED = true, CANCELLED = true, DEAD = true}
local GROUP, NOW, RETENTION, EVMAX = ARGV[1], ARGV[2], ARGV[3], ARGV[4]

local function event(state, progress, stage, err, blobs, chunk)
  return redis.call('XADD', KEYS[2], 'MAXLEN', '~', EVMAX, '*',
    'state', state, 'progress', progress, 'stage', stage, 'error', err,
    'result_blobs', blobs, 'chunk_blob', chunk, 'ts', NOW)
end

-- acknowledge and delete a queue entry: nobody will deliver it again
local function drop_entry(entry)
  if entry and entry ~= '' then
    redis.call('XACK', KEYS[3], GROUP, entry)
    redis.call('XDEL', KEYS[3], entry)
  end
end

-- a finished job, its history and its idempotency key live on for RETENTION ms
local function expire_job()
  redis.call('PEXPIRE', KEYS[1], RETENTION)
  redis.call('PEXPIRE', KEYS[2], RETENTION)
  local idem = redis.call('HGET', KEYS[1], 'idem')
  if idem and idem ~= '' then redis.call('PEXPIRE', idem, RETENTION) end
end

local function finish(state, stage, err, blobs)
  local progress = redis.call('HGET', KEYS[1], 'progress')
  if state == 'SUCCEEDED' then progress = '1' end
  redis.call('HSET', KEYS[1], 'state', state, 'stage', stage, 'error', err,
    'finished_at', NOW, 'progress', progress, 'consumer', '')
  event(state, progress, stage, err, blobs, '')
  drop_entry(redis.call('HGET', KEYS[1], 'entry'))
  expire_job()
end

local function dead_letter(err)
  finish('DEAD', 'dead', err, '{}')
  local h = redis.call('HMGET', KEYS[1], 'id', 'kind', 'attempts', 'owner', 'request')
  redis.call('XADD', KEYS[4], 'MAXLEN', '~', '100000', '*', 'job', h[1], 'kind', h[2],
    'attempts', h[3], 'owner', h[4], 'request', h[5], 'error', err, 'ts', NOW)
end
"""

# KEYS: job, events, queue, idempotency key (or the job key again when none)
# ARGV: ..., job_id, kind, owner, request_json, use_idempotency ('1'/'0'), request fingerprint
# Returns {0, existing_id} for a known idempotency key, else {1, job_id, queue_position, hgetall...}
SUBMIT = (
    PRELUDE
    + r"""
local job_id = ARGV[5]
local idem = ''
if ARGV[9] == '1' then
  local existing = redis.call('GET', KEYS[4])
  if existing then
    local existing_key = (string.gsub(KEYS[1], '[^:]+$', existing))
    if redis.call('EXISTS', existing_key) == 1 then
      return {0, existing}
    end
  end
  redis.call('SET', KEYS[4], job_id)
  idem = KEYS[4]
end
local entry = redis.call('XADD', KEYS[3], '*', 'job', job_id)
redis.call('HSET', KEYS[1], 'id', job_id, 'kind', ARGV[6], 'state', 'QUEUED',
  'progress', '0', 'stage', 'queued', 'error', '', 'attempts', '0', 'owner', ARGV[7],
  'request', ARGV[8], 'result_blobs', '{}', 'result', '{}', 'created_at', NOW,
  'started_at', '0', 'finished_at', '0', 'entry', entry, 'consumer', '', 'cancel', '0',
  'idem', idem)
if idem ~= '' then redis.call('HSET', KEYS[1], 'request_fp', ARGV[10]) end
event('QUEUED', '0', 'queued', '', '{}', '')
-- the new entry is last: every undelivered entry is ahead of it
local ahead = redis.call('XLEN', KEYS[3]) - 1
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[3], GROUP)
if ok then ahead = ahead - tonumber(summary[1]) end
local out = {1, job_id, ahead}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
"""
)

# A worker took queue entry ARGV[5] (new delivery or reclaimed from a dead worker).
# ARGV: ..., entry, consumer, max_attempts
# Returns {0} skip, {2} went DEAD (lost its worker too often), {3} cancelled,
# {1, attempts, hgetall...} now RUNNING.
START = (
    PRELUDE
    + r"""
local entry, consumer, max_attempts = ARGV[5], ARGV[6], tonumber(ARGV[7])
if redis.call('EXISTS', KEYS[1]) == 0 then drop_entry(entry) return {0} end
local h = redis.call('HMGET', KEYS[1], 'state', 'entry', 'attempts', 'cancel', 'consumer')
local state, current, attempts = h[1], h[2], tonumber(h[3])
if TERMINAL[state] or current ~= entry or (state ~= 'QUEUED' and state ~= 'RUNNING') then
  -- finished elsewhere, cancelled while queued, or a stale duplicate entry
  drop_entry(entry)
  return {0}
end
if h[4] == '1' then
  finish('CANCELLED', 'cancelled', '', '{}')
  return {3}
end
if state == 'RUNNING' and attempts >= max_attempts then
  dead_letter('worker ' .. tostring(h[5]) .. ' stopped heartbeating on attempt ' .. attempts .. ' of ' .. max_attempts)
  return {2}
end
local stage = 'running'
if state == 'RUNNING' then stage = 'running again (previous worker stopped heartbeating)' end
attempts = attempts + 1
redis.call('HSET', KEYS[1], 'state', 'RUNNING', 'attempts', attempts, 'started_at', NOW,
  'consumer', consumer, 'stage', stage)
event('RUNNING', redis.call('HGET', KEYS[1], 'progress'), stage, '', '{}', '')
local out = {1, attempts}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
"""
)

# ARGV: ..., consumer, attempt, entry
# Returns {held (1/0), cancel flag}
HEARTBEAT = (
    PRELUDE
    + r"""
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'cancel', 'entry')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[6] or h[4] ~= ARGV[7] then return {0, h[3] or '0'} end
redis.call('XCLAIM', KEYS[3], GROUP, ARGV[5], '0', ARGV[7], 'JUSTID')
return {1, h[3]}
"""
)

# ARGV: ..., consumer, attempt, entry, fraction, stage, chunk_blob
# Progress never goes backwards (a retried job keeps its high-water mark).
# Returns {held, cancel flag, progress}
PROGRESS = (
    PRELUDE
    + r"""
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'cancel', 'entry', 'progress', 'stage')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[6] or h[4] ~= ARGV[7] then
  return {0, h[3] or '0', h[5] or '0'}
end
local p = tonumber(ARGV[8])
if p > 1 then p = 1 end
local old = tonumber(h[5]) or 0
if p < old then p = old end
local ps = tostring(p)
local stage = ARGV[9]
if stage == '' then stage = h[6] end
redis.call('HSET', KEYS[1], 'progress', ps, 'stage', stage)
event('RUNNING', ps, stage, '', '{}', ARGV[10])
redis.call('XCLAIM', KEYS[3], GROUP, ARGV[5], '0', ARGV[7], 'JUSTID')
return {1, h[3], ps}
"""
)

# ARGV: ..., result_blobs_json, result_json, entry
# Returns 1 recorded, 0 already finished (first result wins), -1 unknown job
COMPLETE = (
    PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if TERMINAL[redis.call('HGET', KEYS[1], 'state')] then
  drop_entry(ARGV[7])
  return 0
end
redis.call('HSET', KEYS[1], 'result_blobs', ARGV[5], 'result', ARGV[6])
local entry = redis.call('HGET', KEYS[1], 'entry')
finish('SUCCEEDED', 'done', '', ARGV[5])
if ARGV[7] ~= entry then drop_entry(ARGV[7]) end
return 1
"""
)

# ARGV: ..., attempt, error, retryable ('1'/'0'), max_attempts
# Returns 1 queued again, 2 DEAD, 3 CANCELLED, 4 FAILED, 0 not ours / already finished, -1 unknown
FAIL = (
    PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'cancel', 'id', 'progress')
if TERMINAL[h[1]] or h[1] ~= 'RUNNING' or h[2] ~= ARGV[5] then return 0 end
local err = ARGV[6]
if h[3] == '1' then
  finish('CANCELLED', 'cancelled', err, '{}')
  return 3
end
if ARGV[7] ~= '1' then
  finish('FAILED', 'failed', err, '{}')
  return 4
end
local attempts, max_attempts = tonumber(h[2]), tonumber(ARGV[8])
if attempts >= max_attempts then
  dead_letter(err)
  return 2
end
drop_entry(redis.call('HGET', KEYS[1], 'entry'))
local entry = redis.call('XADD', KEYS[3], '*', 'job', h[4])
local stage = 'queued for retry ' .. attempts .. ' of ' .. (max_attempts - 1)
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'entry', entry, 'error', err, 'consumer', '', 'stage', stage)
event('QUEUED', h[5], stage, err, '{}', '')
return 1
"""
)

# Put a running job back in the queue without counting the attempt (worker shutting down).
# ARGV: ..., attempt
# Returns 1 queued again, 3 cancelled, 0 not ours
RELEASE = (
    PRELUDE
    + r"""
local h = redis.call('HMGET', KEYS[1], 'state', 'attempts', 'cancel', 'id', 'progress')
if h[1] ~= 'RUNNING' or h[2] ~= ARGV[5] then return 0 end
if h[3] == '1' then
  finish('CANCELLED', 'cancelled', '', '{}')
  return 3
end
drop_entry(redis.call('HGET', KEYS[1], 'entry'))
local entry = redis.call('XADD', KEYS[3], '*', 'job', h[4])
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'entry', entry, 'consumer', '',
  'attempts', tonumber(h[2]) - 1, 'stage', 'queued again (worker stopped)')
event('QUEUED', h[5], 'queued again (worker stopped)', '', '{}', '')
return 1
"""
)

# Returns -1 unknown, 0 already finished, 1 cancelled at once (was queued),
# 2 flag set for the running worker, 3 flag was already set
CANCEL = (
    PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local h = redis.call('HMGET', KEYS[1], 'state', 'entry', 'cancel', 'progress')
if TERMINAL[h[1]] then return 0 end
if h[1] == 'QUEUED' then
  -- an undelivered entry is deleted at once; a delivered one is skipped by the worker's START
  local pending = redis.pcall('XPENDING', KEYS[3], GROUP, h[2], h[2], 1)
  if type(pending) == 'table' and not pending.err and #pending == 0 then
    redis.call('XDEL', KEYS[3], h[2])
  end
  redis.call('HSET', KEYS[1], 'cancel', '1', 'entry', '')
  finish('CANCELLED', 'cancelled', '', '{}')
  return 1
end
if h[3] == '1' then return 3 end
redis.call('HSET', KEYS[1], 'cancel', '1', 'stage', 'cancelling')
event(h[1], h[4], 'cancelling', '', '{}', '')
return 2
"""
)

# The worker stopped a job because it was cancelled.
# Returns 1 recorded, 0 already finished, -1 unknown
MARK_CANCELLED = (
    PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if TERMINAL[redis.call('HGET', KEYS[1], 'state')] then return 0 end
redis.call('HSET', KEYS[1], 'cancel', '1')
finish('CANCELLED', 'cancelled', '', '{}')
return 1
"""
)

# KEYS: queue stream; ARGV: group, entry
# Entries ahead of ARGV[2] that no worker has taken yet (0 once delivered).
QUEUE_POSITION = r"""
local ok, groups = pcall(redis.call, 'XINFO', 'GROUPS', KEYS[1])
if not ok then return 0 end
local last = nil
for _, g in ipairs(groups) do
  local name, lid = nil, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then lid = g[i + 1] end
  end
  if name == ARGV[1] then last = lid end
end
if not last then return 0 end
local function parse(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local ems, eseq = parse(ARGV[2])
local lms, lseq = parse(last)
if ems == nil then return 0 end
if ems < lms or (ems == lms and eseq <= lseq) then return 0 end
local start = '(' .. last
if last == '0-0' then start = '-' end
return #redis.call('XRANGE', KEYS[1], start, '(' .. ARGV[2])
"""

# KEYS: queue stream; ARGV: group. Entries not yet delivered to any worker.
DEPTH = r"""
local n = redis.call('XLEN', KEYS[1])
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok then n = n - tonumber(summary[1]) end
return n
"""

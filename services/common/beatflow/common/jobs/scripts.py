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

Keys derived inside the scripts (one Redis server, not a cluster):
    {queue}:waiting  sorted set: queued job ids not yet taken, scored by their
                     enqueue sequence, so a position is one ZRANK (O(log n))
    {queue}:seq      the kind's enqueue counter
    {queue}:delayed  sorted set: failed jobs waiting out their retry backoff,
                     scored by the time they are queued again
    {queue}:stats    hash: measured seconds of work per second of audio and
                     mean job size (moving averages), for ETAs
    {prefix}deadlines        sorted set: job id -> deadline (unix seconds)
    {prefix}wh:msg:{id}      a webhook delivery (hash); {prefix}wh:due: their
                             schedule (sorted set by next attempt time)
"""

from __future__ import annotations

PRELUDE = r"""
local TERMINAL = {SUCCEEDED = true, FAILED = true, CANCELLED = true, DEAD = true}
local GROUP, NOW, RETENTION, EVMAX = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local PREFIX = string.match(KEYS[1], '^(.*:)job:[^:]*$') or ''
local WAITING, SEQ = KEYS[3] .. ':waiting', KEYS[3] .. ':seq'
local DELAYED, STATS = KEYS[3] .. ':delayed', KEYS[3] .. ':stats'
local WH_PROGRESS_EVERY_S = 5

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

-- append the job to its queue: a new stream entry and the next place in the waiting set
local function enqueue(job_id)
  local entry = redis.call('XADD', KEYS[3], '*', 'job', job_id)
  local seq = redis.call('INCR', SEQ)
  redis.call('ZADD', WAITING, seq, job_id)
  redis.call('HSET', KEYS[1], 'entry', entry, 'seq', seq, 'retry_at', '0')
  return entry
end

-- the job no longer waits (taken by a worker, cancelled or finished)
local function unwait(job_id)
  if job_id and job_id ~= '' then
    redis.call('ZREM', WAITING, job_id)
    redis.call('ZREM', DELAYED, job_id)
  end
end

-- queue a webhook delivery of event `what` (started, progress, completed, ...) when the job asked for it
local function hook(what, event_id)
  local h = redis.call('HMGET', KEYS[1], 'webhook_url', 'webhook_events', 'owner', 'id', 'kind', 'state',
    'progress', 'stage', 'error', 'result_blobs', 'attempts', 'wh_progress_at', 'cancel_reason')
  if not h[1] or h[1] == '' then return end
  if not string.find(',' .. (h[2] or '') .. ',', ',' .. what .. ',', 1, true) then return end
  if what == 'progress' then
    if tonumber(NOW) - (tonumber(h[12]) or 0) < WH_PROGRESS_EVERY_S then return end
    redis.call('HSET', KEYS[1], 'wh_progress_at', NOW)
  end
  local ok, blobs = pcall(cjson.decode, h[10] or '{}')
  if not ok or type(blobs) ~= 'table' or next(blobs) == nil then blobs = cjson.decode('{}') end
  local eid = 'evt_' .. h[4] .. '_' .. event_id
  local kind = 'task.' .. what
  local payload = cjson.encode({type = kind, timestamp = tonumber(NOW), data = {
    event_id = eid, task_id = h[4], kind = h[5], status = string.lower(h[6] or ''),
    progress = tonumber(h[7]) or 0, stage = h[8] or '', error = h[9] or '',
    result_blobs = blobs, attempts = tonumber(h[11]) or 0, cancel_reason = h[13] or ''}})
  local msg = PREFIX .. 'wh:msg:' .. eid
  redis.call('HSET', msg, 'id', eid, 'owner', h[3] or '', 'job', h[4], 'type', kind, 'url', h[1],
    'payload', payload, 'attempts', '0', 'created_at', NOW, 'next_at', NOW, 'status', 'pending',
    'last_error', '')
  redis.call('ZADD', PREFIX .. 'wh:due', NOW, eid)
end

local FINISH_HOOK = {SUCCEEDED = 'completed', FAILED = 'failed', DEAD = 'failed', CANCELLED = 'cancelled'}

local function finish(state, stage, err, blobs)
  local progress = redis.call('HGET', KEYS[1], 'progress')
  if state == 'SUCCEEDED' then progress = '1' end
  redis.call('HSET', KEYS[1], 'state', state, 'stage', stage, 'error', err,
    'finished_at', NOW, 'progress', progress, 'consumer', '', 'retry_at', '0')
  local eid = event(state, progress, stage, err, blobs, '')
  drop_entry(redis.call('HGET', KEYS[1], 'entry'))
  unwait(redis.call('HGET', KEYS[1], 'id'))
  redis.call('ZREM', PREFIX .. 'deadlines', redis.call('HGET', KEYS[1], 'id'))
  hook(FINISH_HOOK[state], eid)
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
# ARGV: ..., job_id, kind, owner, request_json, use_idempotency ('1'/'0'),
#       deadline_at (0: none), size_s, webhook_url, webhook_events (comma-separated), request fingerprint
# Returns {0, existing_id} for a known idempotency key, else {1, job_id, then what STATUS returns}
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
redis.call('HSET', KEYS[1], 'id', job_id, 'kind', ARGV[6], 'state', 'QUEUED',
  'progress', '0', 'stage', 'queued', 'error', '', 'attempts', '0', 'owner', ARGV[7],
  'request', ARGV[8], 'result_blobs', '{}', 'result', '{}', 'created_at', NOW,
  'started_at', '0', 'finished_at', '0', 'entry', '', 'consumer', '', 'cancel', '0',
  'idem', idem, 'deadline_at', ARGV[10], 'size_s', ARGV[11], 'webhook_url', ARGV[12],
  'webhook_events', ARGV[13], 'cancel_reason', '', 'retry_at', '0', 'retry_delay_s', '0')
enqueue(job_id)
if tonumber(ARGV[10]) > 0 then redis.call('ZADD', PREFIX .. 'deadlines', ARGV[10], job_id) end
if idem ~= '' then redis.call('HSET', KEYS[1], 'request_fp', ARGV[14]) end
event('QUEUED', '0', 'queued', '', '{}', '')
-- waiting jobs ahead of this one (it is the last), and what an ETA needs (as STATUS)
local ahead = redis.call('ZRANK', WAITING, job_id) or 0
local running = 0
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[3], GROUP)
if ok then running = tonumber(summary[1]) end
local st = redis.call('HMGET', STATS, 'spu', 'size', 'n')
local out = {1, job_id, ahead, running, redis.call('ZCARD', WAITING), st[1] or '', st[2] or '', st[3] or '0'}
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
unwait(redis.call('HGET', KEYS[1], 'id'))
if h[4] == '1' then
  finish('CANCELLED', 'cancelled', '', '{}')
  return {3}
end
local deadline = tonumber(redis.call('HGET', KEYS[1], 'deadline_at')) or 0
if deadline > 0 and tonumber(NOW) >= deadline then
  redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', 'deadline')
  finish('CANCELLED', 'cancelled: deadline passed', '', '{}')
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
  'consumer', consumer, 'stage', stage, 'retry_at', '0')
local eid = event('RUNNING', redis.call('HGET', KEYS[1], 'progress'), stage, '', '{}', '')
hook('started', eid)
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
local eid = event('RUNNING', ps, stage, '', '{}', ARGV[10])
hook('progress', eid)
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
-- measure: seconds of work per second of audio (per job when the size is unknown)
local m = redis.call('HMGET', KEYS[1], 'started_at', 'size_s')
local started, size = tonumber(m[1]) or 0, tonumber(m[2]) or 0
if started > 0 then
  if size <= 0 then size = 1 end
  local spu = math.max(0, tonumber(NOW) - started) / size
  local s = redis.call('HMGET', STATS, 'spu', 'size', 'n')
  local n = tonumber(s[3]) or 0
  local a = 0.2
  if n < 5 then a = 1 / (n + 1) end
  local old_spu, old_size = tonumber(s[1]) or spu, tonumber(s[2]) or size
  redis.call('HSET', STATS, 'spu', tostring(old_spu + a * (spu - old_spu)),
    'size', tostring(old_size + a * (size - old_size)), 'n', n + 1, 'at', NOW)
end
local entry = redis.call('HGET', KEYS[1], 'entry')
finish('SUCCEEDED', 'done', '', ARGV[5])
if ARGV[7] ~= entry then drop_entry(ARGV[7]) end
return 1
"""
)

# ARGV: ..., attempt, error, retryable ('1'/'0'), max_attempts, retry delay in seconds
# (0: queued again at once; else the job waits in the delayed set until then)
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
local delay = tonumber(ARGV[9]) or 0
local stage = 'queued for retry ' .. attempts .. ' of ' .. (max_attempts - 1)
if delay > 0 then
  local at = tonumber(NOW) + delay
  stage = 'retry ' .. attempts .. ' of ' .. (max_attempts - 1) .. ' in ' .. string.format('%.1f', delay) .. ' s'
  redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'entry', '', 'error', err, 'consumer', '', 'stage', stage,
    'retry_at', tostring(at), 'retry_delay_s', tostring(delay))
  redis.call('ZADD', DELAYED, at, h[4])
else
  redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'error', err, 'consumer', '', 'stage', stage,
    'retry_delay_s', '0')
  enqueue(h[4])
end
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
redis.call('HSET', KEYS[1], 'state', 'QUEUED', 'consumer', '',
  'attempts', tonumber(h[2]) - 1, 'stage', 'queued again (worker stopped)')
enqueue(h[4])
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
  redis.call('HSET', KEYS[1], 'cancel', '1', 'entry', '', 'cancel_reason', 'user')
  finish('CANCELLED', 'cancelled', '', '{}')
  return 1
end
if h[3] == '1' then return 3 end
redis.call('HSET', KEYS[1], 'cancel', '1', 'stage', 'cancelling', 'cancel_reason', 'user')
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

# KEYS: queue stream; ARGV: group. Entries not yet delivered to any worker.
DEPTH = r"""
local n = redis.call('XLEN', KEYS[1])
local ok, summary = pcall(redis.call, 'XPENDING', KEYS[1], ARGV[1])
if ok then n = n - tonumber(summary[1]) end
return n
"""

# A failed job's backoff is over: append it to the queue again.
# Returns 1 queued, 0 not waiting for a retry (cancelled, already queued)
PROMOTE = (
    PRELUDE
    + r"""
local h = redis.call('HMGET', KEYS[1], 'state', 'entry', 'retry_at', 'id', 'progress', 'attempts')
if not h[1] then return 0 end
if h[1] ~= 'QUEUED' or (h[2] and h[2] ~= '') or (tonumber(h[3]) or 0) <= 0 then
  if h[4] then redis.call('ZREM', DELAYED, h[4]) end
  return 0
end
redis.call('ZREM', DELAYED, h[4])
enqueue(h[4])
local stage = 'queued for retry (attempt ' .. (tonumber(h[6]) + 1) .. ')'
redis.call('HSET', KEYS[1], 'stage', stage)
event('QUEUED', h[5], stage, '', '{}', '')
return 1
"""
)

# The job's deadline passed: cancel it (queued or running) with reason 'deadline'.
# A running job's worker sees the cancel flag (and that it no longer holds the job).
# Returns 1 cancelled, 0 already finished or deadline not reached, -1 unknown
DEADLINE = (
    PRELUDE
    + r"""
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local h = redis.call('HMGET', KEYS[1], 'state', 'entry', 'deadline_at')
if TERMINAL[h[1]] then
  redis.call('ZREM', PREFIX .. 'deadlines', redis.call('HGET', KEYS[1], 'id'))
  return 0
end
local deadline = tonumber(h[3]) or 0
if deadline <= 0 or deadline > tonumber(NOW) then return 0 end
if h[1] == 'QUEUED' and h[2] and h[2] ~= '' then
  local pending = redis.pcall('XPENDING', KEYS[3], GROUP, h[2], h[2], 1)
  if type(pending) == 'table' and not pending.err and #pending == 0 then
    redis.call('XDEL', KEYS[3], h[2])
    redis.call('HSET', KEYS[1], 'entry', '')
  end
end
redis.call('HSET', KEYS[1], 'cancel', '1', 'cancel_reason', 'deadline')
finish('CANCELLED', 'cancelled: deadline passed', '', '{}')
return 1
"""
)

# KEYS: job (its queue stream is derived from the job's kind); ARGV: group.
# The job with its live queue position and what an ETA needs, read atomically.
# Returns {} for an unknown job, else {position (-1: not waiting in the stream),
# running (entries delivered, unacknowledged), waiting (size of the waiting set),
# spu, mean size, samples, hgetall...}
STATUS = r"""
local raw = redis.call('HGETALL', KEYS[1])
if #raw == 0 then return {} end
local h = redis.call('HMGET', KEYS[1], 'id', 'kind')
local q = (string.match(KEYS[1], '^(.*:)job:[^:]*$') or '') .. 'q:' .. (h[2] or '')
local waiting = q .. ':waiting'
local pos = redis.call('ZRANK', waiting, h[1])
if not pos then pos = -1 end
local running = 0
local ok, summary = pcall(redis.call, 'XPENDING', q, ARGV[1])
if ok then running = tonumber(summary[1]) end
local s = redis.call('HMGET', q .. ':stats', 'spu', 'size', 'n')
local out = {pos, running, redis.call('ZCARD', waiting), s[1] or '', s[2] or '', s[3] or '0'}
for _, v in ipairs(raw) do out[#out + 1] = v end
return out
"""

"""The two Lua scripts that make the queue's edges atomic: submitting under a cap, and answering exactly once."""

from __future__ import annotations

# Enqueue only while the stream is shorter than the cap, in one step, so that concurrent bots cannot overshoot.
# KEYS: stream, photo key (or "" for none). ARGV: cap, photo ttl, photo bytes (or ""), then field/value pairs.
SUBMIT = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
if KEYS[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'EX', tonumber(ARGV[2]))
end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
return redis.call('XADD', KEYS[1], '*', unpack(fields))
"""

# Answer a job exactly once and retire its stream entry: reply only if the idempotency key was not set yet,
# then acknowledge, then delete (never delete before the acknowledgement, or the entry lingers as pending).
# KEYS: done key, reply list, stream, photo key. ARGV: group, entry id, reply json, done ttl, reply ttl.
FINISH = """
local first = redis.call('SET', KEYS[1], '1', 'NX', 'EX', tonumber(ARGV[4]))
if first then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
end
redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[4])
if first then return 1 else return 0 end
"""

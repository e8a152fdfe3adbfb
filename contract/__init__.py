"""The contract between the bot and the worker: what a job and a reply are, how they travel, where they live.

Standard library, redis-py and pydantic only: the bot imports this package and must stay free of TensorFlow.

- ``messages``: one frozen dataclass per kind of request and per outcome of a reply; kinds and error codes are
  ``StrEnum``s.
- ``codec``: the only place that turns them into JSON and back (versioned; malformed input raises
  ``ProtocolError``, and the worker dead-letters it with the reason).
- ``keys``: every Redis key name; ``scripts``: the two Lua scripts that make submitting and answering atomic.
- ``client``: the bot's side (submit a job, await its reply); ``outage``: waiting out a Redis restart, within
  limits; ``settings``: what both sides read to connect.

Flow: the bot stores the photo under ``keys.photo(job_id)`` with a TTL and adds a small job entry to
``keys.JOBS_STREAM`` (refused when the queue is full). A worker of the ``keys.WORKERS_GROUP`` consumer group reads
it, answers by pushing a reply onto the submitting bot instance's reply list, and acknowledges and deletes the
entry in the same script, guarded by an idempotency key so that a job delivered twice is answered once.
"""

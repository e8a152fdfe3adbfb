"""Photos per user per minute, counted in Redis so that every bot process shares one budget."""

from __future__ import annotations

import time

from redis.asyncio import Redis

from contract import keys


class PhotoRateLimit:
    """A fixed one-minute window per user: simple, and generous enough that its edges don't matter here."""

    def __init__(self, redis: Redis, *, per_minute: int) -> None:
        self.redis = redis
        self.per_minute = per_minute

    async def allow(self, user_id: int) -> bool:
        window = int(time.time() // 60)
        key = keys.photo_rate(user_id, window)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, 120)
            count, _ = await pipe.execute()
        return int(count) <= self.per_minute

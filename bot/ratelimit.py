"""Photos per user per minute, counted in Redis so that every bot process shares one budget."""

from __future__ import annotations

import time
from collections.abc import Callable

from redis.asyncio import Redis

from contract import keys

WINDOW_S = 60


class PhotoRateLimit:
    """A sliding one-minute window per user, estimated from two fixed windows' counters.

    A fixed window alone forgets everything at the top of each minute: a user could send twice the limit in a
    second that straddles it. The estimate counts this minute's photos plus the last minute's, weighted by how
    much of the last minute the sliding window still covers (the "sliding window counter"): two small keys per
    user, whatever the number of photos. Refused photos count too, so sending on and on stays refused.
    """

    def __init__(self, redis: Redis, *, per_minute: int, clock: Callable[[], float] = time.time) -> None:
        self.redis = redis
        self.per_minute = per_minute
        self.clock = clock

    async def allow(self, user_id: int) -> bool:
        window, into = divmod(self.clock(), WINDOW_S)
        current, previous = keys.photo_rate(user_id, int(window)), keys.photo_rate(user_id, int(window) - 1)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.incr(current)
            pipe.expire(current, 2 * WINDOW_S)
            pipe.get(previous)
            count, _, before = await pipe.execute()
        still_covered = 1 - into / WINDOW_S
        return int(count) + int(before or 0) * still_covered <= self.per_minute

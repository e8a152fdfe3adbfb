"""The photo rate limit against a real Redis, with a clock the test moves: the window slides across the minute."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.ratelimit import PhotoRateLimit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_the_top_of_the_minute_does_not_reset_the_count(redis: Redis) -> None:
    clock = Clock(60 * 1000 + 59.9)
    limit = PhotoRateLimit(redis, per_minute=2, clock=clock)
    assert await limit.allow(1) and await limit.allow(1)
    clock.now += 0.2  # into the next minute: a fixed window would start counting again here
    assert not await limit.allow(1)
    assert await limit.allow(2)  # every user has a budget of their own


async def test_the_budget_comes_back_as_the_window_slides_on(redis: Redis) -> None:
    clock = Clock(60 * 2000 + 10)
    limit = PhotoRateLimit(redis, per_minute=3, clock=clock)
    assert all([await limit.allow(7) for _ in range(3)])
    assert not await limit.allow(7)  # four in the minute
    clock.now += 100  # 50 s into the next minute: a sixth of the last one is still in the window
    assert await limit.allow(7)  # 1 now + 4 (the refused one counted too) x 1/6 = 1.67
    assert await limit.allow(7)  # 2.67
    assert not await limit.allow(7)  # 3.67
    clock.now += 120
    assert await limit.allow(7)  # two quiet minutes later, a fresh budget

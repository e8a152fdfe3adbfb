"""Waiting out a Redis that went away, for requests a person is waiting on.

A Redis restart (``wanderlens up`` brings its own back within seconds; a managed one fails over) should not cost a
user their photo. A request that meets Redis down waits for it to come back and then goes on, instead of failing at
once. The wait is bounded three ways, because the requests wait in the bot's memory: how many wait at once, how many
photo bytes they hold between them, and for how long. Past those limits the caller tells the user to try again.

One probe per process pings Redis from the first failure until it answers, so a thousand waiting requests cost one
connection attempt every ``PROBE_PAUSE_S``, not a thousand. While it runs (``down``), what can do without Redis
(a stored language, the photo cache) skips it instead of meeting the same failure again: against a Redis that hangs,
each meeting costs ``contract.connect.COMMAND_TIMEOUT_S``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger(__name__)

# What a dropped or refused connection raises, after `contract.connect`'s quick retries have failed too.
REDIS_DOWN = (RedisConnectionError, RedisTimeoutError)
PROBE_PAUSE_S = 0.25
PROBE_TIMEOUT_S = 1.0  # a stopped (not dead) server accepts connections and never answers
# Redis back within this long (a restart under `wanderlens up` takes a second or two) is not worth a message.
NOTICE_AFTER_S = 3.0


@dataclass(frozen=True)
class OutageLimits:
    max_waiting: int = 32  # requests waiting at once
    max_bytes: int = 64 * 1024 * 1024  # photo bytes they hold between them
    wait_s: float = 60.0  # the longest one request waits


class RedisOutage:
    """``wait_until_back`` for each request that met Redis down; one per bot process, shared by its handlers."""

    def __init__(self, redis: Redis, limits: OutageLimits = OutageLimits()) -> None:
        self.redis = redis
        self.limits = limits
        self._waiting = 0
        self._held_bytes = 0
        self._back = asyncio.Event()
        self._probe: asyncio.Task[None] | None = None

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def down(self) -> bool:
        """Whether Redis is known to be unreachable now: a command failed, and the probe has not reached it since."""
        return self._probe is not None and not self._probe.done()

    def noticed(self) -> None:
        """A command failed for want of Redis: probe it, and count it ``down`` until it answers."""
        self._probing()

    async def wait_until_back(
        self, held_bytes: int = 0, *, on_still_down: Callable[[], Awaitable[object]] | None = None
    ) -> bool:
        """True once Redis answers again; False at once when the limits leave no room, or after ``wait_s``.

        ``held_bytes``: what the request keeps in memory meanwhile (its photo). ``on_still_down`` is awaited once
        if Redis is not back within ``NOTICE_AFTER_S``: the moment to tell the user why nothing comes yet.
        """
        if self._waiting >= self.limits.max_waiting or self._held_bytes + held_bytes > self.limits.max_bytes:
            logger.warning(
                "redis is down and %d requests (%d bytes) wait for it already: this one gives up",
                self._waiting,
                self._held_bytes,
            )
            return False
        self._waiting += 1
        self._held_bytes += held_bytes
        try:
            back = self._probing()
            deadline = time.monotonic() + self.limits.wait_s
            if on_still_down is not None and self.limits.wait_s > NOTICE_AFTER_S:
                if await _within(back, NOTICE_AFTER_S):
                    return True
                await on_still_down()
            return await _within(back, deadline - time.monotonic())
        finally:
            self._waiting -= 1
            self._held_bytes -= held_bytes

    def _probing(self) -> asyncio.Event:
        """The event the running probe sets when Redis answers; a new probe (and event) if none is running."""
        if self._probe is None or self._probe.done():
            self._back = asyncio.Event()
            self._probe = asyncio.create_task(self._ping_until_back(self._back), name="redis outage probe")
        return self._back

    async def _ping_until_back(self, back: asyncio.Event) -> None:
        started = time.monotonic()
        logger.warning("redis is unreachable; requests wait for it (%d now)", self._waiting)
        while True:
            try:
                await asyncio.wait_for(self.redis.ping(), PROBE_TIMEOUT_S)
            except (*REDIS_DOWN, TimeoutError, OSError):
                await asyncio.sleep(PROBE_PAUSE_S)
                continue
            except RedisError as error:
                # It answers, with an error waiting will not mend (a password now asked, say): the requests go on
                # and meet it, and the operator reads it in their failures.
                logger.error("redis answers again, with an error: %s", error)
            else:
                logger.warning("redis is back after %.1fs", time.monotonic() - started)
            back.set()
            return

    async def close(self) -> None:
        if self._probe is not None and not self._probe.done():
            self._probe.cancel()
            await asyncio.gather(self._probe, return_exceptions=True)


async def _within(event: asyncio.Event, seconds: float) -> bool:
    if seconds <= 0:
        return event.is_set()
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except TimeoutError:
        return False
    return True

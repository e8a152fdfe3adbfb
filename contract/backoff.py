"""Waiting out a Redis that is down or restarting: doubling pauses, capped, reset by the first success."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

FIRST_PAUSE_S = 0.5
LONGEST_PAUSE_S = 10.0


@dataclass
class Backoff:
    """One per loop that talks to Redis; ``wait`` after a failure, ``reset`` after a success."""

    what: str
    pause_s: float = FIRST_PAUSE_S

    async def wait(self, error: Exception, logger: logging.Logger) -> None:
        logger.warning("%s: redis unavailable (%s); retrying in %.1fs", self.what, error, self.pause_s)
        await asyncio.sleep(self.pause_s)
        self.pause_s = min(self.pause_s * 2, LONGEST_PAUSE_S)

    def reset(self) -> None:
        self.pause_s = FIRST_PAUSE_S

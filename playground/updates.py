"""The bot's update queue with getUpdates semantics: offsets, limit, long polls, allowed_updates, 409s."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter

from playground.wire import JSON

# Telegram caps the long-poll timeout; a bot asking for more just waits this long.
MAX_POLL_TIMEOUT = 50.0


class UpdatesConflict(Exception):
    """A newer getUpdates call took over from this one, as Telegram reports with 409."""


class UpdateQueue:
    """Pending updates, oldest first, until the bot confirms them with a higher ``offset``."""

    def __init__(self) -> None:
        self._updates: list[tuple[int, str, JSON]] = []  # (update_id, update type, payload)
        self._next_id = 1
        self._allowed: frozenset[str] | None = None
        self._generation = 0
        self._signal = asyncio.Event()
        self._closed = False
        # update_id → how many getUpdates responses carried it (more than 1 only if unconfirmed).
        self.deliveries: Counter[int] = Counter()

    def put(self, kind: str, payload: JSON) -> int:
        update_id = self._next_id
        self._next_id += 1
        self._updates.append((update_id, kind, payload))
        self._wake()
        return update_id

    def drop_pending(self) -> None:
        """deleteWebhook(drop_pending_updates=True)."""
        self._updates.clear()

    @property
    def pending_count(self) -> int:
        return len(self._updates)

    def close(self) -> None:
        """Answers waiting long polls at once, so a server can stop without waiting them out."""
        self._closed = True
        self._wake()

    async def get(
        self, *, offset: int | None, limit: int, poll_seconds: float, allowed_updates: list[str] | None
    ) -> list[JSON]:
        """getUpdates: confirm everything below ``offset``, then wait up to ``poll_seconds`` for updates.

        Raises ``UpdatesConflict`` when a newer call arrives while this one waits.
        """
        if allowed_updates is not None:
            # Remembered across calls, like Telegram's; an empty list means "the default types".
            self._allowed = frozenset(allowed_updates) or None
        self._generation += 1
        generation = self._generation
        self._wake()  # an older long poll wakes up, sees the newer generation and answers 409
        self._confirm(offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, min(poll_seconds, MAX_POLL_TIMEOUT))
        while True:
            if generation != self._generation:
                raise UpdatesConflict
            ready = self._take(limit)
            remaining = deadline - loop.time()
            if ready or self._closed or remaining <= 0:
                return ready
            signal = self._signal
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(signal.wait(), remaining)

    def _confirm(self, offset: int | None) -> None:
        if offset is None:
            return
        if offset < 0:
            # A negative offset keeps only the last -offset updates and forgets the rest.
            del self._updates[: max(0, len(self._updates) + offset)]
        else:
            self._updates = [u for u in self._updates if u[0] >= offset]

    def _take(self, limit: int) -> list[JSON]:
        if self._allowed is not None:
            # Telegram never creates updates of types the bot did not ask for.
            self._updates = [u for u in self._updates if u[1] in self._allowed]
        batch = self._updates[:limit]
        for update_id, _, _ in batch:
            self.deliveries[update_id] += 1
        return [{"update_id": update_id, kind: payload} for update_id, kind, payload in batch]

    def _wake(self) -> None:
        # Waiters hold the old event; a fresh one is ready for the next round.
        self._signal.set()
        self._signal = asyncio.Event()

"""The submitting side of the protocol, used by the bot: enqueue jobs, wait for their replies.

One background task per client reads the instance's reply list and resolves the futures of waiting requests,
so a thousand users waiting cost one Redis connection, not a thousand blocked ones. No TensorFlow here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract import codec, keys
from contract import messages as m
from contract.backoff import Backoff
from contract.scripts import SUBMIT

logger = logging.getLogger(__name__)

LISTEN_BLOCK_S = 1
# Replies nobody waits for, kept a while: a job sent again after a Redis outage (``Job.resent``) may have got in the
# first time too, and its answer can come before the second sending waits for it.
UNCLAIMED_REPLIES = 256
CLOSE_GRACE_S = 2.0  # beyond one BLPOP, for the listener to notice it should stop


class QueueFull(Exception):
    """The job queue is at its cap: the user should try again in a minute."""


class ChatBusy(Exception):
    """This chat already has a job in flight."""


@contextlib.contextmanager
def _full_memory_is_a_full_queue() -> Iterator[None]:
    """A Redis at its ``maxmemory`` (with ``noeviction``, as a queue needs) refuses writes until photos expire:
    for the user that is the same "try again in a minute" as a full queue, not an error."""
    try:
        yield
    except OutOfMemoryError as error:
        raise QueueFull(f"redis is at its memory limit: {error}") from error


@dataclass(frozen=True)
class ClientLimits:
    max_queue: int = 200
    photo_ttl_s: int = 300


class JobClient:
    """Submit jobs and await replies. ``start()`` begins listening; ``close()`` stops it."""

    def __init__(self, redis: Redis, *, instance: str, limits: ClientLimits = ClientLimits()) -> None:
        self.redis = redis
        self.instance = instance
        self.limits = limits
        self._waiting: dict[str, asyncio.Future[m.Reply]] = {}
        self._unclaimed: OrderedDict[str, m.Reply] = OrderedDict()
        self._listener: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        self._submit = redis.register_script(SUBMIT)

    async def start(self) -> None:
        if self._listener is None:
            self._closing.clear()
            self._listener = asyncio.create_task(self._listen(), name=f"JobClient:{self.instance}:replies")

    async def close(self) -> None:
        """Stop listening, within about ``LISTEN_BLOCK_S + CLOSE_GRACE_S`` seconds whatever Redis does.

        Cancelling alone is not enough: redis-py can swallow the cancellation of a blocking command
        (redis/redis-py#2028), and awaiting that task would hang the bot's shutdown. So the listener is also told
        to stop, and leaves its loop when its BLPOP returns.
        """
        if self._listener is not None:
            self._closing.set()
            listener, self._listener = self._listener, None
            listener.cancel()
            _, running = await asyncio.wait({listener}, timeout=LISTEN_BLOCK_S + CLOSE_GRACE_S)
            if running:
                logger.warning("the reply listener did not stop; leaving it to the event loop's shutdown")
            elif not listener.cancelled() and listener.exception() is not None:
                logger.error("the reply listener failed: %r", listener.exception())
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()

    async def _listen(self) -> None:
        key = keys.replies(self.instance)
        backoff = Backoff("reply listener")
        while not self._closing.is_set():
            try:
                popped = await self.redis.blpop([key], timeout=LISTEN_BLOCK_S)
                backoff.reset()
            except (RedisConnectionError, RedisTimeoutError) as error:
                await backoff.wait(error, logger)
                continue
            if popped is None:
                continue
            try:
                reply = codec.reply_from_json(popped[1])
            except codec.ProtocolError as error:
                logger.error("ignoring an unreadable reply: %s", error)
                continue
            future = self._waiting.pop(reply.job_id, None)
            if future is not None and not future.done():
                future.set_result(reply)
            else:
                logger.info("reply to job %s arrived with nobody waiting for it", reply.job_id)
                self._unclaimed[reply.job_id] = reply
                if len(self._unclaimed) > UNCLAIMED_REPLIES:
                    self._unclaimed.popitem(last=False)

    async def submit(self, job: m.Job, photo: bytes | None = None) -> asyncio.Future[m.Reply]:
        """Enqueue ``job`` (and its photo); the future resolves with the worker's reply. Raises QueueFull.

        A job whose reply is already here (it got in before an outage cut its first sending short) is not sent
        again: a worker answers a job once, so that reply is the only one that will come.
        """
        future: asyncio.Future[m.Reply] = asyncio.get_running_loop().create_future()
        if (answered := self._unclaimed.pop(job.id, None)) is not None:
            future.set_result(answered)
            return future
        self._waiting[job.id] = future
        fields = [item for pair in codec.job_fields(job).items() for item in pair]
        try:
            with _full_memory_is_a_full_queue():
                entry = await self._submit(
                    keys=[keys.JOBS_STREAM, keys.photo(job.id) if photo is not None else ""],
                    args=[self.limits.max_queue, self.limits.photo_ttl_s, photo if photo is not None else b"", *fields],
                )
        except BaseException:
            self._waiting.pop(job.id, None)
            raise
        if not entry:
            self._waiting.pop(job.id, None)
            raise QueueFull(f"the job queue holds {self.limits.max_queue} jobs already")
        return future

    async def request(self, job: m.Job, photo: bytes | None = None, *, timeout: float) -> m.Reply:
        """Submit and wait; raises QueueFull, ChatBusy, TimeoutError when no worker answered in time, or one of
        ``contract.outage.REDIS_DOWN`` when Redis cannot be reached (then ``job.resent`` may be requested again).

        One job per chat at a time: a user hammering the bot queues nothing until the previous answer is out.
        """
        lock = keys.inflight(job.chat_id)
        # The same job again (``Job.resent`` after Redis came back) may find its own lock, left when Redis went.
        with _full_memory_is_a_full_queue():
            locked = await self.redis.set(lock, job.id, nx=True, ex=max(1, int(timeout) + 1))
        if not locked and await self.redis.get(lock) not in (job.id, job.id.encode()):
            raise ChatBusy(f"chat {job.chat_id} already has a job in flight")
        try:
            future = await self.submit(job, photo)
            try:
                return await asyncio.wait_for(future, timeout)
            finally:
                self._waiting.pop(job.id, None)
        finally:
            # The lock expires by itself. Failing to delete it must not turn a reply in hand into an error: the
            # caller would send the job again, and a job already answered is not answered twice.
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                await self.redis.delete(lock)

    async def has_cached_photo(self, file_unique_id: str) -> bool:
        """Whether a worker already has this Telegram file's fingerprint (then the photo need not be sent)."""
        return bool(await self.redis.exists(keys.file_unique(file_unique_id)))

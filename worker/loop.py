"""The worker loop: take jobs from the Redis stream, batch their photos into one forward pass, answer.

Three stages run side by side so that decoding and replying overlap the network: the reader takes over stale
jobs (``XAUTOCLAIM``), reads new ones (``XREADGROUP``) and decodes their photos in threads into the *next*
batch, which keeps growing (up to ``batch_size``) for as long as the processor is busy; the processor takes the
whole next batch at once and runs one forward pass over it; the replies of a batch (ranking, Redis writes) run
while the processor starts on the next batch. When the processor is idle, a batch waits at most
``batch_wait_ms`` for company, so an idle queue answers a lone photo at once.

A job is answered and acknowledged in one Lua script with an idempotency key: if this process dies mid-batch,
another worker takes the job over after ``claim_idle_ms`` and the user still gets exactly one answer. A batch
costs a few round trips whatever its size: its photos and cached fingerprints are read with one command each, and
its photos' result lists, pages, new fingerprints and replies are written in one pipeline. A job
delivered more than ``max_deliveries`` times goes to the dead-letter stream and its user gets an error reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from contract import codec, keys
from contract import messages as m
from contract.backoff import Backoff
from contract.scripts import FINISH
from recommender.extractor import Embedded
from recommender.fingerprint import BackboneFingerprint
from recommender.images import UnsupportedImage, content_hash
from recommender.index import DestinationIndex, current_version, open_index
from worker import jobs, priority
from worker.metrics import WorkerMetrics
from worker.settings import WorkerOptions
from worker.state import WorkerState

logger = logging.getLogger(__name__)

READ_BLOCK_MS = 1000
CLAIM_EVERY_S = 1.0
DONE_TTL_S = 24 * 3600
REPLY_TTL_S = 600
STALE_CONSUMER_IDLE_MS = 3600 * 1000
# Below this the classifier is guessing ("spider web" for a jungle): better to say nothing than something odd.
HINT_CONFIDENCE = 0.15


class EmbeddingModel(Protocol):
    """What the loop needs of ``recommender.extractor.Extractor`` (tests pass a small stand-in)."""

    @property
    def fingerprint(self) -> BackboneFingerprint: ...

    @property
    def input_size(self) -> int: ...

    def preprocess(self, source: bytes) -> np.ndarray: ...

    def embed(self, images: np.ndarray) -> Embedded: ...


@dataclass
class _Delivery:
    entry_id: str
    job: m.Job
    deliveries: int
    pixels: np.ndarray | None = None
    vector: np.ndarray | None = None
    hints: tuple[str, ...] = ()
    photo_hash: str | None = None
    embedded_here: bool = False  # its fingerprint came from this worker's forward pass (not the cache)
    outcome: m.Outcome | None = None  # decided before the forward pass (bad photo, expired, ...)


@dataclass
class _Batch:
    deliveries: list[_Delivery] = field(default_factory=list)


class Worker:
    """One consumer of the job stream. Constructing it has no side effects; ``run`` does the work."""

    def __init__(
        self,
        *,
        redis: Redis,
        extractor: EmbeddingModel,
        index: DestinationIndex,
        options: WorkerOptions,
        index_dir: Path | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.redis = redis
        self.extractor = extractor
        self.index = index
        self.options = options
        self.index_dir = index_dir
        self.metrics = metrics or WorkerMetrics()
        self.consumer = options.consumer
        self.state = WorkerState(redis, ttl_s=options.result_ttl_s, vector_ttl_s=options.query_cache_ttl_s)
        self._stopping = asyncio.Event()
        # The loop's own work (replies, reading) comes first, then the network, then decoding (worker.priority).
        self._network_pool = priority.network_pool()
        self._decode_pool = priority.decode_pool()
        self._finish = redis.register_script(FINISH)
        self._last_claim = 0.0
        self._last_reload_check = time.monotonic()
        self._loading: asyncio.Task[DestinationIndex] | None = None
        self._failed_version: str | None = None
        self._next: list[_Delivery] = []  # read and decoded, waiting for the processor
        self._next_changed = asyncio.Condition()
        self._reading = False
        self.jobs_done = 0

    # ------------------------------------------------------------------------------------------ lifecycle

    def stop(self) -> None:
        """Stop reading new jobs; the batches already read are finished and acknowledged."""
        self._stopping.set()

    async def run(self, *, burst: bool = False) -> None:
        """Serve until ``stop()``; with ``burst`` return as soon as the stream has nothing left to do."""
        backoff = Backoff("worker start")
        while True:
            try:
                await self._ensure_group()
                break
            except (RedisConnectionError, RedisTimeoutError) as error:
                if self._stopping.is_set():
                    return
                await backoff.wait(error, logger)
        self._describe_model()
        self._reading = True
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"Worker:{self.consumer}:heartbeat")
        reader = asyncio.create_task(self._read_loop(burst=burst), name=f"Worker:{self.consumer}:reader")
        replying: asyncio.Task[None] | None = None
        logger.info("worker %s serving %s (%d destinations)", self.consumer, self.index.version, len(self.index))
        try:
            while (batch := await self._take_next_batch()) is not None:
                # Shielded: a batch read from the stream is always finished, even when the loop is cancelled.
                embedded = await asyncio.shield(self._embed(batch))
                if replying is not None:
                    await replying  # at most one batch's replies in flight
                replying = asyncio.create_task(self._reply(batch, embedded), name=f"Worker:{self.consumer}:reply")
            if replying is not None:
                await replying
            await reader
        finally:
            # Both tasks leave their loops once stopping is set; cancelling them instead could interrupt a Redis
            # command halfway (redis-py may swallow the cancellation and leave the task running).
            self._stopping.set()
            if replying is not None:
                await asyncio.wait({replying}, timeout=30)
                if replying.done() and not replying.cancelled() and replying.exception() is not None:
                    logger.error("replies of the last batch failed: %s", replying.exception())
            _, pending = await asyncio.wait({reader, heartbeat}, timeout=READ_BLOCK_MS / 1000 + 5)
            for task in pending:
                task.cancel()
            if self._loading is not None:
                self._loading.cancel()
            self._decode_pool.shutdown(wait=False, cancel_futures=True)
            self._network_pool.shutdown(wait=False, cancel_futures=True)
            with contextlib.suppress(RedisConnectionError, RedisTimeoutError):
                await self.redis.delete(keys.health(self.consumer))
            logger.info("worker %s stopped after %d jobs", self.consumer, self.jobs_done)

    async def _ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(keys.JOBS_STREAM, keys.WORKERS_GROUP, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise
        # Forget consumers of workers long gone, but only those without pending entries: deleting a consumer
        # drops its pending list, and those jobs would never be answered.
        for consumer in await self.redis.xinfo_consumers(keys.JOBS_STREAM, keys.WORKERS_GROUP):
            name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else consumer["name"]
            if consumer["pending"] == 0 and consumer["idle"] > STALE_CONSUMER_IDLE_MS and name != self.consumer:
                await self.redis.xgroup_delconsumer(keys.JOBS_STREAM, keys.WORKERS_GROUP, name)
        # Batches queue FINISH as a bare EVALSHA (``_write_together``): have it loaded before the first one.
        await self.redis.script_load(FINISH)

    def _describe_model(self) -> None:
        fingerprint = self.extractor.fingerprint
        self.metrics.model.info(
            {"backbone": fingerprint.name, "fingerprint": fingerprint.key, "index_version": self.index.version}
        )

    async def _heartbeat(self) -> None:
        while not self._stopping.is_set():
            try:
                depth = await self.redis.xlen(keys.JOBS_STREAM)
                self.metrics.queue_depth.set(depth)
                summary = {
                    "at": time.time(),
                    "pid": os.getpid(),
                    "index_version": self.index.version,
                    "backbone": self.extractor.fingerprint.name,
                    "jobs_done": self.jobs_done,
                    "queue_depth": depth,
                }
                ttl = max(1, int(self.options.heartbeat_s * 3))
                await self.redis.set(keys.health(self.consumer), json.dumps(summary), ex=ttl)
            except (RedisConnectionError, RedisTimeoutError) as error:
                logger.warning("heartbeat failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.options.heartbeat_s)

    # ------------------------------------------------------------------------------------------ reading

    async def _read_loop(self, *, burst: bool) -> None:
        backoff = Backoff("job reader")
        try:
            while not self._stopping.is_set():
                # Safe at any moment: each batch captures the index it started with.
                await self._swap_index_if_ready()
                room = await self._room_in_next_batch()
                if room == 0:
                    break
                try:
                    deliveries = await self._claim_stale(room) or await self._take(room, 50 if burst else READ_BLOCK_MS)
                    backoff.reset()
                except (RedisConnectionError, RedisTimeoutError) as error:
                    await backoff.wait(error, logger)
                    continue
                except ResponseError as error:
                    if not str(error).startswith("NOGROUP"):
                        raise
                    # Redis came back without its data (no persistence, or REDIS_URL names another server now):
                    # the jobs it held are gone, and their senders are told so by their own timeouts.
                    logger.warning("the job stream's consumer group is gone (%s); creating it again", error)
                    with contextlib.suppress(RedisConnectionError, RedisTimeoutError):  # the next read waits it out
                        await self._ensure_group()
                    continue
                if not deliveries:
                    if burst:
                        break
                    continue
                if not await self._prepare_retrying(deliveries, backoff):
                    break
                async with self._next_changed:
                    self._next += deliveries
                    self._next_changed.notify_all()
        finally:
            async with self._next_changed:
                self._reading = False
                self._next_changed.notify_all()

    async def _room_in_next_batch(self) -> int:
        """How many more jobs the next batch can take; waits while it is full. 0: stopping."""
        async with self._next_changed:
            await self._next_changed.wait_for(
                lambda: self._stopping.is_set() or len(self._next) < self.options.batch_size
            )
            return 0 if self._stopping.is_set() else self.options.batch_size - len(self._next)

    async def _take_next_batch(self) -> _Batch | None:
        """Everything read and decoded so far; None once the reader has stopped and nothing is left."""
        async with self._next_changed:
            if not self._next:
                await self._next_changed.wait_for(lambda: bool(self._next) or not self._reading)
                if not self._next:
                    return None
                was_idle = True
            else:
                was_idle = False
        if was_idle and self.options.batch_wait_ms > 0 and len(self._next) < self.options.batch_size:
            # Idle until now: give the photos sent at the same moment a chance to share the forward pass.
            await asyncio.sleep(self.options.batch_wait_ms / 1000)
        async with self._next_changed:
            batch, self._next = _Batch(self._next), []
            self._next_changed.notify_all()
        return batch

    async def _claim_stale(self, count: int) -> list[_Delivery]:
        """Up to ``count`` jobs that a dead (or stuck) worker read but never answered."""
        now = time.monotonic()
        if now - self._last_claim < CLAIM_EVERY_S:
            return []
        self._last_claim = now
        _, entries, deleted = await self.redis.xautoclaim(
            keys.JOBS_STREAM,
            keys.WORKERS_GROUP,
            self.consumer,
            min_idle_time=self.options.claim_idle_ms,
            start_id="0-0",
            count=count,
        )
        if deleted:
            await self.redis.xack(keys.JOBS_STREAM, keys.WORKERS_GROUP, *deleted)
        deliveries = []
        for entry_id, fields in entries:
            pending = await self.redis.xpending_range(
                keys.JOBS_STREAM, keys.WORKERS_GROUP, min=entry_id, max=entry_id, count=1
            )
            count = int(pending[0]["times_delivered"]) if pending else 1
            delivery = await self._delivery(entry_id, fields, count)
            if delivery is not None:
                deliveries.append(delivery)
        if deliveries:
            logger.warning("took over %d stale job(s)", len(deliveries))
        return deliveries

    async def _take(self, count: int, block_ms: int | None) -> list[_Delivery]:
        """Up to ``count`` new jobs (waiting at most ``block_ms``; None: not at all)."""
        deliveries = []
        for entry_id, fields in await self._xreadgroup(count, block_ms):
            delivery = await self._delivery(entry_id, fields, 1)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _xreadgroup(self, count: int, block_ms: int | None) -> list[tuple[Any, Any]]:
        response = await self.redis.xreadgroup(
            keys.WORKERS_GROUP, self.consumer, {keys.JOBS_STREAM: ">"}, count=count, block=block_ms
        )
        return list(response[0][1]) if response else []

    async def _delivery(self, entry_id: bytes | str, fields: dict[Any, Any], count: int) -> _Delivery | None:
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        try:
            job = codec.job_from_fields(fields)
        except codec.ProtocolError as error:
            # Without a valid job there is nobody to answer: keep it for inspection and move on.
            logger.error("dropping malformed job %s to the dead-letter stream: %s", entry, error)
            await self._dead_letter(entry, {k: v for k, v in fields.items()}, f"malformed: {error}")
            await self.redis.xack(keys.JOBS_STREAM, keys.WORKERS_GROUP, entry)
            await self.redis.xdel(keys.JOBS_STREAM, entry)
            return None
        return _Delivery(entry, job, count)

    async def _prepare(self, deliveries: list[_Delivery]) -> None:
        """Settle what can be settled without the network, and decode the photos in threads."""
        photos = []
        for delivery in deliveries:
            job = delivery.job
            if delivery.deliveries > self.options.max_deliveries:
                await self._dead_letter(delivery.entry_id, codec.job_fields(job), f"{delivery.deliveries} deliveries")
                delivery.outcome = m.Failure(m.ErrorCode.FAILED)
                self.metrics.dead_letters.inc()
            elif job.expired():
                delivery.outcome = m.Failure(m.ErrorCode.EXPIRED)
            elif isinstance(job.request, m.Recommend):
                photos.append(delivery)
        if photos:
            await self._load_photos(photos)

    async def _prepare_retrying(self, deliveries: list[_Delivery], backoff: Backoff) -> bool:
        """``_prepare``, again after a pause while Redis is unreachable; False when stopping first.

        After a Redis restart the first command on each pooled connection fails; these jobs are read (pending
        under our name, so nobody else takes them soon), and letting the error out would end the worker.
        """
        while not self._stopping.is_set():
            try:
                await self._prepare(deliveries)
                return True
            except (RedisConnectionError, RedisTimeoutError) as error:
                await backoff.wait(error, logger)
        return False

    async def _load_photos(self, deliveries: list[_Delivery]) -> None:
        """Read the photos and look up their cached fingerprints, a round trip each for all of them; decode the rest.

        A photo the bot did not send (its Telegram file was fingerprinted before) is found by its file id."""
        fingerprint, dim = self.extractor.fingerprint.key, self.extractor.fingerprint.dim
        photos = await self.redis.mget([keys.photo(d.job.id) for d in deliveries])
        unsent: list[tuple[_Delivery, str]] = []
        for delivery, data in zip(deliveries, photos, strict=True):
            file_id = delivery.job.request.file_unique_id  # type: ignore[union-attr]
            if data is not None:
                delivery.photo_hash = content_hash(data)
            elif file_id:
                unsent.append((delivery, file_id))
        known = await self.state.hashes_for_files([file_id for _, file_id in unsent])
        for (delivery, _), photo_hash in zip(unsent, known, strict=True):
            delivery.photo_hash = photo_hash
        vectors = await self.state.cached_vectors(fingerprint, [d.photo_hash for d in deliveries], dim)
        decoding = []
        for delivery, data, vector in zip(deliveries, photos, vectors, strict=True):
            delivery.vector = vector
            if vector is None and data is None:
                delivery.outcome = m.Failure(m.ErrorCode.PHOTO_GONE)
            elif vector is None:
                decoding.append(self._decode(delivery, data))
        await asyncio.gather(*decoding)

    async def _decode(self, delivery: _Delivery, data: bytes) -> None:
        """The photo's pixels, decoded in a thread; or why the photo cannot be used."""
        job = delivery.job
        loop = asyncio.get_running_loop()
        try:
            delivery.pixels = await loop.run_in_executor(self._decode_pool, self.extractor.preprocess, data)
        except UnsupportedImage as error:
            logger.info("job %s: unusable photo: %s", job.id, error, extra={"job_id": job.id, "kind": job.kind})
            delivery.outcome = m.Failure(m.ErrorCode.BAD_IMAGE, image=image_rejection(error))

    # ------------------------------------------------------------------------------------------ processing

    async def _embed(self, batch: _Batch) -> float:
        """One forward pass for every photo in the batch; on failure, one photo at a time to find the culprit.

        Returns the seconds it took."""
        started = time.perf_counter()
        waiting = [d for d in batch.deliveries if d.pixels is not None and d.outcome is None]
        if not waiting:
            return 0.0
        self.metrics.batch_size.observe(len(waiting))
        try:
            embedded = await self._forward(np.stack([d.pixels for d in waiting]))
            self.metrics.forward_passes.inc()
            results = list(zip(waiting, embedded.vectors, embedded.hints, strict=True))
        except Exception:
            logger.exception("forward pass over %d photos failed; retrying them one by one", len(waiting))
            results = []
            for delivery in waiting:
                try:
                    single = await self._forward(delivery.pixels[None])
                    self.metrics.forward_passes.inc()
                    results.append((delivery, single.vectors[0], single.hints[0]))
                except Exception:
                    logger.exception("job %s: forward pass failed", delivery.job.id)
        for delivery, vector, hints in results:
            delivery.pixels = None  # the batch's memory goes back while its replies are written
            delivery.vector = vector
            delivery.hints = tuple(h.label for h in hints if h.probability >= HINT_CONFIDENCE)
            delivery.embedded_here = True
        elapsed = time.perf_counter() - started
        self.metrics.stage_seconds.labels("forward").observe(elapsed)
        return elapsed

    async def _forward(self, images: np.ndarray) -> Embedded:
        return await asyncio.get_running_loop().run_in_executor(self._network_pool, self.extractor.embed, images)

    async def _reply(self, batch: _Batch, forward_s: float) -> None:
        """Rank the batch's photos together and answer every job.

        Whatever is settled once the photos are ranked (their results, their failures, the new fingerprints to cache)
        goes to Redis in one round trip with those jobs' replies (``_write_together``); the other jobs (/more, 👍,
        a photo left to be ranked on its own, ...) run their handlers and answer one by one, meanwhile.
        """
        started = time.perf_counter()
        ctx = jobs.JobContext(self.state, self.index, self.options.result_list_size)
        async with self.redis.pipeline(transaction=False) as pipe:
            await self._rank_together(ctx, pipe, batch)
            self._queue_vectors(pipe, batch)
            settled = [d for d in batch.deliveries if d.outcome is not None]
            await asyncio.gather(
                self._write_together(pipe, settled),
                *(self._complete(ctx, d) for d in batch.deliveries if d.outcome is None),
            )
        replies_s = time.perf_counter() - started
        self.metrics.stage_seconds.labels("handlers").observe(replies_s)
        logger.info(
            "batch of %d: forward %.1f ms, handlers %.1f ms",
            len(batch.deliveries),
            1000 * forward_s,
            1000 * replies_s,
            extra={
                "batch_size": len(batch.deliveries),
                "forward_ms": round(1000 * forward_s, 2),
                "handlers_ms": round(1000 * replies_s, 2),
            },
        )

    async def _rank_together(self, ctx: jobs.JobContext, pipe: Pipeline, batch: _Batch) -> None:
        """Rank the batch's photos in one pass over the catalog, queueing their writes on ``pipe``.

        A failure queues nothing and leaves the photos to be handled one by one."""
        photos = [
            d
            for d in batch.deliveries
            if d.outcome is None and d.vector is not None and isinstance(d.job.request, m.Recommend)
        ]
        if not photos:
            return
        try:
            outcomes = await jobs.recommend_many(
                ctx,
                pipe,
                [(d.job, d.job.request, d.vector, d.hints) for d in photos],  # type: ignore[misc]
            )
        except Exception:
            logger.exception("ranking a batch of %d photos failed; ranking them one by one", len(photos))
            return
        for delivery, outcome in zip(photos, outcomes, strict=True):
            delivery.outcome = outcome

    def _queue_vectors(self, pipe: Pipeline, batch: _Batch) -> None:
        """Queue caching the fingerprints this batch's forward pass computed."""
        fingerprint = self.extractor.fingerprint.key
        for d in batch.deliveries:
            if d.embedded_here and d.vector is not None:
                request = d.job.request
                file_unique_id = request.file_unique_id or None if isinstance(request, m.Recommend) else None
                self.state.queue_vector(pipe, fingerprint, d.photo_hash or "", d.vector, file_unique_id)

    async def _write_together(self, pipe: Pipeline, settled: list[_Delivery]) -> None:
        """Send ``pipe`` (the settled jobs' writes) with every settled job's ``FINISH``, in one round trip.

        Commands of one pipeline run in order, so each job's results and pages are stored before its reply is
        pushed: the bot may act on a reply at once (/more reads the saved list). The pipeline is not a transaction:
        the bot keeps one job per chat in flight, so nobody reads a chat's keys while its writes land, and a job
        whose writes land only in part (a crash) is not acknowledged and writes them all again when retried.
        """
        finishing = self._queue_finishes(pipe, settled)
        if not len(pipe):
            return
        try:
            # Errors come back in place: each job is judged by its own FINISH.
            results = await pipe.execute(raise_on_error=False)
        except (RedisConnectionError, RedisTimeoutError) as error:
            # Some FINISHes may have run; the others' jobs stay pending and are retried (taken over after
            # claim_idle_ms), where FINISH's idempotency key stops a second reply to any job that was answered.
            logger.error("writing a batch of %d replies failed; they will be retried: %s", len(settled), error)
            for delivery in settled:
                self.metrics.jobs.labels(delivery.job.kind, "error").inc()
            return
        self._report_write_errors(results, finishing)
        await asyncio.gather(*(self._finished(delivery, results[at]) for at, delivery in finishing))

    def _queue_finishes(self, pipe: Pipeline, settled: list[_Delivery]) -> list[tuple[int, _Delivery]]:
        """Queue each job's FINISH after what is queued already; returns where each one's result will be."""
        finishing = []
        for delivery in settled:
            finishing.append((len(pipe), delivery))
            keys_, args = self._finish_call(delivery, delivery.outcome)  # type: ignore[arg-type]
            # A bare EVALSHA: a Script queued on a pipeline costs a SCRIPT EXISTS round trip at each execute.
            pipe.evalsha(self._finish.sha, len(keys_), *keys_, *args)
        return finishing

    async def _finished(self, delivery: _Delivery, first: Any) -> None:
        """Account for a job whose FINISH ran in a batch (``first``: its result, or the error in its place)."""
        if isinstance(first, NoScriptError):
            # Redis lost its scripts (a restart), so FINISH did not run: answer alone (the Script loads it again).
            await self._answer_or_leave(delivery)
        elif isinstance(first, Exception):
            logger.error("job %s: FINISH failed; it will be retried: %s", delivery.job.id, first)
            self.metrics.jobs.labels(delivery.job.kind, "error").inc()
        else:
            self._answered(delivery, delivery.outcome, bool(first))  # type: ignore[arg-type]

    async def _answer_or_leave(self, delivery: _Delivery) -> None:
        """``_answer``; if Redis cannot be reached, the job stays pending and is retried."""
        try:
            await self._answer(delivery, delivery.outcome)  # type: ignore[arg-type]
        except (RedisConnectionError, RedisTimeoutError) as error:
            logger.error("job %s: answering failed; it will be retried: %s", delivery.job.id, error)
            self.metrics.jobs.labels(delivery.job.kind, "error").inc()

    @staticmethod
    def _report_write_errors(results: list[Any], finishing: list[tuple[int, _Delivery]]) -> None:
        """Log a write Redis refused (a key of the wrong type): the batch's jobs were answered all the same."""
        finishes = {at for at, _ in finishing}
        for at, result in enumerate(results):
            if at not in finishes and isinstance(result, Exception):
                logger.error("a write of a batch of %d jobs failed: %s", len(finishing), result)

    async def _complete(self, ctx: jobs.JobContext, delivery: _Delivery) -> None:
        job = delivery.job
        try:
            outcome = await self._handle(ctx, delivery)
        except Exception:
            # Left unacknowledged on purpose: it is retried, and dead-lettered after max_deliveries.
            logger.exception(
                "job %s (%s) failed; it will be retried", job.id, job.kind, extra={"job_id": job.id, "kind": job.kind}
            )
            self.metrics.jobs.labels(job.kind, "error").inc()
            return
        if outcome is not None:
            await self._answer(delivery, outcome)

    async def _handle(self, ctx: jobs.JobContext, delivery: _Delivery) -> m.Outcome | None:
        request = delivery.job.request
        if isinstance(request, m.Recommend):
            if delivery.vector is None:
                return None  # its forward pass failed: leave it pending for a retry
            return await jobs.recommend(ctx, delivery.job, request, delivery.vector, delivery.hints)
        return await jobs.HANDLERS[type(request)](ctx, delivery.job, request)

    def _finish_call(self, delivery: _Delivery, outcome: m.Outcome) -> tuple[list[str], list[Any]]:
        """FINISH's keys and arguments for answering this job with ``outcome``."""
        job = delivery.job
        reply = codec.reply_json(m.Reply(job.id, job.kind, outcome))
        return (
            [keys.done(job.id), keys.replies(job.reply_to), keys.JOBS_STREAM, keys.photo(job.id)],
            [keys.WORKERS_GROUP, delivery.entry_id, reply, DONE_TTL_S, REPLY_TTL_S],
        )

    async def _answer(self, delivery: _Delivery, outcome: m.Outcome) -> None:
        """Answer one job on its own (one round trip)."""
        keys_, args = self._finish_call(delivery, outcome)
        self._answered(delivery, outcome, bool(await self._finish(keys=keys_, args=args)))

    def _answered(self, delivery: _Delivery, outcome: m.Outcome, first: bool) -> None:
        """Count and log a job FINISH has retired (``first``: this was its first answer)."""
        job = delivery.job
        self.jobs_done += 1
        outcome_label = outcome.code.value if isinstance(outcome, m.Failure) else "ok"
        if not first:
            outcome_label = "duplicate"
            logger.info("job %s was already answered; acknowledged only", job.id)
        self.metrics.jobs.labels(job.kind, outcome_label).inc()
        self.metrics.latency.labels(job.kind).observe(max(0.0, time.time() - job.created))
        logger.info(
            "job %s %s -> %s",
            job.id,
            job.kind,
            outcome_label,
            extra={"job_id": job.id, "kind": job.kind, "chat_id": job.chat_id, "outcome": outcome_label},
        )

    async def _dead_letter(self, entry_id: str, fields: dict[Any, Any], reason: str) -> None:
        record = {**{_text(k): _text(v) for k, v in fields.items()}, "entry": entry_id, "reason": reason}
        await self.redis.xadd(keys.DEAD_LETTER_STREAM, record, maxlen=keys.DEAD_LETTER_MAXLEN, approximate=True)
        logger.error("job entry %s dead-lettered: %s", entry_id, reason, extra={"entry_id": entry_id})

    # ------------------------------------------------------------------------------------------ hot reload

    async def _swap_index_if_ready(self) -> None:
        """Between batches: notice a newly published index, load it aside, and swap once it is fully loaded."""
        if self.index_dir is None:
            return
        if self._loading is not None and self._loading.done():
            loading, self._loading = self._loading, None
            try:
                new_index = loading.result()
            except Exception as error:
                self._failed_version = current_version(self.index_dir)
                logger.error("could not load index %s, keeping %s: %s", self._failed_version, self.index.version, error)
                return
            old = self.index
            self.index = new_index
            self._describe_model()
            logger.info("index swapped: %s -> %s (%d destinations)", old.version, new_index.version, len(new_index))
            return
        now = time.monotonic()
        if self._loading is not None or now - self._last_reload_check < self.options.reload_poll_s:
            return
        self._last_reload_check = now
        version = current_version(self.index_dir)
        if version and version not in (self.index.version, self._failed_version):
            logger.info("new index version %s published; loading it", version)
            self._loading = asyncio.create_task(
                asyncio.to_thread(
                    open_index, self.index_dir, expected=self.extractor.fingerprint, search=self.options.search
                ),
                name=f"Worker:{self.consumer}:index-load",
            )


def image_rejection(error: UnsupportedImage) -> m.ImageRejection:
    return m.ImageRejection(
        reason=error.reason.value,
        format=error.format,
        max_bytes=error.limits.max_bytes,
        max_pixels=error.limits.max_pixels,
        min_side=error.limits.min_side,
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)

"""A batch's state writes and replies go to Redis in one round trip: in order, exactly once, and safely retried."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.asyncio.connection import Connection
from redis.exceptions import ConnectionError as RedisConnectionError

from contract import keys
from contract import messages as m
from contract.client import ClientLimits, JobClient
from contract.connect import connect
from recommender.index import open_index
from tests.redis_server import RedisServer, start_redis
from tests.worker.conftest import colour_worker, settings
from tests.worker.fakes import ColourExtractor, photo_bytes
from worker import jobs
from worker.loop import Worker

_replying = contextvars.ContextVar("replying", default=False)
_connecting = contextvars.ContextVar("connecting", default=False)


def recommend_job(chat_id: int, *, k: int = 3) -> m.Job:
    return m.Job.new(m.Recommend(k), chat_id=chat_id, user_id=chat_id, reply_to="test-bot", timeout=30)


def more_job(chat_id: int, *, k: int = 3) -> m.Job:
    return m.Job.new(m.More(k), chat_id=chat_id, user_id=chat_id, reply_to="test-bot", timeout=10)


def photo(n: int) -> bytes:
    return photo_bytes((n * 37 % 256, 90, 200 - n * 11 % 200), seed=n)


@contextlib.asynccontextmanager
async def serving(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 15)


async def answer_all(worker: Worker, futures: list[asyncio.Future[m.Reply]], *, linger_s: float = 0) -> list[m.Reply]:
    """Serve until every future is answered, then ``linger_s`` longer (a second answer would come meanwhile)."""
    async with serving(worker):
        replies = await asyncio.wait_for(asyncio.gather(*futures), 60)
        await asyncio.sleep(linger_s)
    return replies


def commands_seen(log: list[str], needle: str) -> list[int]:
    return [n for n, command in enumerate(log) if needle in command]


async def test_a_batch_from_many_chats_is_answered_once_each_with_its_state_saved_first(
    make_worker, client: JobClient, redis: Redis, redis_server: RedisServer
) -> None:
    worker, model = make_worker()
    chats = list(range(700, 706))
    photos = [recommend_job(chat) for chat in chats]
    futures = [await client.submit(job, photo(n)) for n, job in enumerate(photos)]
    # The server's own record of the order it ran commands in (MONITOR), to check each reply came after its writes.
    log: list[str] = []
    async with Redis.from_url(redis_server.url) as watcher, watcher.monitor() as monitor:

        async def record() -> None:
            while True:
                log.append((await monitor.next_command())["command"])

        recording = asyncio.create_task(record())
        await asyncio.sleep(0.1)

        async def and_then_more(chat: int, future: asyncio.Future[m.Reply]) -> tuple[m.Reply, m.Reply]:
            reply = await future
            return reply, await client.request(more_job(chat), timeout=10)  # at once, as the bot may

        async with serving(worker):
            answered = await asyncio.wait_for(asyncio.gather(*map(and_then_more, chats, futures)), 30)
            await asyncio.sleep(0.5)  # a second answer to any job would be in the reply list by now
        recording.cancel()
    assert model.batch_sizes == [len(chats)], "the photos must have shared one batch"
    for (reply, more), job, chat in zip(answered, photos, chats, strict=True):
        assert reply.job_id == job.id
        first, second = reply.outcome, more.outcome
        assert isinstance(first, m.Album) and isinstance(second, m.Album), (reply, more)
        assert (first.first_rank, second.first_rank) == (1, 4)
        assert not {i.id for i in first.items} & {i.id for i in second.items}
        # In the server's order: the chat's results and page were stored before the job's reply was pushed.
        finished = commands_seen(log, f"EVALSHA {worker._finish.sha} 4 {keys.done(job.id)}")[-1]
        for write in (f"SET {keys.results(chat)}", f"HSET {keys.pages(chat)}", f"SET {keys.last_page(chat)}"):
            assert commands_seen(log, write)[0] < finished, write
    assert await redis.llen(keys.replies("test-bot")) == 0
    assert worker.metrics.value("wanderlens_jobs_total", {"kind": "recommend", "outcome": "ok"}) == len(chats)
    assert worker.metrics.value("wanderlens_jobs_total", {"kind": "recommend", "outcome": "duplicate"}) == 0
    assert worker.metrics.value("wanderlens_jobs_total", {"kind": "more", "outcome": "ok"}) == len(chats)


class _CountingConnection(Connection):
    """Counts what it sends while a batch is read or answered: one send is one round trip (a pipeline is one)."""

    round_trips = 0

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        token = _connecting.set(True)  # a new connection's handshake is not the batch's doing
        try:
            await super().connect_check_health(*args, **kwargs)
        finally:
            _connecting.reset(token)

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        if _replying.get() and not _connecting.get():
            type(self).round_trips += 1
        await super().send_packed_command(*args, **kwargs)


async def _round_trips_to_answer(
    batch: int, redis: Redis, redis_server: RedisServer, client: JobClient, colour_index: Path
) -> int:
    await redis.flushall()
    futures = [await client.submit(recommend_job(900 + n), photo(n)) for n in range(batch)]
    model = ColourExtractor()
    async with Redis.from_url(redis_server.url, connection_class=_CountingConnection) as counted:
        worker = Worker(
            redis=counted,
            extractor=model,
            index=open_index(colour_index, expected=model.fingerprint, placement="host"),
            options=settings(redis_server, batch_size=16, consumer=f"{socket.gethostname()}-count").options(),
        )
        prepare, reply = worker._prepare, worker._reply

        async def counting_prepare(*args: Any) -> None:
            token = _replying.set(True)  # this call only: the reader's other sends (XREADGROUP) are not counted
            try:
                await prepare(*args)
            finally:
                _replying.reset(token)

        async def counting_reply(*args: Any) -> None:
            _replying.set(True)  # this task's context only: the reader's and the heartbeat's sends are not counted
            await reply(*args)

        worker._prepare, worker._reply = counting_prepare, counting_reply  # type: ignore[method-assign]
        _CountingConnection.round_trips = 0
        replies = await answer_all(worker, futures)
    assert all(isinstance(r.outcome, m.Album) for r in replies)
    assert model.batch_sizes == [batch]
    return _CountingConnection.round_trips


async def test_reading_and_answering_a_batch_takes_as_many_round_trips_for_eight_photos_as_for_two(
    redis: Redis, redis_server: RedisServer, client: JobClient, colour_index: Path
) -> None:
    two = await _round_trips_to_answer(2, redis, redis_server, client, colour_index)
    eight = await _round_trips_to_answer(8, redis, redis_server, client, colour_index)
    # The photos in one, their cached fingerprints in one; everyone's likes in one, every write and reply in one.
    assert (two, eight) == (4, 4)


async def test_a_batch_write_lost_to_a_redis_restart_is_retried_and_answered_once_each(
    tmp_path: Path, colour_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server of its own, which keeps its data across the restart (SHUTDOWN SAVE), as a production Redis would.
    server = start_redis(tmp_path / "redis")
    restarting: list[asyncio.Task[RedisServer]] = []
    async with connect(server.url) as redis, connect(server.url) as admin:
        client = JobClient(redis, instance="test-bot", limits=ClientLimits(max_queue=100))
        await client.start()
        try:
            photos = [recommend_job(800 + n) for n in range(5)]
            futures = [await client.submit(job, photo(n)) for n, job in enumerate(photos)]
            rank = jobs.recommend_many

            async def rank_then_lose_redis(*args: Any) -> list[m.Outcome]:
                outcomes = await rank(*args)
                if not restarting:  # the first batch only: ranked, its writes queued, none sent yet
                    await admin.shutdown(save=True)
                    await asyncio.to_thread(server.process.wait, 10)
                    restarting.append(asyncio.create_task(asyncio.to_thread(_restart_later, server)))
                return outcomes

            monkeypatch.setattr(jobs, "recommend_many", rank_then_lose_redis)
            worker = colour_worker(redis, server, colour_index, "restart")
            replies = await answer_all(worker, futures, linger_s=1.5)
            assert sorted(r.job_id for r in replies) == sorted(j.id for j in photos)
            assert all(isinstance(r.outcome, m.Album) for r in replies)
            assert await redis.llen(keys.replies("test-bot")) == 0
            assert (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] == 0
            # The first write did fail (else this test proves nothing), and the retry answered each job once.
            assert worker.metrics.value("wanderlens_jobs_total", {"kind": "recommend", "outcome": "error"}) == 5
            assert worker.metrics.value("wanderlens_jobs_total", {"kind": "recommend", "outcome": "ok"}) == 5
        finally:
            await client.close()
            server.stop()
            for restart in restarting:
                (await restart).stop()


def _restart_later(server: RedisServer) -> RedisServer:
    """The same server (port, folder, saved data) started again, after the worker's write has given up."""
    import time

    time.sleep(1.0)  # longer than contract.connect's retries of one command
    return start_redis(server.folder, port=server.port)


async def test_a_batch_write_whose_answer_was_lost_answers_no_job_twice(
    redis: Redis, redis_server: RedisServer, client: JobClient, colour_index: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worse case for exactly-once: Redis ran the whole batch, but the worker never heard back.
    execute = Pipeline.execute
    lost: list[int] = []

    async def execute_then_lose_the_answer(self: Pipeline, raise_on_error: bool = True) -> list[Any]:
        batch_write = any(args[0] == "EVALSHA" for args, _ in self.command_stack)
        results = await execute(self, raise_on_error)
        if batch_write and not lost:
            lost.append(1)
            raise RedisConnectionError("connection lost while reading the replies")
        return results

    monkeypatch.setattr(Pipeline, "execute", execute_then_lose_the_answer)
    photos = [recommend_job(850 + n) for n in range(4)]
    futures = [await client.submit(job, photo(n)) for n, job in enumerate(photos)]
    worker = colour_worker(redis, redis_server, colour_index, "restart")
    # Lingering past claim_idle_ms: a job left pending would be answered again meanwhile.
    replies = await answer_all(worker, futures, linger_s=2.0)
    assert lost, "the batch write never ran"
    assert sorted(r.job_id for r in replies) == sorted(j.id for j in photos)
    assert await redis.llen(keys.replies("test-bot")) == 0
    assert (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] == 0
    assert await redis.xlen(keys.JOBS_STREAM) == 0

"""The worker loop against a real Redis server: round trip, batching, crashes, poison, deadlines, reload, limits."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from contract import codec, keys
from contract import messages as m
from contract.client import ChatBusy, ClientLimits, JobClient, QueueFull
from recommender.catalog import load_catalog
from recommender.extractor import Embedded
from recommender.index import open_index
from recommender.index_build import build_index
from tests.conftest import REPO
from tests.redis_server import RedisServer
from tests.worker.conftest import colour_worker, settings
from tests.worker.fakes import POISON_RGB, ColourExtractor, catalog_colour, colour_catalog, photo_bytes
from worker.loop import Worker
from worker.priority import DECODE_NICENESS, NETWORK_NICENESS
from worker.settings import WorkerOptions


def recommend_job(chat_id: int = 1, *, timeout: float = 30.0, k: int = 5) -> m.Job:
    return m.Job.new(m.Recommend(k), chat_id=chat_id, user_id=chat_id, reply_to="test-bot", timeout=timeout)


def worker_process(
    redis_server: RedisServer, index_dir: Path, *, delay_s: float, consumer: str = "doomed"
) -> subprocess.Popen[bytes]:
    """A real Worker in its own process (tests/worker/run_worker.py), with a slow stand-in extractor."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.worker.run_worker", redis_server.url, str(index_dir), str(delay_s), consumer],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def until_jobs_are_pending(redis: Redis, *, timeout_s: float = 60) -> None:
    """Until some worker has read jobs without answering them yet."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] > 0:
                return
        except ResponseError:
            pass  # the worker has not created its consumer group yet
        await asyncio.sleep(0.05)
    pytest.fail("the subprocess worker never read a job")


async def serve_in_background(worker: Worker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


async def stop(worker: Worker, task: asyncio.Task[None]) -> None:
    worker.stop()
    await asyncio.wait_for(task, 10)


async def test_round_trip_answers_with_the_nearest_colours(make_worker, client: JobClient, colour_index: Path) -> None:
    worker, _ = make_worker()
    task = await serve_in_background(worker)
    target = worker.index.destinations[7]
    # The same pixels as a catalog photo must find that photo first.
    data = (colour_index.parent / "catalog" / target.image).read_bytes()
    reply = await client.request(recommend_job(), data, timeout=10)
    await stop(worker, task)
    assert reply.failure is None, reply
    assert len(reply.outcome.items) == 5
    assert reply.outcome.items[0].id == target.id
    assert reply.outcome.items[0].score == pytest.approx(1.0, abs=1e-4)
    assert [i.score for i in reply.outcome.items] == sorted((i.score for i in reply.outcome.items), reverse=True)
    assert reply.outcome.remaining == min(len(worker.index), worker.options.result_list_size) - 5
    assert reply.outcome.hints == ("colour swatch",)


async def test_concurrent_jobs_share_forward_passes(make_worker, client: JobClient) -> None:
    worker, model = make_worker(extractor=ColourExtractor(delay_s=0.05))
    jobs = [recommend_job(chat_id=100 + n) for n in range(40)]
    futures = [await client.submit(job, photo_bytes((n * 6, 100, 200 - n), seed=n)) for n, job in enumerate(jobs)]
    task = await serve_in_background(worker)
    replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
    await stop(worker, task)
    assert all(r.failure is None for r in replies)
    assert {r.job_id for r in replies} == {j.id for j in jobs}
    assert model.forward_passes <= 40 // 8 + 2, model.batch_sizes
    assert max(model.batch_sizes) == 8
    assert worker.metrics.value("wanderlens_forward_passes_total") == model.forward_passes


async def test_photos_arriving_during_a_forward_pass_share_the_next_one(make_worker, client: JobClient) -> None:
    # Senders that each wait for their reply arrive one by one; they must not trickle into many small batches.
    worker, model = make_worker(extractor=ColourExtractor(delay_s=0.3))
    task = await serve_in_background(worker)
    first = await client.submit(recommend_job(chat_id=1), photo_bytes((200, 30, 30)))
    deadline = time.monotonic() + 10
    while model.forward_passes == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    later = []
    for n in range(6):
        later.append(await client.submit(recommend_job(chat_id=10 + n), photo_bytes((30, 8 * n, 200), seed=n)))
        await asyncio.sleep(0.02)  # each on its own, as a closed loop of senders delivers them
    replies = await asyncio.wait_for(asyncio.gather(first, *later), 30)
    await stop(worker, task)
    assert all(r.failure is None for r in replies)
    assert model.batch_sizes == [1, 6]


class _PriorityRecordingExtractor(ColourExtractor):
    def __init__(self) -> None:
        super().__init__()
        self.decode_niceness: list[int] = []
        self.network_niceness: list[int] = []

    def preprocess(self, source: bytes | str | Path) -> np.ndarray:
        self.decode_niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().preprocess(source)

    def embed(self, images: np.ndarray) -> Embedded:
        self.network_niceness.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))
        return super().embed(images)


async def test_the_loop_comes_before_the_network_and_the_network_before_decoding(
    make_worker, client: JobClient
) -> None:
    worker, model = make_worker(extractor=_PriorityRecordingExtractor())
    task = await serve_in_background(worker)
    for n in range(2):
        reply = await client.request(recommend_job(chat_id=1), photo_bytes((90, 120, 30 + n)), timeout=10)
        assert reply.failure is None
    await stop(worker, task)
    loop_niceness = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())  # this test runs on the loop's thread
    assert model.network_niceness == [loop_niceness + NETWORK_NICENESS] * 2
    assert model.decode_niceness == [loop_niceness + DECODE_NICENESS] * 2
    assert 0 < NETWORK_NICENESS < DECODE_NICENESS


async def test_idle_queue_answers_a_lone_photo_without_waiting_for_a_batch(make_worker, client) -> None:
    worker, model = make_worker(batch_wait_ms=0)
    task = await serve_in_background(worker)
    for n in range(3):
        reply = await client.request(recommend_job(chat_id=n + 1), photo_bytes((10 * n, 20, 30)), timeout=10)
        assert reply.failure is None
    await stop(worker, task)
    assert model.batch_sizes == [1, 1, 1]


async def test_bad_photos_get_a_clear_error_and_the_worker_lives_on(make_worker, client, tmp_path) -> None:
    from tests.recommender.badimages import write_corpus

    worker, _ = make_worker()
    task = await serve_in_background(worker)
    cases = [c for c in write_corpus(tmp_path) if c.expect != "ok" and c.max_bytes is None]
    assert len(cases) >= 10
    for n, case in enumerate(cases):
        reply = await client.request(recommend_job(chat_id=500 + n), case.path.read_bytes(), timeout=10)
        failure = reply.failure
        assert failure is not None and failure.code == m.ErrorCode.BAD_IMAGE, case.name
        assert failure.image is not None and failure.image.reason == case.expect, case.name
    good = await client.request(recommend_job(chat_id=999), photo_bytes((1, 2, 3)), timeout=10)
    await stop(worker, task)
    assert good.failure is None


async def test_a_killed_worker_s_jobs_are_answered_exactly_once_by_another(
    make_worker, client: JobClient, redis: Redis, redis_server: RedisServer, colour_index: Path
) -> None:
    jobs = [recommend_job(chat_id=200 + n) for n in range(12)]
    futures = [await client.submit(job, photo_bytes((n * 20, 50, 90), seed=n)) for n, job in enumerate(jobs)]
    doomed = worker_process(redis_server, colour_index, delay_s=1.0)
    try:
        # Once the doomed worker has read jobs (they are pending under its name), kill it mid-batch.
        await until_jobs_are_pending(redis)
        await asyncio.sleep(0.3)
    finally:
        doomed.kill()
        doomed.wait()
    pending_before = (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"]
    assert pending_before > 0
    rescuer, _ = make_worker()
    task = await serve_in_background(rescuer)
    replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
    await asyncio.sleep(1.5)  # anything delivered twice would show up in the reply list by now
    await stop(rescuer, task)
    assert sorted(r.job_id for r in replies) == sorted(j.id for j in jobs)
    assert all(r.failure is None for r in replies)
    assert await redis.llen(keys.replies("test-bot")) == 0  # no second answer waiting for anyone
    assert (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] == 0
    assert await redis.xlen(keys.JOBS_STREAM) == 0


async def test_a_job_answered_twice_is_delivered_once(make_worker, client: JobClient, redis: Redis) -> None:
    worker, _ = make_worker()
    job = recommend_job()
    future = await client.submit(job, photo_bytes((5, 5, 5)))
    task = await serve_in_background(worker)
    await asyncio.wait_for(future, 10)
    # Replay the same job as if a crash had happened after the reply: it must be acknowledged, not answered.
    await redis.set(keys.photo(job.id), photo_bytes((5, 5, 5)))
    await redis.xadd(keys.JOBS_STREAM, codec.job_fields(job))
    await asyncio.sleep(0.5)
    await stop(worker, task)
    assert await redis.llen(keys.replies("test-bot")) == 0
    assert worker.metrics.value("wanderlens_jobs_total", {"kind": "recommend", "outcome": "duplicate"}) == 1
    assert await redis.xlen(keys.JOBS_STREAM) == 0


async def test_poison_photo_goes_to_dead_letter_with_an_error_reply(make_worker, client, redis: Redis) -> None:
    worker, _ = make_worker(extractor=ColourExtractor(poison=POISON_RGB), max_deliveries=2)
    poison = recommend_job(chat_id=1)
    healthy = recommend_job(chat_id=2)
    poison_future = await client.submit(poison, photo_bytes(POISON_RGB, noise=0))
    healthy_future = await client.submit(healthy, photo_bytes((20, 200, 20)))
    task = await serve_in_background(worker)
    healthy_reply = await asyncio.wait_for(healthy_future, 10)
    poison_reply = await asyncio.wait_for(poison_future, 20)
    await stop(worker, task)
    assert healthy_reply.failure is None
    assert poison_reply.failure == m.Failure(m.ErrorCode.FAILED)
    dead = await redis.xrange(keys.DEAD_LETTER_STREAM)
    assert len(dead) == 1
    assert dead[0][1][b"id"].decode() == poison.id
    assert b"deliveries" in dead[0][1][b"reason"]
    assert worker.metrics.value("wanderlens_dead_letters_total") == 1
    assert await redis.xlen(keys.JOBS_STREAM) == 0


async def test_a_job_past_its_deadline_gets_a_took_too_long_reply(make_worker, client: JobClient) -> None:
    worker, model = make_worker()
    future = await client.submit(recommend_job(timeout=0.05), photo_bytes((9, 9, 9)))
    await asyncio.sleep(0.2)
    task = await serve_in_background(worker)
    reply = await asyncio.wait_for(future, 10)
    await stop(worker, task)
    assert reply.failure == m.Failure(m.ErrorCode.EXPIRED)
    assert model.forward_passes == 0


async def test_the_queue_cap_refuses_jobs_beyond_it(redis: Redis) -> None:
    capped = JobClient(redis, instance="capped", limits=ClientLimits(max_queue=5))
    for n in range(5):
        await capped.submit(recommend_job(chat_id=n), b"x")
    with pytest.raises(QueueFull):
        await capped.submit(recommend_job(chat_id=99), b"x")
    assert await redis.xlen(keys.JOBS_STREAM) == 5
    assert not await redis.exists(keys.photo("nonexistent"))
    await capped.close()


async def test_one_job_in_flight_per_chat(redis: Redis, client: JobClient) -> None:
    first = asyncio.create_task(client.request(recommend_job(chat_id=7), b"x", timeout=2))
    await asyncio.sleep(0.1)
    with pytest.raises(ChatBusy):
        await client.request(recommend_job(chat_id=7), b"x", timeout=2)
    other_chat = asyncio.create_task(client.request(recommend_job(chat_id=8), b"x", timeout=0.5))
    with pytest.raises(TimeoutError):
        await other_chat  # accepted (no worker running, so it times out rather than being refused)
    first.cancel()
    await asyncio.wait({first}, timeout=5)  # it releases the chat's lock on its way out
    assert first.cancelled()
    assert not await redis.exists(keys.inflight(7))


class DeleteFails(Redis):
    """Redis gone at the moment the chat's lock is deleted, after the reply arrived."""

    async def delete(self, *names):  # type: ignore[no-untyped-def, override]
        raise RedisConnectionError("Connection closed by server.")


async def test_a_reply_in_hand_survives_a_lock_that_cannot_be_deleted(make_worker, redis_server: RedisServer) -> None:
    """Else the bot would wait for Redis and send the job again, which the worker, having answered it, would not
    answer twice: the user would get "took too long" for a photo already answered."""
    worker, _ = make_worker()
    task = await serve_in_background(worker)
    async with DeleteFails.from_url(redis_server.url) as unlucky:
        client = JobClient(unlucky, instance="test-bot")
        await client.start()
        try:
            reply = await client.request(recommend_job(chat_id=12), photo_bytes((90, 90, 20)), timeout=10)
            assert reply.failure is None and len(reply.outcome.items) == 5
            assert await unlucky.exists(keys.inflight(12)), "the lock is left to expire"
        finally:
            await client.close()
            await stop(worker, task)


class BlpopSwallowsCancellation(Redis):
    """redis-py's known fault (redis/redis-py#2028), made certain: a cancelled BLPOP returns as if it timed out."""

    swallowing = True

    async def blpop(self, keys, timeout=0):  # type: ignore[no-untyped-def, override]
        try:
            return await super().blpop(keys, timeout=timeout)
        except asyncio.CancelledError:
            if not self.swallowing:
                raise
            return None


async def test_closing_the_client_ends_its_listener_even_when_redis_py_swallows_the_cancellation(
    redis_server: RedisServer,
) -> None:
    redis = BlpopSwallowsCancellation.from_url(redis_server.url)
    job_client = JobClient(redis, instance="swallowing-bot")
    await job_client.start()
    listener = job_client._listener
    assert listener is not None
    await asyncio.sleep(0.2)  # inside its first BLPOP
    closing = asyncio.create_task(job_client.close())
    done, _ = await asyncio.wait({closing}, timeout=10)
    try:
        assert closing in done, "close() hung on a listener that went on after its cancellation"
        assert listener.done()
    finally:
        # Pass or fail, leave nothing running: a task that ignores cancellation hangs the event loop's shutdown.
        redis.swallowing = False
        listener.cancel()
        await asyncio.wait({closing, listener}, timeout=5)
        await redis.aclose()


async def test_hot_reload_under_load_loses_no_job(
    make_worker, client: JobClient, tmp_path: Path, colour_index: Path
) -> None:
    catalog_dir = colour_catalog(tmp_path / "catalog", 30, seed=5)
    index_dir = tmp_path / "index"
    build_index(load_catalog(catalog_dir), ColourExtractor(), index_dir, progress=False)  # type: ignore[arg-type]
    worker, _ = make_worker(index_dir=index_dir, extractor=ColourExtractor(delay_s=0.01))
    first_version = worker.index.version
    task = await serve_in_background(worker)

    async def sender(n: int) -> m.Reply:
        return await client.request(
            recommend_job(chat_id=1000 + n), photo_bytes((n % 255, 80, 160), seed=n), timeout=20
        )

    load = [asyncio.create_task(sender(n)) for n in range(60)]
    await asyncio.sleep(0.05)
    # Publish a bigger catalog while jobs are flowing.
    colour_catalog(catalog_dir, 45, seed=5)
    await asyncio.to_thread(build_index, load_catalog(catalog_dir), ColourExtractor(), index_dir, progress=False)
    more = [asyncio.create_task(sender(100 + n)) for n in range(20)]
    replies = await asyncio.wait_for(asyncio.gather(*load, *more), 60)
    deadline = time.monotonic() + 10
    while worker.index.version == first_version and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await stop(worker, task)
    assert len(replies) == 80 and all(r.failure is None for r in replies)
    assert worker.index.version != first_version
    assert len(worker.index) == 45


async def test_heartbeat_and_health_check(make_worker, redis: Redis, redis_server: RedisServer) -> None:
    from worker.main import check_health

    worker, _ = make_worker()
    probe_settings = settings(redis_server)
    assert not await check_health(probe_settings)
    task = await serve_in_background(worker)
    await asyncio.sleep(0.3)
    raw = await redis.get(keys.health(worker.consumer))
    assert raw is not None and json.loads(raw)["index_version"] == worker.index.version
    assert await check_health(probe_settings)
    await stop(worker, task)
    assert await redis.get(keys.health(worker.consumer)) is None
    assert not await check_health(probe_settings)


async def test_worker_and_client_wait_out_a_redis_that_is_not_up_yet(tmp_path: Path, colour_index: Path) -> None:
    from tests.redis_server import free_port, start_redis

    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    extractor = ColourExtractor()
    index = open_index(colour_index, expected=extractor.fingerprint, placement="host")
    async with Redis.from_url(url) as redis:
        worker = Worker(
            redis=redis,
            extractor=extractor,
            index=index,
            options=WorkerOptions(consumer=f"{socket.gethostname()}-late", heartbeat_s=0.5),
        )
        task = asyncio.create_task(worker.run())
        client = JobClient(redis, instance="late-bot")
        await client.start()
        await asyncio.sleep(1.5)  # both retry meanwhile, without dying
        assert not task.done()
        server = start_redis(tmp_path / "redis", port=port)
        try:
            job = m.Job.new(m.Recommend(3), chat_id=1, user_id=1, reply_to="late-bot", timeout=30)
            reply = None
            for _ in range(50):  # the first submissions may still meet a connection being re-established
                try:
                    reply = await client.request(job, photo_bytes((40, 90, 200)), timeout=10)
                    break
                except (RedisConnectionError, ChatBusy):
                    await asyncio.sleep(0.2)
            assert reply is not None and reply.failure is None and len(reply.outcome.items) == 3
        finally:
            await client.close()
            worker.stop()
            await asyncio.wait_for(task, 15)
            server.stop()


async def test_a_worker_serves_on_when_redis_comes_back_empty(
    own_redis_server: RedisServer, own_redis: Redis, colour_index: Path
) -> None:
    """A Redis restarted without its data (no persistence, or REDIS_URL now names another server): the job stream
    and its consumer group are gone, and the worker makes them again instead of dying on NOGROUP."""
    worker = colour_worker(own_redis, own_redis_server, colour_index, "empty")
    task = asyncio.create_task(worker.run())
    client = JobClient(own_redis, instance="test-bot")  # where recommend_job asks for replies
    await client.start()
    try:
        first = await client.request(recommend_job(chat_id=1), photo_bytes((40, 90, 200)), timeout=10)
        assert first.failure is None
        own_redis_server.stop()
        await asyncio.sleep(1.0)  # the worker's reads fail meanwhile
        own_redis_server.restart()
        assert not await own_redis.exists(keys.JOBS_STREAM)
        reply = None
        for _ in range(50):  # the first commands may meet a connection being re-established
            with contextlib.suppress(RedisConnectionError):
                reply = await client.request(recommend_job(chat_id=2), photo_bytes((200, 40, 40)), timeout=10)
                break
            await asyncio.sleep(0.2)
        assert reply is not None and reply.failure is None and len(reply.outcome.items) == 5
        assert not task.done()
    finally:
        await client.close()
        worker.stop()
        await asyncio.wait_for(task, 15)


async def test_sigterm_finishes_the_batch_in_hand_then_exits(
    client: JobClient, redis: Redis, redis_server: RedisServer, colour_index: Path
) -> None:
    jobs = [recommend_job(chat_id=300 + n) for n in range(3)]
    futures = [await client.submit(job, photo_bytes((n * 40, 10, 10), seed=n)) for n, job in enumerate(jobs)]
    worker = worker_process(redis_server, colour_index, delay_s=1.5)
    try:
        await until_jobs_are_pending(redis)
        worker.send_signal(signal.SIGTERM)  # mid-batch: its forward pass takes 1.5 s
        replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
        assert worker.wait(30) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
    assert all(r.failure is None for r in replies)
    assert (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] == 0


def places_catalog(folder: Path, places: int, photos_each: int) -> Path:
    """Photos of neighbouring colours, ``photos_each`` per destination: a query near one matches all of them."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image", "name", "destination"])
        for n in range(places * photos_each):
            place = n // photos_each
            (folder / f"{n}.jpg").write_bytes(photo_bytes(catalog_colour(n), seed=n))
            writer.writerow([f"photo-{n}", f"{n}.jpg", f"Place {place}, photo {n % photos_each}", f"place-{place}"])
    return folder


async def test_a_destination_with_several_photos_is_shown_once_across_pages(
    make_worker, client: JobClient, tmp_path: Path
) -> None:
    catalog = load_catalog(places_catalog(tmp_path / "catalog", places=8, photos_each=3))
    build_index(catalog, ColourExtractor(), tmp_path / "index", progress=False)  # type: ignore[arg-type]
    worker, _ = make_worker(index_dir=tmp_path / "index")
    place_of = {d.id: d.place_key for d in worker.index.destinations}
    # Without grouping, a photo's neighbours would be its own destination's other photos.
    query = photo_bytes(catalog_colour(0), seed=99)
    rows = worker.index.scores(
        worker.index.prepare_queries(ColourExtractor().embed(ColourExtractor().preprocess(query)[None]).vectors)
    )[0]
    nearest_rows = [worker.index.destinations[i].place_key for i in np.argsort(-rows)[:5]]
    assert len(set(nearest_rows)) < 5, "the test needs photos of one place among the nearest rows"
    task = await serve_in_background(worker)
    shown: list[str] = []
    reply = await client.request(recommend_job(chat_id=77, k=5), query, timeout=10)
    while isinstance(reply.outcome, m.Album):
        shown += [place_of[item.id] for item in reply.outcome.items]
        more = m.Job.new(m.More(5), chat_id=77, user_id=77, reply_to="test-bot", timeout=10)
        reply = await client.request(more, timeout=10)
    await stop(worker, task)
    assert reply.failure == m.Failure(m.ErrorCode.NOTHING_LEFT)
    assert sorted(shown) == sorted(set(place_of.values())), "every destination once, none twice"
    assert shown[0] == "place-0"


async def test_two_workers_share_the_load_and_the_survivor_takes_over_when_one_dies(
    client: JobClient, redis: Redis, redis_server: RedisServer, colour_index: Path
) -> None:
    jobs = [recommend_job(chat_id=600 + n) for n in range(24)]
    workers = [worker_process(redis_server, colour_index, delay_s=0.4, consumer=name) for name in ("w-one", "w-two")]
    try:
        futures = [await client.submit(job, photo_bytes((n * 10, 90, 40), seed=n)) for n, job in enumerate(jobs)]
        # Once both have read jobs, kill one mid-batch: the other answers its own and, after the claim time, the dead
        # one's.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(ResponseError):  # the workers have not created their group yet
                consumers = await redis.xinfo_consumers(keys.JOBS_STREAM, keys.WORKERS_GROUP)
                if sum(1 for c in consumers if c["pending"] > 0) == 2:
                    break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("both workers never held jobs at once")
        workers[0].kill()
        workers[0].wait()
        replies = await asyncio.wait_for(asyncio.gather(*futures), 60)
        await asyncio.sleep(1.5)  # a second answer to any job would be in the reply list by now
    finally:
        for process in workers:
            process.kill()
            process.wait()
    assert sorted(r.job_id for r in replies) == sorted(j.id for j in jobs)
    assert all(r.failure is None for r in replies)
    assert await redis.llen(keys.replies("test-bot")) == 0
    assert (await redis.xpending(keys.JOBS_STREAM, keys.WORKERS_GROUP))["pending"] == 0

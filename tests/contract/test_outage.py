"""Waiting out a Redis that went away (``contract.outage``), against a real server stopped and started again."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from contract import codec, keys
from contract import messages as m
from contract.client import ChatBusy, JobClient, QueueFull
from contract.outage import NOTICE_AFTER_S, REDIS_DOWN, OutageLimits, RedisOutage
from tests.redis_server import RedisServer


def restart_after(own_redis_server: RedisServer, seconds: float) -> asyncio.Task[None]:
    async def later() -> None:
        await asyncio.sleep(seconds)
        await asyncio.to_thread(own_redis_server.restart)

    return asyncio.create_task(later())


async def test_a_request_waits_for_redis_and_the_user_hears_why_only_when_it_lasts(
    own_redis_server: RedisServer, own_redis: Redis
) -> None:
    outage = RedisOutage(own_redis, OutageLimits(wait_s=30))
    own_redis_server.stop()
    notices: list[float] = []

    async def notice() -> None:
        notices.append(time.monotonic())

    started = time.monotonic()
    restarting = restart_after(own_redis_server, NOTICE_AFTER_S + 1.0)
    assert await outage.wait_until_back(1000, on_still_down=notice)
    await restarting
    assert await own_redis.ping()
    assert len(notices) == 1 and notices[0] - started >= NOTICE_AFTER_S * 0.9
    assert outage.waiting == 0
    # A short outage (a restart under `wanderlens up`): answered with no notice at all.
    own_redis_server.stop()
    restarting = restart_after(own_redis_server, 0.5)
    assert await outage.wait_until_back(on_still_down=notice)
    await restarting
    assert len(notices) == 1


async def test_the_wait_is_bounded_in_time_number_and_bytes(own_redis_server: RedisServer, own_redis: Redis) -> None:
    outage = RedisOutage(own_redis, OutageLimits(max_waiting=2, max_bytes=1000, wait_s=1.5))
    own_redis_server.stop()
    first = asyncio.create_task(outage.wait_until_back(600))
    await asyncio.sleep(0.1)
    assert outage.waiting == 1
    assert not await outage.wait_until_back(600), "over the bytes limit: gives up at once"
    second = asyncio.create_task(outage.wait_until_back(100))
    await asyncio.sleep(0.1)
    started = time.monotonic()
    assert not await outage.wait_until_back(0), "over the number limit: gives up at once"
    assert time.monotonic() - started < 1.0
    assert not await first and not await second, "Redis never came back within wait_s"
    assert outage.waiting == 0
    # Room again once they gave up; and Redis back means back.
    restarting = restart_after(own_redis_server, 0.3)
    assert await outage.wait_until_back(1000)
    await restarting
    await outage.close()


async def test_the_same_job_sent_again_after_redis_came_back_is_not_busy_with_itself(
    own_redis_server: RedisServer, own_redis: Redis
) -> None:
    client = JobClient(own_redis, instance="outage-bot")
    job = m.Job.new(m.Recommend(3), chat_id=7, user_id=7, reply_to="outage-bot", timeout=30)
    # What a request leaves when Redis goes away after taking the chat's lock: the lock, not the job.
    await own_redis.set(keys.inflight(job.chat_id), job.id, ex=30)
    again = job.resent(30)
    assert again.id == job.id and again.deadline >= job.deadline
    with pytest.raises(TimeoutError):  # submitted and waited for (no worker here): not ChatBusy
        await client.request(again, timeout=0.5)
    assert await own_redis.xlen(keys.JOBS_STREAM) == 1
    assert not await own_redis.exists(keys.inflight(job.chat_id))
    # Another job of the same chat is still refused while one is in flight.
    await own_redis.set(keys.inflight(job.chat_id), "someone-else", ex=30)
    with pytest.raises(ChatBusy):
        await client.request(job, timeout=0.5)
    own_redis_server.stop()
    with pytest.raises(REDIS_DOWN):
        await client.request(job.resent(30), timeout=0.5)
    await restart_after(own_redis_server, 0)


async def test_a_failure_counts_redis_down_until_the_probe_reaches_it(
    own_redis_server: RedisServer, own_redis: Redis
) -> None:
    outage = RedisOutage(own_redis)
    assert not outage.down
    outage.noticed()  # a failure that was not one: the first ping says so
    for _ in range(50):
        if not outage.down:
            break
        await asyncio.sleep(0.05)
    assert not outage.down
    own_redis_server.stop()
    outage.noticed()
    await asyncio.sleep(1.0)
    assert outage.down, "nobody waits, and it still knows"
    await restart_after(own_redis_server, 0)
    for _ in range(50):
        if not outage.down:
            break
        await asyncio.sleep(0.1)
    assert not outage.down
    await outage.close()


async def test_a_redis_at_its_memory_limit_is_a_full_queue_not_an_error(own_redis: Redis) -> None:
    """With ``noeviction`` (what a queue needs) a full Redis refuses writes until photos expire: "busy"."""
    client = JobClient(own_redis, instance="full-bot")
    await own_redis.config_set("maxmemory-policy", "noeviction")
    await own_redis.set("ballast", b"x" * 4_000_000)
    used = int((await own_redis.info("memory"))["used_memory"])
    await own_redis.config_set("maxmemory", used - 1_000_000)
    job = m.Job.new(m.Recommend(3), chat_id=9, user_id=9, reply_to="full-bot", timeout=30)
    try:
        with pytest.raises(QueueFull, match="memory limit"):
            await client.request(job, b"photo" * 1000, timeout=1)
        await own_redis.config_set("maxmemory", 0)
        await own_redis.set(keys.inflight(job.chat_id), "held", ex=30)  # past the lock: the script itself is refused
        await own_redis.config_set("maxmemory", used - 1_000_000)
        with pytest.raises(QueueFull, match="memory limit"):
            await client.submit(job, b"photo" * 1000)
    finally:
        await own_redis.config_set("maxmemory", 0)
    assert await own_redis.xlen(keys.JOBS_STREAM) == 0


async def test_a_redis_that_answers_with_an_error_is_not_waited_for(own_redis: Redis) -> None:
    """Waiting does not mend an error Redis answers with (here PING is refused): the requests go on and meet it."""
    outage = RedisOutage(own_redis, OutageLimits(wait_s=30))
    await own_redis.execute_command("ACL", "SETUSER", "default", "-ping")
    try:
        started = time.monotonic()
        assert await outage.wait_until_back()
        assert time.monotonic() - started < 5
        assert not outage.down
    finally:
        await own_redis.execute_command("ACL", "SETUSER", "default", "+ping")


async def test_a_job_sent_again_whose_first_sending_was_answered_gets_that_answer(own_redis: Redis) -> None:
    """The first sending got in before the outage cut it short, and its answer came before the second sending: the
    worker will not answer the same job twice, so that answer is the one to return."""
    client = JobClient(own_redis, instance="resend-bot")
    await client.start()
    try:
        job = m.Job.new(m.Recommend(3), chat_id=11, user_id=11, reply_to="resend-bot", timeout=30)
        answer = m.Reply(job.id, job.kind, m.Failure(m.ErrorCode.FAILED))
        await own_redis.rpush(keys.replies("resend-bot"), codec.reply_json(answer))
        for _ in range(50):  # the listener takes it, with nobody waiting for it yet
            if not await own_redis.exists(keys.replies("resend-bot")):
                break
            await asyncio.sleep(0.05)
        reply = await client.request(job.resent(30), b"photo", timeout=5)
        assert reply == answer
        assert await own_redis.xlen(keys.JOBS_STREAM) == 0, "not sent a second time"
        other = m.Job.new(m.Recommend(3), chat_id=12, user_id=12, reply_to="resend-bot", timeout=30)
        with pytest.raises(TimeoutError):  # a job with no answer waiting is sent (and, with no worker, waits)
            await client.request(other, b"photo", timeout=0.5)
        assert await own_redis.xlen(keys.JOBS_STREAM) == 1
    finally:
        await client.close()

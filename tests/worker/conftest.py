"""Fixtures for the worker's tests: a colour catalog, a job client, and a factory of workers on the real Redis."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest
from redis.asyncio import Redis

from contract.client import ClientLimits, JobClient
from recommender.catalog import load_catalog
from recommender.index import open_index
from recommender.index_build import build_index
from tests.redis_server import RedisServer
from tests.worker.fakes import ColourExtractor, colour_catalog
from worker.loop import Worker
from worker.settings import WorkerSettings


@pytest.fixture(scope="module")
def colour_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("colour")
    catalog = load_catalog(colour_catalog(folder / "catalog", 40))
    build_index(catalog, ColourExtractor(), folder / "index", progress=False)  # type: ignore[arg-type]
    return folder / "index"


def settings(redis_server: RedisServer, **overrides: object) -> WorkerSettings:
    values: dict[str, object] = {
        "redis_url": redis_server.url,
        "batch_size": 8,
        "batch_wait_ms": 5,
        "claim_idle_ms": 1000,
        "metrics_port": 0,
        "heartbeat_s": 0.5,
        "reload_poll_s": 0.2,
    }
    values.update(overrides)
    return WorkerSettings(**values)  # type: ignore[arg-type]


@pytest.fixture
async def client(redis: Redis) -> AsyncIterator[JobClient]:
    job_client = JobClient(redis, instance="test-bot", limits=ClientLimits(max_queue=1000))
    await job_client.start()
    yield job_client
    await job_client.close()


@pytest.fixture
def make_worker(
    redis: Redis, redis_server: RedisServer, colour_index: Path
) -> Callable[..., tuple[Worker, ColourExtractor]]:
    def factory(*, extractor: ColourExtractor | None = None, index_dir: Path | None = None, **overrides: object):
        model = extractor or ColourExtractor()
        index = open_index(index_dir or colour_index, expected=model.fingerprint, placement="host")
        worker = Worker(
            redis=redis,
            extractor=model,
            index=index,
            options=replace(
                settings(redis_server, **overrides).options(), consumer=f"{socket.gethostname()}-test-{id(model)}"
            ),
            index_dir=index_dir,
        )
        return worker, model

    return factory


def colour_worker(redis: Redis, server: RedisServer, colour_index: Path, name: str) -> Worker:
    """A colour worker on a server the test stops or restarts (``make_worker`` serves the shared one)."""
    model = ColourExtractor()
    return Worker(
        redis=redis,
        extractor=model,
        index=open_index(colour_index, expected=model.fingerprint, placement="host"),
        options=settings(server, consumer=f"{socket.gethostname()}-{name}").options(),
    )

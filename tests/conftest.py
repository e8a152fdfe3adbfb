"""Fixtures shared by every test package: a real Redis server, the shared datasets, small catalogs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer, start_redis

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASETS = Path(os.environ.get("WANDERLENS_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = start_redis(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url)
    await client.flushall()
    yield client
    await client.aclose()


def shared_dataset(name: str) -> Path:
    """A dataset folder from ../shared/datasets, or a skip that says why (it may not be redistributed)."""
    folder = SHARED_DATASETS / name
    if not (folder / "manifest.csv").exists():
        pytest.skip(f"{folder} is absent: the shared evaluation photos are not part of the repository")
    return folder

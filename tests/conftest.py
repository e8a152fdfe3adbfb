"""Fixtures shared by every test package: a real Redis server, the shared datasets, small catalogs."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import get_args

import pytest
from redis.asyncio import Redis

from bench.common import SHARED_DATASETS
from contract.connect import connect
from recommender.ann import IndexKind
from tests.redis_server import RedisServer, start_redis

REPO = Path(__file__).resolve().parent.parent


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


@pytest.fixture
def own_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server for one test that stops it (and perhaps ``restart``s it): the shared one must stay up."""
    server = start_redis(tmp_path / "own-redis")
    yield server
    server.stop()


@pytest.fixture
async def own_redis(own_redis_server: RedisServer) -> AsyncIterator[Redis]:
    """The product's client (``contract.connect``: its retries and timeouts) to ``own_redis_server``."""
    client = connect(own_redis_server.url)
    yield client
    await client.aclose()


def shared_dataset(name: str) -> Path:
    """A dataset folder from ../shared/datasets, or a skip that says why (it may not be redistributed)."""
    folder = SHARED_DATASETS / name
    if not (folder / "manifest.csv").exists():
        pytest.skip(f"{folder} is absent: the shared evaluation photos are not part of the repository")
    return folder


# ------------------------------------------------------------------------------------ the real model and catalog


def _link_travel_photos(folder: Path, source: Path) -> Path:
    """A catalog folder over ../shared's travel photos: symlinks (never copies) plus a catalog.csv."""
    import csv

    folder.mkdir(parents=True, exist_ok=True)
    with (
        (source / "manifest.csv").open(newline="", encoding="utf-8") as file,
        (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as out,
    ):
        writer = csv.writer(out)
        writer.writerow(["id", "image", "name", "city", "country", "lat", "lon", "credit"])
        for row in csv.DictReader(file):
            name = Path(row["path"]).name
            (folder / name).symlink_to(source / row["path"])
            writer.writerow(
                [
                    Path(name).stem,
                    name,
                    row["name"],
                    row["city"],
                    row["country"],
                    row["latitude"],
                    row["longitude"],
                    row["creator"],
                ]
            )
    return folder


def _generated_scenes(folder: Path, count: int = 30) -> Path:
    """Where ../shared is absent: simple drawn landscapes (sky, horizon, sea or hills) with place names."""
    import csv

    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = __import__("numpy").random.default_rng(7)
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "image", "name", "city", "country", "lat", "lon"])
        # Real countries and coordinates spread over three continents, so that the map's tests run here too.
        places = [("Italy", 41.9, 12.5), ("Japan", 35.7, 139.7), ("Peru", -12.0, -77.0)]
        for n in range(count):
            image = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(60, 255, 3)))
            draw = ImageDraw.Draw(image)
            horizon = int(rng.integers(80, 180))
            draw.rectangle([0, horizon, 320, 240], fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
            for _ in range(int(rng.integers(1, 6))):
                x, y = int(rng.integers(0, 300)), int(rng.integers(0, horizon))
                draw.ellipse([x, y, x + 30, y + 30], fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
            image.save(folder / f"scene{n:02d}.jpg", quality=90)
            country, lat, lon = places[n % len(places)]
            at = (lat + float(rng.uniform(-2, 2)), lon + float(rng.uniform(-2, 2)))
            writer.writerow([f"scene{n:02d}", f"scene{n:02d}.jpg", f"Scene {n}", f"Town {n % 9}", country, *at])
    return folder


@pytest.fixture(scope="session")
def travel_catalog(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """../shared's 148 named travel photos when present, else a small generated catalog."""
    source = SHARED_DATASETS / "travel-photos"
    folder = tmp_path_factory.mktemp("travel") / "catalog"
    if (source / "manifest.csv").exists():
        return _link_travel_photos(folder, source)
    return _generated_scenes(folder)


@pytest.fixture(scope="session")
def default_extractor():
    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor

    extractor = Extractor(load_backbone())
    extractor.warm_up()
    return extractor


@pytest.fixture(scope="session")
def travel_index(travel_catalog: Path, default_extractor, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from recommender.catalog import load_catalog
    from recommender.index_build import build_index

    out = tmp_path_factory.mktemp("travel-index") / "index"
    build_index(load_catalog(travel_catalog), default_extractor, out, progress=False, ann=search_kind())
    return out


def search_kind() -> IndexKind:
    """WANDERLENS_TEST_SEARCH=ivfpq (or hnsw) runs the end-to-end tests on an approximate index, built and forced."""
    kind = os.environ.get("WANDERLENS_TEST_SEARCH", "auto")
    if kind not in get_args(IndexKind):
        raise pytest.UsageError(f"WANDERLENS_TEST_SEARCH must be one of {get_args(IndexKind)}. Received: {kind}")
    return kind  # type: ignore[return-value]

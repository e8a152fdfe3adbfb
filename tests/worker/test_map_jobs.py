"""The map's jobs through the real loop and Redis: where a result is, /where, and distance in the ranking."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest

from contract import codec, keys
from contract import messages as m
from contract.client import JobClient
from recommender.catalog import load_catalog
from recommender.index_build import build_index
from tests.worker.fakes import ColourExtractor, catalog_colour, photo_bytes

# Name, country, coordinates (None: the catalog does not say). Colours in catalog order: row n is catalog_colour(n).
PLACES = [
    ("Sydney", "Australia", (-33.87, 151.21)),
    ("Rome", "Italy", (41.90, 12.50)),
    ("Naples", "Italy", (40.85, 14.27)),
    ("Oslo", "Norway", (59.91, 10.75)),
    ("Nowhere", "Italy", None),
    ("Lima", "Peru", (-12.05, -77.04)),
]


@pytest.fixture
def map_worker(make_worker, tmp_path: Path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    with (folder / "catalog.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image", "name", "country", "lat", "lon"])
        for n, (name, country, at) in enumerate(PLACES):
            (folder / f"{n}.jpg").write_bytes(photo_bytes(catalog_colour(n), seed=n))
            writer.writerow([name.lower(), f"{n}.jpg", name, country, *(at if at else ("", ""))])
    build_index(load_catalog(folder), ColourExtractor(), tmp_path / "index", progress=False)  # type: ignore[arg-type]
    worker, _ = make_worker(index_dir=tmp_path / "index")
    return worker


async def ask(client: JobClient, request: m.Request, photo: bytes | None = None, chat: int = 5) -> m.Outcome:
    job = m.Job.new(request, chat_id=chat, user_id=chat, reply_to="test-bot", timeout=10)
    return (await client.request(job, photo, timeout=10)).outcome


async def test_locate_check_region_and_distances(map_worker, client: JobClient, redis) -> None:
    task = asyncio.create_task(map_worker.run())
    try:
        sydney_like = photo_bytes(catalog_colour(0), seed=50)
        album = await ask(client, m.Recommend(6), sydney_like)
        assert isinstance(album, m.Album) and album.items[0].name == "Sydney"
        assert all(item.distance_km is None for item in album.items) and not album.near
        by_name = {item.name: n + 1 for n, item in enumerate(album.items)}

        located = await ask(client, m.Locate(album.page_id, by_name["Rome"]))
        assert isinstance(located, m.Located) and (located.item.lat, located.item.lon) == (41.90, 12.50)
        nowhere = await ask(client, m.Locate(album.page_id, by_name["Nowhere"]))
        assert isinstance(nowhere, m.Located) and nowhere.item.lat is None
        assert await ask(client, m.Locate("nopage", 1)) == m.Failure(m.ErrorCode.UNKNOWN_DESTINATION)

        assert await ask(client, m.CheckRegion("Italien")) == m.RegionFound("Italy", 3)
        assert await ask(client, m.CheckRegion("europe")) == m.RegionFound("Europe", 4)
        assert await ask(client, m.CheckRegion("Narnia")) == m.Failure(m.ErrorCode.UNKNOWN_REGION)
        assert await ask(client, m.CheckRegion("Japan")) == m.Failure(m.ErrorCode.EMPTY_REGION)
        assert await ask(client, m.CheckRegion("within 500 km")) == m.Failure(m.ErrorCode.NEED_LOCATION)
        naples = m.Location(40.85, 14.27)
        assert await ask(client, m.CheckRegion("within 500 km", near=naples)) == m.RegionFound("500 km", 2)

        italy = await ask(client, m.Recommend(5, region="Italy"), sydney_like)
        assert isinstance(italy, m.Album) and italy.region == "Italy"
        assert {item.country for item in italy.items} == {"Italy"} and len(italy.items) == 3

        near_oslo = await ask(client, m.Recommend(6, near=m.Location(59.9, 10.7)), sydney_like)
        assert isinstance(near_oslo, m.Album) and near_oslo.near
        oslo = next(item for item in near_oslo.items if item.name == "Oslo")
        assert oslo.distance_km is not None and oslo.distance_km < 10
        assert next(item for item in near_oslo.items if item.name == "Nowhere").distance_km is not None
        assert [item.name for item in near_oslo.items].index("Oslo") < by_name["Oslo"] - 1  # moved up

        # /forget deletes the shared location along with the rest.
        await redis.set(keys.user_location(5), codec.location_json(naples))
        assert isinstance(await ask(client, m.Forget()), m.Forgotten)
        assert not await redis.exists(keys.user_location(5))
    finally:
        map_worker.stop()
        await asyncio.wait_for(task, 10)

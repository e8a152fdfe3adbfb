"""Building a catalog folder from the stand-in: what is written, what is left out and why, and resuming."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from opendata.build import BuildOptions, build_catalog
from opendata.errors import RateLimited
from opendata.report import DOWNLOAD_FAILED, NO_IMAGE, NOT_AN_IMAGE, NOT_FREE, REPORT_FILE, TOO_SMALL
from opendata.state import STATE_FILE
from recommender.catalog import load_catalog
from tests.opendata.standin import FakePlace, Fault, StandIn


def read_rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "catalog.csv").open(newline="", encoding="utf-8") as file:
        return list(csv.DictReader(file))


def test_a_build_writes_photos_and_a_catalog_the_recommender_reads(standin: StandIn, client, options) -> None:
    report = build_catalog(options, client)
    assert (report.found, report.written, report.downloaded, report.skipped) == (12, 12, 12, [])

    catalog = load_catalog(options.out)
    assert catalog.problems == ()  # the extra columns (name:de, source_url, ...) are accepted as they are
    by_id = {d.id: d for d in catalog.destinations}
    for fake in standin.places:
        destination = by_id[fake.qid]
        assert destination.name == fake.labels["en"]
        assert (destination.lat, destination.lon) == pytest.approx((fake.lat, fake.lon))
        assert destination.credit == f"{fake.file.author}, CC BY-SA 4.0"
        assert destination.licence == "CC BY-SA 4.0"
        assert (destination.city, destination.country) == (fake.city, "Italy")
        assert destination.tags == ("world-heritage",)
        with Image.open(catalog.image_path(destination)) as photo:
            assert photo.format == "JPEG" and photo.size == (500, 375)
    # The best-known place first, as the query ordered them.
    assert [d.id for d in catalog.destinations] == [p.qid for p in standin.places]

    rows = read_rows(options.out)
    first = rows[0]
    assert (first["name:de"], first["name:fr"], first["description:de"]) == (
        "Kolosseum",
        "Colisée",
        "Reiseziel Nummer 0",
    )
    assert first["wikidata"] == "https://www.wikidata.org/wiki/Q1000"
    assert first["source_url"].startswith("https://commons.wikimedia.org/wiki/File:Colosseum_view_0.jpg")
    assert first["licence_url"] == "https://creativecommons.org/licenses/by-sa/4.0"
    assert "12 destinations written" in (options.out / REPORT_FILE).read_text()


def test_free_licences_only_and_a_non_free_file_is_never_downloaded(
    standin: StandIn, places: list[FakePlace], client, options
) -> None:
    places[1].file.non_free = True
    places[2].file.licence = "Fair use"
    places[3].file.licence = "CC BY-NC-SA 2.0"
    places[4].file.licence = "CC0"
    report = build_catalog(options, client)
    refused = {s.qid: s for s in report.skipped}
    assert set(refused) == {places[1].qid, places[2].qid, places[3].qid}
    assert all(s.reason == NOT_FREE for s in refused.values())
    assert "Fair use" in refused[places[2].qid].detail
    downloaded = set(standin.thumb_files())
    assert not downloaded & {places[n].file.name for n in (1, 2, 3)}  # the stand-in never saw them asked for
    assert places[4].file.name in downloaded
    assert not (options.out / "photos" / f"{places[1].qid}.jpg").exists()
    assert report.written == 9 and {r["id"] for r in read_rows(options.out)}.isdisjoint(refused)


def test_each_unusable_photo_is_skipped_with_its_reason(
    standin: StandIn, places: list[FakePlace], client, options
) -> None:
    places[0].file.body = "html"  # an error page where the image should be
    places[1].file.mime = "video/webm"
    places[2].file.width, places[2].file.height = 300, 200  # too small, and Commons says so
    places[3].file.served_size = (500, 120)  # Commons' sizes are wrong: caught after download
    places[4].file.exists = False  # P18 names a file Commons no longer has
    places[5].file.name = "Deleted thumb.jpg"  # listed, but its thumbnail is gone
    standin.fail("thumb:Deleted thumb.jpg", Fault(status=404))
    places[6].file.body = "png"  # a PNG thumbnail is fine: converted to JPEG
    report = build_catalog(options, client)

    reasons = {s.qid: s.reason for s in report.skipped}
    assert reasons == {
        places[0].qid: NOT_AN_IMAGE,
        places[1].qid: NOT_AN_IMAGE,
        places[2].qid: TOO_SMALL,
        places[3].qid: TOO_SMALL,
        places[4].qid: NO_IMAGE,
        places[5].qid: DOWNLOAD_FAILED,
    }
    asked = standin.thumb_files()
    assert places[1].file.name not in asked and places[2].file.name not in asked  # judged from the metadata
    assert places[0].file.name in asked and places[3].file.name in asked  # judged from the bytes
    with Image.open(options.out / "photos" / f"{places[6].qid}.jpg") as photo:
        assert photo.format == "JPEG"
    text = (options.out / REPORT_FILE).read_text()
    for reason in (NOT_AN_IMAGE, TOO_SMALL, NO_IMAGE, DOWNLOAD_FAILED):
        assert reason in text
    assert places[4].qid in text and places[4].labels["en"] in text
    assert report.written == 6 and len(load_catalog(options.out)) == 6


def test_a_failing_thumbnail_is_retried_then_fetched(standin: StandIn, places, client, options, sleeps) -> None:
    standin.fail(f"thumb:{places[0].file.name}", Fault(status=503), Fault(status=429, retry_after="4"))
    standin.fail("sparql", Fault(status=503))
    standin.fail("commons", Fault(body=b'{"batchcomplete": tr'))
    report = build_catalog(options, client)
    assert report.written == 12 and report.skipped == []
    assert sleeps == [1.0, 1.0, 1.0, 4.0]  # sparql, commons, then the thumbnail's back-off and Retry-After


def test_a_thumbnail_that_keeps_failing_is_left_out_and_the_rest_go_on(standin, places, make_client, options) -> None:
    standin.fail(f"thumb:{places[2].file.name}", *[Fault(status=503)] * 3)
    report = build_catalog(options, make_client(tries=3))
    assert [(s.qid, s.reason) for s in report.skipped] == [(places[2].qid, DOWNLOAD_FAILED)]
    assert report.written == 11


def test_a_second_run_fetches_nothing_again(standin: StandIn, client, options) -> None:
    build_catalog(options, client)
    first_thumbs = len(standin.requests("thumb"))
    standin.seen.clear()
    report = build_catalog(options, client)
    assert (report.written, report.reused, report.downloaded) == (12, 12, 0)
    assert standin.requests("thumb") == [] and standin.requests("commons") == []
    assert first_thumbs == 12
    assert len(load_catalog(options.out)) == 12


def test_a_corrupt_or_missing_photo_is_fetched_again(standin: StandIn, places, client, options) -> None:
    build_catalog(options, client)
    photos = options.out / "photos"
    truncated = photos / f"{places[3].qid}.jpg"
    truncated.write_bytes(truncated.read_bytes()[:500])  # a download cut short by an earlier crash
    (photos / f"{places[7].qid}.jpg").unlink()
    standin.seen.clear()
    report = build_catalog(options, client)
    assert sorted(standin.thumb_files()) == sorted([places[3].file.name, places[7].file.name])
    assert (report.reused, report.downloaded, report.written) == (10, 2, 12)
    with Image.open(truncated) as photo:
        photo.load()
    state = json.loads((options.out / STATE_FILE).read_text())
    assert set(state["photos"]) == {p.qid for p in places}


def test_a_changed_photo_on_wikidata_is_fetched(standin: StandIn, places, client, options) -> None:
    build_catalog(options, client)
    places[0].file.name = "Colosseum at night.jpg"
    places[0].file.seed = 999
    standin.seen.clear()
    report = build_catalog(options, client)
    assert standin.thumb_files() == ["Colosseum at night.jpg"] and report.downloaded == 1


def test_a_rate_limit_stops_the_run_and_the_next_run_resumes(
    standin: StandIn, places, make_client, options: BuildOptions
) -> None:
    standin.fail(f"thumb:{places[5].file.name}", *[Fault(status=429, retry_after="1")] * 3)
    with pytest.raises(RateLimited):
        build_catalog(options, make_client(tries=3))
    assert not (options.out / "catalog.csv").exists()
    state = json.loads((options.out / STATE_FILE).read_text())
    assert set(state["photos"]) == {p.qid for p in places[:5]}  # what was fetched before the stop is kept

    standin.seen.clear()
    report = build_catalog(options, make_client(tries=3))
    assert (report.reused, report.downloaded, report.written) == (5, 7, 12)
    assert sorted(standin.thumb_files()) == sorted(p.file.name for p in places[5:])


def test_the_limit_and_languages_reach_the_catalog(standin: StandIn, client, options: BuildOptions) -> None:
    options = replace(options, query=replace(options.query, limit=3, languages=("de", "en")))
    build_catalog(options, client)
    rows = read_rows(options.out)
    assert [r["name"] for r in rows] == ["Kolosseum", "Bleder See", "Mont-Saint-Michel"]
    assert "name:fr" not in rows[0] and rows[0]["name:en"] == "Colosseum"

"""Tests for recommender.index: build, reuse, problems, versions on disk, open, search; one run with the real model.

Most tests use the colour stand-in extractor from tests/worker/fakes.py, so a build takes milliseconds.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from recommender.catalog import CatalogProblem, Destination, load_catalog
from recommender.fingerprint import FingerprintMismatch
from recommender.images import content_hash, load_for_model
from recommender.index import (
    CURRENT_FILE,
    INDEX_FORMAT,
    KEEP_VERSIONS,
    VERSIONS_DIR,
    DestinationIndex,
    IndexManifest,
    IndexUnavailable,
    current_version,
    open_index,
    read_manifest,
)
from recommender.index_build import build_index
from recommender.refine import DEFAULT_REFINE, RefineOptions, augment_database
from tests.conftest import shared_dataset
from tests.worker.fakes import ColourExtractor, colour_catalog, photo_bytes


def ranked(index, query, k: int, *, exclude=()) -> list[tuple[Destination, float]]:
    """The index's ranking of one query (in its own space), best first, as (destination, score)."""
    return [(index.destinations[m.position], m.score) for m in index.rank_positions(query, k, exclude=exclude)]


def build(
    catalog_dir: Path, out: Path, extractor: ColourExtractor | None = None, refine: RefineOptions = DEFAULT_REFINE
):
    return build_index(load_catalog(catalog_dir), extractor or ColourExtractor(), out, progress=False, refine=refine)


def published(out: Path) -> list[str]:
    return sorted(p.name for p in (out / VERSIONS_DIR).iterdir() if not p.name.startswith("."))


def recolour(catalog_dir: Path, name: str, rgb: tuple[int, int, int]) -> None:
    (catalog_dir / name).write_bytes(photo_bytes(rgb, seed=99))


def append_row(catalog_dir: Path, row: list[str]) -> None:
    with (catalog_dir / "catalog.csv").open("a", newline="") as file:
        csv.writer(file).writerow(row)


def query_vector(extractor, path: Path) -> np.ndarray:
    return extractor.embed(extractor.preprocess(path)[None]).vectors


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    return colour_catalog(tmp_path / "catalog", 12)


# --- build and open -------------------------------------------------------------------------------------------


def test_build_then_open(catalog_dir, tmp_path):
    out = tmp_path / "index"
    extractor = ColourExtractor()
    catalog = load_catalog(catalog_dir)

    report = build_index(catalog, extractor, out, progress=False)

    manifest = report.manifest
    assert (manifest.format, manifest.count, manifest.extracted, manifest.reused) == (INDEX_FORMAT, 12, 12, 0)
    assert manifest.fingerprint == extractor.fingerprint
    assert manifest.catalog == str(catalog_dir)
    assert manifest.problems == () and report.problems == ()
    assert report.path == out / VERSIONS_DIR / manifest.version
    assert (out / CURRENT_FILE).read_text() == manifest.version + "\n"
    assert current_version(out) == manifest.version
    assert read_manifest(out) == manifest
    assert IndexManifest.from_dict(json.loads((report.path / "manifest.json").read_text())) == manifest
    assert sorted(p.name for p in report.path.iterdir()) == [
        "destinations.jsonl",
        "duplicates.npy",
        "manifest.json",
        "raw.npy",
        "vectors.npy",
    ]  # fmt: skip  (no whitening.npz: 12 photos are too few to learn one from)
    assert sum(extractor.batch_sizes) == 12

    index = open_index(out, expected=extractor.fingerprint)

    assert isinstance(index.vectors, np.memmap)
    assert index.vectors.dtype == np.float32 and index.vectors.shape == (12, 125)
    assert index.destinations == catalog.destinations
    assert (index.version, index.path, index.fingerprint) == (manifest.version, report.path, extractor.fingerprint)
    assert index.content_hashes == tuple(content_hash(catalog.image_path(d).read_bytes()) for d in catalog.destinations)
    images = np.stack([load_for_model(catalog.image_path(d), 32) for d in catalog.destinations])
    np.testing.assert_allclose(index.vectors, ColourExtractor().embed(images).vectors, atol=1e-6)
    assert len(index) == 12
    assert index.get("p0003") == catalog.destinations[3] and index.get("nope") is None
    assert index.position("p0003") == 3
    np.testing.assert_array_equal(index.vectors_of(["p0005", "nope", "p0001"]), index.vectors[[5, 1]])
    assert index.vectors_of(["nope"]).shape == (0, 125)
    assert open_index(out).destinations == index.destinations  # no fingerprint check asked for


def test_a_second_build_reuses_every_vector(catalog_dir, tmp_path):
    out = tmp_path / "index"
    first = build(catalog_dir, out)

    extractor = ColourExtractor()
    second = build(catalog_dir, out, extractor)

    assert (second.manifest.count, second.manifest.reused, second.manifest.extracted) == (12, 12, 0)
    assert extractor.forward_passes == 0
    # Nothing changed, so nothing is published: workers have nothing to reload.
    assert second.path == first.path and current_version(out) == first.manifest.version
    assert published(out) == [first.manifest.version]


def test_a_changed_photo_is_extracted_again(catalog_dir, tmp_path):
    out = tmp_path / "index"
    first = build(catalog_dir, out)
    before = open_index(out)
    recolour(catalog_dir, "p0004.jpg", (250, 250, 10))

    extractor = ColourExtractor()
    second = build(catalog_dir, out, extractor)

    assert (second.manifest.count, second.manifest.reused, second.manifest.extracted) == (12, 11, 1)
    assert extractor.batch_sizes == [1]
    assert second.manifest.version != first.manifest.version
    after = open_index(out)
    assert after.version == second.manifest.version
    changed = [i for i in range(12) if not np.array_equal(before.vectors[i], after.vectors[i])]
    assert changed == [4]
    assert after.content_hashes[4] != before.content_hashes[4]

    # A new destination whose photo is a copy of one already indexed reuses that photo's vector.
    shutil.copy(catalog_dir / "p0007.jpg", catalog_dir / "copy.jpg")
    append_row(catalog_dir, ["copy", "copy.jpg", "Copy", "", ""])
    extractor = ColourExtractor()
    third = build(catalog_dir, out, extractor)
    assert (third.manifest.count, third.manifest.reused, third.manifest.extracted) == (13, 13, 0)
    assert extractor.forward_passes == 0


def test_another_backbone_reuses_nothing(catalog_dir, tmp_path):
    out = tmp_path / "index"
    build(catalog_dir, out)

    class OtherColours(ColourExtractor):
        @property
        def fingerprint(self):
            return dataclasses.replace(super().fingerprint, weights_sha256="retrained")

    other = OtherColours()
    report = build(catalog_dir, out, other)

    assert (report.manifest.reused, report.manifest.extracted) == (0, 12)
    assert open_index(out, expected=other.fingerprint).fingerprint.weights_sha256 == "retrained"


def test_unreadable_photos_become_problems_with_their_line(catalog_dir, tmp_path):
    (catalog_dir / "p0003.jpg").write_bytes(b"this is not a photo")
    catalog = load_catalog(catalog_dir)
    (catalog_dir / "p0006.jpg").unlink()  # vanishes between reading the catalog and building

    report = build_index(catalog, ColourExtractor(), tmp_path / "index", progress=False)

    assert report.manifest.count == 10
    assert sorted((p.line, p.item) for p in report.problems) == [(5, "p0003"), (8, "p0006")]
    by_item = {p.item: p for p in report.problems}
    assert by_item["p0003"].message.startswith("unreadable image")
    assert by_item["p0006"].message == "cannot read file: No such file or directory"
    assert report.manifest.problems == tuple(str(p) for p in report.problems)
    assert any(p.startswith("catalog.csv line 5: p0003: unreadable image") for p in report.manifest.problems)
    index = open_index(tmp_path / "index")
    assert index.get("p0003") is None and index.get("p0006") is None and len(index) == 10


def test_catalog_problems_are_carried_into_the_manifest(catalog_dir, tmp_path):
    append_row(catalog_dir, ["ghost", "ghost.jpg", "Ghost", "", ""])
    report = build(catalog_dir, tmp_path / "index")
    assert report.problems == (CatalogProblem(14, "ghost", "image file not found: ghost.jpg"),)
    assert report.manifest.problems == ("catalog.csv line 14: ghost: image file not found: ghost.jpg",)


def test_nothing_readable_is_an_error(tmp_path):
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"junk")
    (folder / "b.jpg").write_bytes(b"more junk")
    with pytest.raises(ValueError, match=r"no photo of the catalog could be fingerprinted\. Received: 2 problems"):
        build(folder, tmp_path / "index")
    assert current_version(tmp_path / "index") is None


def test_another_fingerprint_is_refused(catalog_dir, tmp_path):
    out = tmp_path / "index"
    built = build(catalog_dir, out).manifest.fingerprint
    other = dataclasses.replace(built, layer="avg_pool", dim=1280)

    with pytest.raises(FingerprintMismatch) as caught:
        open_index(out, expected=other)

    message = str(caught.value)
    assert "(they differ in: layer, dim)" in message
    assert "Rebuild the index with `wanderlens index`" in message
    assert built.describe() in message and other.describe() in message
    assert message.endswith(f"Received: index={built.key} extractor={other.key}")


def test_no_index(tmp_path):
    with pytest.raises(IndexUnavailable, match=r"no index found in .*: build one with `wanderlens index CATALOG_DIR"):
        open_index(tmp_path / "nothing")
    assert read_manifest(tmp_path / "nothing") is None

    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / CURRENT_FILE).write_text("\n")
    with pytest.raises(IndexUnavailable, match="no index found"):
        open_index(tmp_path / "empty")

    (tmp_path / "dangling").mkdir()
    (tmp_path / "dangling" / CURRENT_FILE).write_text("20240101T000000000000Z\n")
    with pytest.raises(IndexUnavailable, match="index version 20240101T000000000000Z is unreadable; rebuild it"):
        open_index(tmp_path / "dangling")


def test_another_format_is_refused(catalog_dir, tmp_path):
    out = tmp_path / "index"
    path = build(catalog_dir, out).path
    manifest = json.loads((path / "manifest.json").read_text())
    (path / "manifest.json").write_text(json.dumps({**manifest, "format": INDEX_FORMAT + 1}))
    with pytest.raises(IndexUnavailable, match=f"index format {INDEX_FORMAT + 1} is not supported; rebuild it"):
        open_index(out)


def test_vectors_and_destinations_must_pair_up():
    fingerprint = ColourExtractor().fingerprint
    with pytest.raises(ValueError, match=r"one vector per destination expected\. Received: 0 destinations, 2 vectors"):
        DestinationIndex(fingerprint, (), np.zeros((2, 125), np.float32), ())


# --- versions on disk ------------------------------------------------------------------------------------------


def test_current_is_replaced_atomically_and_old_versions_pruned(catalog_dir, tmp_path):
    out = tmp_path / "index"
    versions = [build(catalog_dir, out).manifest.version]
    reader = open_index(out)  # a worker serving the first version while new ones appear
    query = reader.vectors[2:3].copy()
    for n in range(KEEP_VERSIONS + 1):
        with (out / CURRENT_FILE).open() as held:
            recolour(catalog_dir, "p0000.jpg", (20 * n, 100, 200))
            versions.append(build(catalog_dir, out).manifest.version)
            # The open file still holds the old name: CURRENT was replaced by a rename, never rewritten in place.
            assert held.read().strip() == versions[-2]
        assert current_version(out) == versions[-1]
        assert published(out) == versions[-KEEP_VERSIONS:]

    assert versions == sorted(versions) and len(set(versions)) == len(versions)
    assert published(out) == versions[-KEEP_VERSIONS:]
    assert sorted(p.name for p in out.iterdir()) == [CURRENT_FILE, VERSIONS_DIR]  # no .CURRENT.tmp left
    assert ranked(reader, query, 1)[0][0].id == "p0002"  # memory-mapped files outlive their folder
    assert open_index(out).version == versions[-1]


def test_a_killed_builds_staging_folder_is_no_version(catalog_dir, tmp_path):
    out = tmp_path / "index"
    first = build(catalog_dir, out)
    versions = out / VERSIONS_DIR
    # What a build killed after writing everything, but before renaming its folder, leaves behind.
    stale = versions / ".99991231T235959999999Z-k1ll3d"
    young = versions / ".99991231T235959999999Z-running"
    for folder in (stale, young):
        shutil.copytree(first.path, folder)
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))

    assert open_index(out).version == first.manifest.version
    recolour(catalog_dir, "p0001.jpg", (5, 5, 5))
    second = build(catalog_dir, out)

    assert current_version(out) == second.manifest.version
    assert published(out) == [first.manifest.version, second.manifest.version]
    assert not stale.exists()  # old leftovers are cleared
    assert young.exists()  # a build that may still be running is left alone
    for n in range(KEEP_VERSIONS):
        recolour(catalog_dir, "p0001.jpg", (5, 5, 60 * n + 60))
        build(catalog_dir, out)
    assert len(published(out)) == KEEP_VERSIONS  # the staging folder never counted as one of them
    assert young.exists()


def test_an_interrupted_build_leaves_the_current_version(catalog_dir, tmp_path, monkeypatch):
    import recommender.index_build as index_build

    out = tmp_path / "index"
    first = build(catalog_dir, out)
    recolour(catalog_dir, "p0001.jpg", (5, 5, 5))

    def interrupted(*args, **kwargs):  # halfway through writing the new version
        raise KeyboardInterrupt

    monkeypatch.setattr(index_build, "refine_catalog", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(catalog_dir, out)

    assert current_version(out) == first.manifest.version
    assert sorted(p.name for p in (out / VERSIONS_DIR).iterdir()) == [first.manifest.version]
    assert len(open_index(out)) == 12


# --- search ------------------------------------------------------------------------------------------------------


def test_ranking_orders_by_score_and_leaves_out_what_is_excluded(tmp_path):
    catalog_dir = colour_catalog(tmp_path / "catalog", 40)
    out = tmp_path / "index"
    build(catalog_dir, out, refine=RefineOptions(whitening="partial"))
    index = open_index(out, placement="host")  # exact scores to compare with numpy's
    queries = np.stack([index.vectors[5], index.vectors[17] * 0.5 + index.vectors[30] * 0.5])

    for query in queries:
        full = index.rank_positions(query, 40)
        assert len(full) == 40 and len({m.position for m in full}) == 40
        scores = [m.score for m in full]
        assert scores == sorted(scores, reverse=True)
        exact = np.asarray(index.vectors) @ query
        np.testing.assert_allclose(scores, exact[[m.position for m in full]], atol=1e-5)
        assert scores[0] == pytest.approx(exact.max(), abs=1e-5)
    first = ranked(index, queries[0], 40)
    assert first[0][0].id == "p0005" and first[0][1] == pytest.approx(1.0, abs=1e-5)

    excluded = ranked(index, queries[0], 5, exclude={"p0005", "p0000", "unknown"})
    assert [d.id for d, _ in excluded] == [d.id for d, _ in first if d.id not in {"p0005", "p0000"}][:5]
    np.testing.assert_allclose(index.scores(queries[0]), queries[:1] @ np.asarray(index.vectors).T, atol=1e-6)


def test_near_duplicate_photos_are_one_result(catalog_dir, tmp_path):
    shutil.copy(catalog_dir / "p0002.jpg", catalog_dir / "twin.jpg")
    append_row(catalog_dir, ["twin", "twin.jpg", "Twin of Place 2", "", ""])
    build(catalog_dir, tmp_path / "index")
    index = open_index(tmp_path / "index")
    query = index.vectors_of(["p0002"])

    assert len(index) == 13 and index.get("twin") is not None
    assert index.duplicate_groups[index.position("twin")] == index.duplicate_groups[index.position("p0002")]
    assert len(set(index.duplicate_groups.tolist())) == 12

    collapsed = [d.id for d, _ in ranked(index, query, 13)]
    assert collapsed[0] in ("p0002", "twin") and len(collapsed) == 12
    assert not {"p0002", "twin"} <= set(collapsed)
    everything = [index.destinations[p].id for p in np.argsort(-index.scores(query)[0])]
    assert set(everything[:2]) == {"p0002", "twin"} and len(everything) == 13
    other_twin = ranked(index, query, 3, exclude={collapsed[0]})[0][0].id
    assert other_twin in ("p0002", "twin") and other_twin != collapsed[0]
    positions = [m.position for m in index.rank_positions(query, 13)]
    assert len(positions) == 12 and len({int(index.duplicate_groups[p]) for p in positions}) == 12


# --- the real model --------------------------------------------------------------------------------------------


class CountingExtractor:
    """The real extractor, counting the photos it is asked to fingerprint."""

    def __init__(self, extractor) -> None:
        self.extractor = extractor
        self.fingerprint = extractor.fingerprint
        self.input_size = extractor.input_size
        self.options = extractor.options
        self.preprocess = extractor.preprocess
        self.photos = 0

    def embed(self, images):
        self.photos += len(images)
        return self.extractor.embed(images)


def test_real_photos(request, tmp_path):
    shared_dataset("travel-photos")  # the generated stand-in catalog is not what this test is about
    travel_catalog, travel_index, default_extractor = (
        request.getfixturevalue(name) for name in ("travel_catalog", "travel_index", "default_extractor")
    )
    out = tmp_path / "index"
    shutil.copytree(travel_index, out)
    catalog = load_catalog(travel_catalog)
    assert len(catalog) == 148 and catalog.problems == ()
    assert read_manifest(out).count == 148  # built by the session fixture, from scratch

    counting = CountingExtractor(default_extractor)
    again = build_index(catalog, counting, out, progress=False)

    assert (again.manifest.count, again.manifest.reused, again.manifest.extracted) == (148, 148, 0)
    assert counting.photos == 0
    index = open_index(out, expected=default_extractor.fingerprint)
    for destination in (catalog.destinations[0], catalog.destinations[77]):
        query = index.prepare_queries(query_vector(default_extractor, catalog.image_path(destination)))
        best = ranked(index, query, 3)
        assert best[0][0] == destination
        assert best[0][1] == pytest.approx(1.0, abs=2e-3)  # on a GPU the product may run in TF32
        assert best[1][0] != destination and best[1][1] < best[0][1] - 0.05


def test_whitened_index_ranks_in_its_own_space_but_reports_plain_photo_similarity(tmp_path):
    catalog_dir = colour_catalog(tmp_path / "catalog", 40)
    build(catalog_dir, tmp_path / "index", refine=RefineOptions(whitening="partial"))
    index = open_index(tmp_path / "index", placement="host")
    assert index.whitening is not None and index.refine.whitening == "partial"
    raw = np.asarray(index.raw_vectors)
    assert not np.allclose(raw, np.asarray(index.vectors), atol=1e-3)  # the searched vectors are whitened
    query = raw[7]
    best = ranked(index, index.prepare_queries(query), 3)
    assert best[0][0].id == "p0007" and best[0][1] == pytest.approx(1.0, abs=1e-5)
    positions = [index.position(d.id) for d, _ in best]
    np.testing.assert_allclose(index.photo_similarity(query, positions), raw[positions] @ query, atol=1e-6)
    assert index.photo_similarity(query, positions)[0] == pytest.approx(1.0, abs=1e-5)


def test_the_default_index_moves_each_photo_toward_its_neighbours_and_a_catalog_photo_still_finds_itself(tmp_path):
    catalog_dir = colour_catalog(tmp_path / "catalog", 40)
    build(catalog_dir, tmp_path / "index")
    index = open_index(tmp_path / "index", placement="host")
    assert index.refine == DEFAULT_REFINE and DEFAULT_REFINE.dba == 5
    raw = np.asarray(index.raw_vectors)
    whitened = index.prepare_queries(raw)

    np.testing.assert_allclose(index.vectors, augment_database(whitened, 5, DEFAULT_REFINE.alpha), atol=1e-6)
    assert not np.allclose(index.vectors, whitened, atol=1e-3)
    for position in (0, 7, 39):
        (best, _), *_ = ranked(index, whitened[position], 1)
        assert best.id == f"p{position:04d}"


def test_a_catalog_too_small_to_learn_from_is_searched_as_it_is(tmp_path):
    catalog_dir = colour_catalog(tmp_path / "catalog", 12)
    build(catalog_dir, tmp_path / "index")
    index = open_index(tmp_path / "index", placement="host")
    assert index.whitening is None
    np.testing.assert_allclose(index.vectors, np.asarray(index.raw_vectors), atol=1e-6)


def test_an_index_whose_whitening_keeps_fewer_directions_opens_and_finds_its_photos(tmp_path):
    catalog_dir = colour_catalog(tmp_path / "catalog", 40)
    extractor = ColourExtractor()
    build(catalog_dir, tmp_path / "index", extractor, RefineOptions(whitening="partial", dims=3))

    index = open_index(tmp_path / "index", expected=extractor.fingerprint)
    assert index.vectors.shape == (40, 3) and index.fingerprint.dim > 3
    for photo in ("p0000.jpg", "p0017.jpg", "p0039.jpg"):
        query = extractor.embed(extractor.preprocess(catalog_dir / photo)[None]).vectors
        (best, _), *_ = ranked(index, index.prepare_queries(query), 3)
        assert best.image == photo

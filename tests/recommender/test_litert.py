"""The LiteRT runtimes (recommender.litert): vectors and hints against TensorFlow's, the conversion cache, the
runtime in the fingerprint, and the bench's --runtime path.

The real efficientnet-lite0 with the default extraction is converted once per runtime for the whole session
(fp32 in a few seconds, int8 with its calibration in about fifteen); photos are ../shared's travel photos, or
generated scenes where those are absent (neither is an evaluation set).
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from recommender import litert
from recommender.backbones.colour import colour_histogram_numpy
from recommender.catalog import load_catalog
from recommender.errors import BadInput
from recommender.extractor import Extractor
from recommender.fingerprint import BackboneFingerprint, FingerprintMismatch
from recommender.images import load_for_model
from recommender.index import open_index
from recommender.index_build import build_index
from tests.conftest import SHARED_DATASETS, _generated_scenes

PHOTOS = 24


@pytest.fixture(scope="session")
def lite_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("litert-cache")


@pytest.fixture(scope="session")
def photos(travel_catalog: Path) -> np.ndarray:
    """../shared's travel photos; where they are absent, generated outdoor scenes with a seed other than the int8
    calibration's. The test catalog's own stand-ins (flat drawn shapes) are nothing like photos, and int8's
    agreement with float32 on them says nothing about photos."""
    if not (SHARED_DATASETS / "travel-photos" / "manifest.csv").exists():
        return np.stack([scene[0].astype(np.uint8) for scene in litert.calibration_scenes(PHOTOS, 224, seed=1)])
    paths = sorted(p for p in travel_catalog.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:PHOTOS]
    return np.stack([load_for_model(p, 224, trim=True) for p in paths])


@pytest.fixture(scope="session")
def lite(default_extractor: Extractor, lite_cache: Path) -> Callable[[str], Extractor]:
    """A LiteRT extractor of the session's default backbone per runtime, converted once into ``lite_cache``."""
    made: dict[str, Extractor] = {}

    def get(runtime: str) -> Extractor:
        if runtime not in made:
            made[runtime] = Extractor(default_extractor.backbone, buckets=(1, 8), runtime=runtime, cache_dir=lite_cache)
        return made[runtime]

    return get


@pytest.fixture(scope="session")
def reference(default_extractor: Extractor, photos: np.ndarray):
    return default_extractor.embed(photos)


def _model(cache: Path, runtime: str) -> Path:
    """The cached model of ``tflite-<runtime>`` (the key's hex digits right after the runtime)."""
    named = re.compile(rf"-tflite-{runtime}-[0-9a-f]+\.tflite$")
    (path,) = (p for p in (cache / "litert").glob("*.tflite") if named.search(p.name))
    return path


def _float_names(path: Path) -> set[str]:
    interpreter = litert.interpreter_class()
    assert interpreter is not None
    return {t["name"] for t in interpreter(model_path=str(path)).get_tensor_details() if t["dtype"] == np.float32}


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1)


def _top1_agreement(hints: list, reference_hints: list) -> float:
    return float(np.mean([h[0].label == r[0].label for h, r in zip(hints, reference_hints, strict=True)]))


def test_colour_histogram_in_numpy_is_the_keras_layers(default_extractor: Extractor, photos: np.ndarray) -> None:
    from keras import ops

    layer = default_extractor.backbone.model.get_layer("colour")
    expected = ops.convert_to_numpy(layer(photos.astype(np.float32)))
    np.testing.assert_allclose(colour_histogram_numpy(photos), expected, atol=1e-6)


def test_fp32_gives_tensorflows_vectors_and_hints(lite, photos: np.ndarray, reference) -> None:
    embedded = lite("tflite-fp32").embed(photos)
    assert embedded.vectors.shape == reference.vectors.shape
    assert embedded.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embedded.vectors, axis=1), 1.0, atol=1e-5)
    assert _cosines(embedded.vectors, reference.vectors).min() > 0.999  # measured 0.99995
    assert _top1_agreement(embedded.hints, reference.hints) == 1.0
    for hints, expected in zip(embedded.hints, reference.hints, strict=True):
        assert len(hints) == len(expected) == 3
        assert abs(hints[0].probability - expected[0].probability) < 0.01


def test_int8_is_quantised_and_close(lite, lite_cache: Path, photos: np.ndarray, reference) -> None:
    int8, fp32 = lite("tflite-int8"), lite("tflite-fp32")
    embedded = int8.embed(photos)
    cosines = _cosines(embedded.vectors, reference.vectors)
    assert cosines.mean() > 0.98  # measured 0.994 on the travel photos, 0.985 on the generated scenes
    assert cosines.min() > 0.9  # measured 0.936 and 0.945
    assert _top1_agreement(embedded.hints, reference.hints) >= 0.75
    # Really quantised: its vectors are not fp32's, and its model is about a quarter of the size.
    assert np.abs(embedded.vectors - fp32.embed(photos).vectors).max() > 1e-3
    assert _model(lite_cache, "int8").stat().st_size < 0.4 * _model(lite_cache, "fp32").stat().st_size


def test_float_stem_keeps_the_stem_float_and_is_closer(lite, lite_cache: Path, photos: np.ndarray, reference) -> None:
    from recommender.litert_mixed import stem_tensors

    stem, int8 = lite("tflite-int8-float-stem"), lite("tflite-int8")
    stem_cosines = _cosines(stem.embed(photos).vectors, reference.vectors)
    int8_cosines = _cosines(int8.embed(photos).vectors, reference.vectors)
    assert stem_cosines.mean() > 0.99  # measured 0.9959 on the 148 travel photos, 0.9933 on the generated scenes
    assert stem_cosines.mean() > int8_cosines.mean() + 0.001  # there 0.9959 against 0.9917
    assert stem.fingerprint.runtime == "tflite-int8-float-stem" and stem.fingerprint != int8.fingerprint

    # Kept float: the input scaling, the stem and block 0, and nothing after them.
    kept = stem_tensors(_model(lite_cache, "int8").read_bytes(), "efficientnet-lite0")
    layers = {name.split(";")[0].split("/")[1] for name in kept}
    assert {"scale_1", "stem_relu_1", "block0_dw_relu_1", "block0_project_1"} <= layers
    assert all(layer.startswith(("scale", "stem", "block0_")) for layer in layers)
    floats = _float_names(_model(lite_cache, "int8-float-stem"))
    assert set(kept) <= floats
    assert not any("/block1" in name or "/block2" in name or "/head" in name for name in floats)
    # The int8 graph's float tensors are only its edges (input, outputs); the stem adds its own.
    assert len(floats) >= len(_float_names(_model(lite_cache, "int8"))) + len(kept)


def test_float_stem_refuses_a_network_without_a_stem(tmp_path: Path) -> None:
    import keras
    import tensorflow as tf

    from recommender.litert_mixed import stem_tensors

    inputs = keras.Input((32, 32, 3), name="image")
    outputs = keras.layers.Conv2D(4, 3, name="conv")(keras.layers.Conv2D(4, 3, name="first")(inputs))
    keras.Model(inputs, outputs, name="plain").export(tmp_path / "plain", format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "plain"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    scenes = [[rng.uniform(0, 1, (1, 32, 32, 3)).astype(np.float32)] for _ in range(4)]
    converter.representative_dataset = lambda: iter(scenes)
    with pytest.raises(BadInput, match=r"for EfficientNet-Lite backbones.*plain"):
        stem_tensors(bytes(converter.convert()), "plain")


def test_an_ensemble_runs_on_litert_with_each_networks_stem_float(lite_cache: Path) -> None:
    """Two networks, the second fed by a resize: fp32 gives TensorFlow's vectors, and the float stem keeps the
    scaling, stem and block 0 of each network float (and the resize feeding the second), nothing after them."""
    from recommender.backbones import load_backbone
    from recommender.litert_mixed import stem_tensors

    backbone = load_backbone("efficientnet-lite0+efficientnet-lite1@160")
    tensorflow = Extractor(backbone, buckets=(1, 4))
    fp32 = Extractor(backbone, buckets=(1, 4), runtime="tflite-fp32", cache_dir=lite_cache)
    scenes = np.concatenate(list(litert.calibration_scenes(6, 224, seed=7))).astype(np.uint8)
    reference = tensorflow.embed(scenes).vectors
    assert _cosines(fp32.embed(scenes).vectors, reference).min() > 0.999

    int8 = litert.convert(backbone.model, "tflite-int8", input_size=224, calibration=4)
    kept = stem_tensors(int8, backbone.fingerprint.name)
    scopes = {re.search(r"/(?:resize_)?(efficientnet_lite\d_\d+px)_\d+/", name)[1] for name in kept}
    assert scopes == {"efficientnet_lite0_224px", "efficientnet_lite1_160px"}
    for scope in scopes:
        assert any(f"{scope}_1/stem" in name for name in kept) and any(f"{scope}_1/block0_" in name for name in kept)
    assert any("/resize_efficientnet_lite1_160px" in name for name in kept)
    assert not any("/block1" in name or "/head" in name for name in kept)


def test_a_float_layer_the_graph_lacks_is_an_error(lite, lite_cache: Path) -> None:
    from recommender.litert_mixed import _check_kept_float

    lite("tflite-int8")
    with pytest.raises(RuntimeError, match="meant to stay float"):
        _check_kept_float(_model(lite_cache, "int8").read_bytes(), ["no/such/tensor"])


def test_batches_padded_to_buckets_give_the_same_vectors(lite, photos: np.ndarray) -> None:
    extractor = lite("tflite-fp32")
    whole = extractor.embed(photos[:11]).vectors  # 8 + 3 padded to 8
    one_by_one = np.concatenate([extractor.embed(photos[i : i + 1]).vectors for i in range(11)])
    np.testing.assert_allclose(whole, one_by_one, atol=1e-5)
    assert extractor.embed(photos[:0]).vectors.shape == (0, extractor.fingerprint.dim)


def test_the_fingerprint_records_the_runtime(lite, default_extractor: Extractor) -> None:
    tensorflow, int8 = default_extractor.fingerprint, lite("tflite-int8").fingerprint
    assert tensorflow.runtime == "tensorflow" and int8.runtime == "tflite-int8"
    assert int8 != tensorflow and int8.key != tensorflow.key
    assert replace(int8, runtime="tensorflow") == tensorflow
    assert BackboneFingerprint.from_dict(int8.to_dict()) == int8
    # A manifest from before the runtime existed was TensorFlow's, and keeps its key (query caches, logs).
    old = {k: v for k, v in tensorflow.to_dict().items() if k != "runtime"}
    assert BackboneFingerprint.from_dict(old) == tensorflow
    assert tensorflow.key == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:16]
    assert "tflite-int8" in int8.describe() and "tensorflow" not in tensorflow.describe()


def test_the_converted_model_is_cached_and_a_damaged_one_rebuilt(
    default_extractor: Extractor, photos: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backbone = default_extractor.backbone
    before = litert.conversions
    first = Extractor(backbone, buckets=(1,), runtime="tflite-fp32", cache_dir=tmp_path)
    assert litert.conversions == before + 1
    (model,) = (tmp_path / "litert").glob("*.tflite")
    expected = first.embed(photos[:1]).vectors

    second = Extractor(backbone, buckets=(1,), runtime="tflite-fp32", cache_dir=tmp_path)
    assert litert.conversions == before + 1  # loaded, not converted
    np.testing.assert_array_equal(second.embed(photos[:1]).vectors, expected)

    content = bytearray(model.read_bytes())
    content[len(content) // 2] ^= 0xFF  # one flipped byte in the weights: it would still load
    model.write_bytes(bytes(content))
    with caplog.at_level("WARNING", logger="recommender.litert"):
        third = Extractor(backbone, buckets=(1,), runtime="tflite-fp32", cache_dir=tmp_path)
    assert litert.conversions == before + 2
    assert "damaged" in caplog.text
    np.testing.assert_array_equal(third.embed(photos[:1]).vectors, expected)

    model.with_suffix(".sha256").unlink()  # a conversion killed between the two writes
    Extractor(backbone, buckets=(1,), runtime="tflite-fp32", cache_dir=tmp_path)
    assert litert.conversions == before + 3


def test_the_cache_key_covers_the_runtime_and_the_options(default_extractor: Extractor) -> None:
    backbone = default_extractor.backbone
    spec = litert.ConversionSpec(backbone.fingerprint, backbone.options, "tflite-int8", include_top=True)
    keys = {
        spec.key(),
        replace(spec, runtime="tflite-fp32").key(),
        replace(spec, options=replace(backbone.options, bands=3)).key(),
        replace(spec, calibration_scenes=50).key(),
        replace(spec, fingerprint=replace(backbone.fingerprint, weights_sha256="other")).key(),
    }
    assert len(keys) == 5
    same = litert.ConversionSpec(spec.fingerprint, spec.options, spec.runtime, spec.include_top)
    assert spec.key() == same.key()  # stable: a second start finds the first one's file


def test_an_index_refuses_queries_from_another_runtime(lite, default_extractor: Extractor, tmp_path: Path) -> None:
    catalog = load_catalog(_generated_scenes(tmp_path / "catalog", count=6))
    out = tmp_path / "index"
    build_index(catalog, lite("tflite-fp32"), out, progress=False)
    assert open_index(out, expected=lite("tflite-fp32").fingerprint).fingerprint.runtime == "tflite-fp32"
    for other in (default_extractor, lite("tflite-int8")):
        with pytest.raises(FingerprintMismatch, match="differ in: runtime") as raised:
            open_index(out, expected=other.fingerprint)
        assert "--runtime tflite-fp32" in str(raised.value) and "WANDERLENS_RUNTIME=tflite-fp32" in str(raised.value)


def test_the_worker_refuses_an_index_of_another_runtime(lite, tmp_path: Path) -> None:
    from worker.main import load_model_and_index
    from worker.settings import WorkerSettings

    build_index(
        load_catalog(_generated_scenes(tmp_path / "catalog", count=4)),
        lite("tflite-int8"),
        tmp_path / "ix",
        progress=False,
    )
    settings = WorkerSettings(index_dir=tmp_path / "ix", runtime="tensorflow", weights_cache=tmp_path / "cache")
    with pytest.raises(FingerprintMismatch, match="WANDERLENS_RUNTIME=tflite-int8"):
        load_model_and_index(settings)


def test_the_worker_on_auto_serves_an_index_with_its_runtime(lite, lite_cache: Path, tmp_path: Path) -> None:
    from worker.main import load_model_and_index
    from worker.settings import WorkerSettings

    catalog = load_catalog(_generated_scenes(tmp_path / "catalog", count=4))
    build_index(catalog, lite("tflite-int8"), tmp_path / "ix", progress=False)
    extractor, index = load_model_and_index(WorkerSettings(index_dir=tmp_path / "ix", weights_cache=lite_cache))
    assert extractor.runtime == "tflite-int8" == index.fingerprint.runtime


def test_index_on_auto_keeps_an_existing_index_runtime(lite, lite_cache: Path, tmp_path: Path, capsys) -> None:
    from wanderlens.cli import main

    lite("tflite-int8")  # converted already
    catalog = _generated_scenes(tmp_path / "catalog", count=4)
    common = ["--weights-cache", str(lite_cache), "--no-progress"]
    assert main(["index", str(catalog), "--out", str(tmp_path / "ix"), "--runtime", "tflite-int8", *common]) == 0
    capsys.readouterr()
    assert main(["index", str(catalog), "--out", str(tmp_path / "ix"), *common]) == 0
    printed = capsys.readouterr().out
    assert "keeping the index's runtime, tflite-int8" in printed and "0 fingerprinted, 4 reused" in printed
    assert open_index(tmp_path / "ix").fingerprint.runtime == "tflite-int8"


def test_the_colour_lookup_bins_every_kind_of_colour_as_the_keras_layer(default_extractor: Extractor) -> None:
    from keras import ops

    # Greys (hue undefined), pure and mixed primaries, ties between channels, and colours on bins' edges.
    levels = np.array([0, 1, 31, 32, 63, 64, 95, 96, 127, 128, 159, 191, 192, 223, 224, 254, 255])
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
    rng = np.random.default_rng(3)
    colours = np.concatenate([grid, rng.integers(0, 256, (56 * 56 * 2 - len(grid), 3))]).astype(np.uint8)
    # One colour per sampled pixel (every fourth row and column), two photos.
    photos = np.zeros((2, 224, 224, 3), dtype=np.uint8)
    photos[:, ::4, ::4, :] = colours.reshape(2, 56, 56, 3)
    layer = default_extractor.backbone.model.get_layer("colour")
    expected = ops.convert_to_numpy(layer(photos.astype(np.float32)))
    np.testing.assert_allclose(colour_histogram_numpy(photos), expected, atol=1e-6)


def test_an_index_of_a_retired_runtime_says_to_rebuild(default_extractor: Extractor) -> None:
    old = replace(default_extractor.fingerprint, runtime="tflite-int8-mixed")
    message = str(FingerprintMismatch(old, default_extractor.fingerprint))
    assert "tflite-int8-mixed, is no longer offered" in message and "rebuild indexes made with it" in message
    assert "--runtime tflite-int8-mixed" not in message


def test_the_bench_runs_with_a_runtime(monkeypatch, lite, lite_cache: Path, capsys) -> None:
    import bench.extract

    lite("tflite-int8")  # converted already: the bench loads it from the session's cache
    before = litert.conversions
    argv = ["extract", "--runtime", "tflite-int8", "--batches", "2", "--repeats", "1", "--warmup", "0"]
    monkeypatch.setattr(sys, "argv", [*argv, "--e2e-images", "0", "--weights-cache", str(lite_cache)])
    bench.extract.main()
    printed = capsys.readouterr().out
    assert "runtime tflite-int8" in printed and "random x2" in printed
    assert printed.splitlines()[-1].startswith("batch1_ms=nan batch32_img_per_s=nan")  # neither batch was asked
    assert litert.conversions == before

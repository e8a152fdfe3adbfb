"""VGG16-Places365 offline: shapes, built-in preprocessing, the release's HDF5 layout, refused downloads.

Also covers recommender.backbones.keras_apps (keras.applications by name, saved .keras models), which shares
this module's concerns: building a backbone with its preprocessing inside and loading weights from files.

VGG16 has 138M parameters (550 MB, seconds to build), so the random-init model is built once per module.
"""

from __future__ import annotations

import functools
import hashlib
import time
import urllib.error
from collections.abc import Iterator
from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from recommender import download
from recommender.backbones.keras_apps import (
    APPLICATIONS,
    ApplicationPreprocess,
    build_keras_application,
    build_saved_model,
)
from recommender.backbones.vgg16_places365 import (
    EMBEDDING_DIM,
    INPUT_SIZE,
    MEAN_BGR,
    NUM_CLASSES,
    WEIGHTS,
    build_vgg16_places365,
    load_legacy_h5_by_name,
)
from recommender.download import WeightsError

# The layers with weights in the original vgg16_places_365.py, in order: what its .h5 file holds.
RELEASE_WEIGHTED_LAYERS = [
    "block1_conv1", "block1_conv2",
    "block2_conv1", "block2_conv2",
    "block3_conv1", "block3_conv2", "block3_conv3",
    "block4_conv1", "block4_conv2", "block4_conv3",
    "block5_conv1", "block5_conv2", "block5_conv3",
    "fc1", "fc2", "predictions",
]  # fmt: skip

NOT_THE_RELEASE = b"\x89HDF" + bytes(4092)  # what a wrong or truncated download might look like


def write_keras2_h5(model: keras.Model, path: Path, *, wrap: bool = False) -> None:
    """Write ``model``'s weights the way Keras 2 ``save_weights`` (or, with ``wrap``, ``save``) laid them out.

    Root (or ``model_weights``) attrs: ``layer_names``, ``backend``, ``keras_version``; one group per layer with
    a ``weight_names`` attr ("<layer>/kernel:0", "<layer>/bias:0") and datasets at those paths. Our model's own
    input and "preprocess" layers are not in the release; its input layer was called "input_1".
    """
    release_layers = [layer for layer in model.layers if layer.name != "preprocess"]
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if wrap else f
        if wrap:
            f.attrs["model_config"] = b'{"class_name": "Model", "config": {}}'
        names = ["input_1" if isinstance(layer, keras.layers.InputLayer) else layer.name for layer in release_layers]
        root.attrs["layer_names"] = np.array([name.encode() for name in names])
        root.attrs["backend"] = b"tensorflow"
        root.attrs["keras_version"] = b"2.1.5"
        for name, layer in zip(names, release_layers, strict=True):
            group = root.create_group(name)
            weight_names = [f"{name}/{kind}:0" for kind in ("kernel", "bias")][: len(layer.weights)]
            group.attrs["weight_names"] = np.array([w.encode() for w in weight_names], dtype="S")
            for weight_name, value in zip(weight_names, layer.get_weights(), strict=True):
                group.create_dataset(weight_name, data=value)


@pytest.fixture(scope="module")
def model() -> keras.Model:
    keras.utils.set_random_seed(0)
    return build_vgg16_places365(weights=None)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, size=(2, INPUT_SIZE, INPUT_SIZE, 3)).astype("float32")


@pytest.fixture(scope="module")
def release_h5(model: keras.Model, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    path = tmp_path_factory.mktemp("release") / WEIGHTS.filename
    write_keras2_h5(model, path)
    yield path
    path.unlink()  # 540 MB: pytest keeps the last few runs' temporary folders


# --- VGG16-Places365 -------------------------------------------------------------------------------------------


def test_outputs(model, images):
    outputs = model.predict(images, verbose=0)

    assert set(outputs) == {"embedding", "logits"}
    assert outputs["embedding"].shape == (2, EMBEDDING_DIM)
    assert outputs["logits"].shape == (2, NUM_CLASSES)
    assert outputs["embedding"].dtype == outputs["logits"].dtype == np.float32
    assert (outputs["embedding"] >= 0).all()  # fc2 after its ReLU
    assert (outputs["logits"] < 0).any()  # raw scores, not softmax probabilities
    assert model.output["embedding"].shape[-1] == EMBEDDING_DIM  # what backbones/__init__ reads


def test_layer_names_and_sizes_match_the_release(model):
    weighted = [layer for layer in model.layers if layer.weights]
    assert [layer.name for layer in weighted] == RELEASE_WEIGHTED_LAYERS
    assert model.get_layer("fc1").kernel.shape == (7 * 7 * 512, 4096)
    assert model.get_layer("fc2").kernel.shape == (4096, 4096)
    assert model.get_layer("predictions").kernel.shape == (4096, 365)
    assert {"drop_fc1", "drop_fc2", "flatten", "block5_pool"} <= {layer.name for layer in model.layers}
    # keras.applications.VGG16 (138,357,544 with 1000 classes) with a 365-way head instead.
    assert model.count_params() == 138_357_544 - 4097 * (1000 - 365)


def test_preprocessing_is_inside_the_graph(model):
    preprocess = keras.Model(model.input, model.get_layer("preprocess").output)
    mean_rgb = np.array(MEAN_BGR[::-1], dtype="float32")
    mean_image = np.broadcast_to(mean_rgb, (1, INPUT_SIZE, INPUT_SIZE, 3))
    np.testing.assert_allclose(preprocess.predict(mean_image, verbose=0), 0.0, atol=1e-4)

    # Caffe order: pure red comes out in the last (R of BGR) channel.
    red = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), dtype="float32")
    red[..., 0] = 255.0
    pixel = preprocess.predict(red, verbose=0)[0, 0, 0]
    np.testing.assert_allclose(pixel, [-MEAN_BGR[0], -MEAN_BGR[1], 255.0 - MEAN_BGR[2]], atol=1e-4)


def test_release_layout_round_trip(model, images, release_h5):
    expected = model.predict(images, verbose=0)

    with_top = build_vgg16_places365(weights=release_h5)
    loaded = with_top.predict(images, verbose=0)
    np.testing.assert_array_equal(loaded["embedding"], expected["embedding"])
    np.testing.assert_array_equal(loaded["logits"], expected["logits"])
    del with_top

    # include_top=False loads the same full file, skipping "predictions".
    no_top = build_vgg16_places365(weights=str(release_h5), include_top=False)
    features = no_top.predict(images, verbose=0)
    assert set(features) == {"embedding"}
    np.testing.assert_array_equal(features["embedding"], expected["embedding"])


def test_missing_weights_file_fails_before_building(tmp_path):
    started = time.perf_counter()
    with pytest.raises(WeightsError, match="no such weights file"):
        build_vgg16_places365(weights=tmp_path / "nope.h5")
    assert time.perf_counter() - started < 1.0


def test_default_weights_with_a_wrong_hash_are_refused(monkeypatch, tmp_path):
    opened: list[str] = []

    class Junk:
        def __init__(self) -> None:
            self.headers = {"Content-Length": str(len(NOT_THE_RELEASE))}
            self.body = [NOT_THE_RELEASE]

        def __enter__(self) -> Junk:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def geturl(self) -> str:
            return WEIGHTS.url

        def read(self, n: int) -> bytes:
            return self.body.pop() if self.body else b""

    def opener(request, timeout):
        opened.append(request.full_url)
        return Junk()

    monkeypatch.setattr(download, "fetch", functools.partial(download.fetch, opener=opener, progress=False))
    cache = tmp_path / "cache"

    with pytest.raises(WeightsError, match=f"expected md5 {WEIGHTS.md5}") as caught:
        build_vgg16_places365(weights="default", cache_dir=cache)

    assert opened == [WEIGHTS.url]
    assert f"received md5 {hashlib.md5(NOT_THE_RELEASE).hexdigest()}" in str(caught.value)
    assert list(cache.iterdir()) == []  # neither the download nor a .part file


def test_pinned_release():
    assert WEIGHTS.url == (
        "https://github.com/GKalliatakis/Keras-VGG16-places365/releases/download/v1.0/"
        "vgg16-places365_weights_tf_dim_ordering_tf_kernels.h5"
    )
    assert WEIGHTS.digests == {"md5": "7944d606893ead4c74336c354045d248"}


# --- the legacy HDF5 loader, on a tiny model ---------------------------------------------------------------------


def tiny_model(*, units: int = 3) -> keras.Model:
    image = keras.Input(shape=(8, 8, 3), name="image")
    x = keras.layers.Conv2D(2, 3, name="conv")(image)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(image, keras.layers.Dense(units, name="head")(x))


def test_loader_reads_full_model_saves(tmp_path):
    keras.utils.set_random_seed(1)
    source, target = tiny_model(), tiny_model()
    write_keras2_h5(source, tmp_path / "full.h5", wrap=True)

    load_legacy_h5_by_name(target, tmp_path / "full.h5")

    for a, b in zip(source.weights, target.weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_replica_layout_is_what_keras_reads_and_writes(tmp_path):
    # Cross-checks of write_keras2_h5 against Keras' own legacy HDF5 code (private names, keras 3.15):
    # Keras' topological reader accepts our replica, and our loader reads Keras' legacy writer's output.
    from keras.src.legacy.saving import legacy_h5_format

    keras.utils.set_random_seed(3)
    source = tiny_model()
    write_keras2_h5(source, tmp_path / "replica.h5")
    by_keras = tiny_model()
    by_keras.load_weights(tmp_path / "replica.h5")
    with h5py.File(tmp_path / "by_keras.h5", "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, source)
    by_us = tiny_model()
    load_legacy_h5_by_name(by_us, tmp_path / "by_keras.h5")

    for expected, a, b in zip(source.weights, by_keras.weights, by_us.weights, strict=True):
        np.testing.assert_array_equal(a, expected)
        np.testing.assert_array_equal(b, expected)


def test_loader_refuses_a_file_that_lacks_layers(tmp_path):
    path = tmp_path / "partial.h5"
    write_keras2_h5(tiny_model(), path)
    with h5py.File(path, "a") as f:
        f.attrs["layer_names"] = np.array([b"input_1", b"conv", b"pool"])
        del f["head"]

    with pytest.raises(WeightsError, match=r"no weights for layer\(s\) head"):
        load_legacy_h5_by_name(tiny_model(), path)


def test_loader_refuses_mismatched_shapes(tmp_path):
    write_keras2_h5(tiny_model(units=4), tmp_path / "other.h5")
    with pytest.raises(WeightsError, match="weights of layer head do not fit"):
        load_legacy_h5_by_name(tiny_model(units=3), tmp_path / "other.h5")


def test_loader_refuses_non_hdf5_files(tmp_path):
    (tmp_path / "html.h5").write_text("<html>GitHub rate limit</html>")
    with pytest.raises(WeightsError, match="cannot read"):
        load_legacy_h5_by_name(tiny_model(), tmp_path / "html.h5")


# --- keras.applications by name ----------------------------------------------------------------------------------


def test_keras_application_with_random_weights():
    model, size = build_keras_application("MobileNetV3Small", weights=None)

    assert size == 224
    images = np.random.default_rng(0).uniform(0, 255, size=(2, size, size, 3)).astype("float32")
    outputs = model.predict(images, verbose=0)
    assert set(outputs) == {"embedding"}
    assert outputs["embedding"].shape == (2, 576)
    assert outputs["embedding"].dtype == np.float32
    assert model.output["embedding"].shape[-1] == 576


def test_keras_application_input_size_and_local_weights(tmp_path):
    keras.utils.set_random_seed(2)
    base = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(160, 160, 3), pooling="avg"
    )
    base.save_weights(tmp_path / "mobilenet.weights.h5")

    model, size = build_keras_application("MobileNetV3Small", weights=tmp_path / "mobilenet.weights.h5", input_size=160)

    assert size == 160
    images = np.random.default_rng(1).uniform(0, 255, size=(1, 160, 160, 3)).astype("float32")
    expected = base.predict(keras.applications.mobilenet_v3.preprocess_input(images), verbose=0)
    np.testing.assert_allclose(model.predict(images, verbose=0)["embedding"], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("module", ["resnet", "inception_v3", "densenet", "efficientnet"])
def test_application_preprocess_matches_keras(module):
    images = np.random.default_rng(3).uniform(0, 255, size=(2, 4, 4, 3)).astype("float32")
    expected = getattr(keras.applications, module).preprocess_input(images.copy())
    got = keras.ops.convert_to_numpy(ApplicationPreprocess(module)(images))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


def test_unknown_application_name():
    with pytest.raises(ValueError, match="ResNet50") as caught:
        build_keras_application("ResNet5O")
    assert str(caught.value).endswith("Received: app_name='ResNet5O'")
    assert "ConvNeXtTiny" in APPLICATIONS


def test_missing_local_application_weights(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        build_keras_application("MobileNetV3Small", weights=tmp_path / "nope.h5")


def test_offline_imagenet_download_is_a_weights_error(monkeypatch, tmp_path):
    # This machine is offline (a real attempt fails in well under a second with a DNS error); the stand-in
    # keeps the test deterministic where the network does work, and an empty Keras home keeps a cached copy
    # from being used instead. Both are private Keras names (keras 3.15).
    from keras.src.backend import config
    from keras.src.utils import file_utils

    def offline(url, filename, reporthook=None):
        raise urllib.error.URLError(OSError(-2, "Name or service not known"))

    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(config, "_KERAS_DIR", str(tmp_path))

    with pytest.raises(WeightsError, match="local weights file") as caught:
        build_keras_application("MobileNetV3Small", weights="imagenet")
    assert "Name or service not known" in str(caught.value)


# --- saved .keras models ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved_keras(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, keras.Model]:
    keras.utils.set_random_seed(4)
    image = keras.Input(shape=(32, 32, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, name="rescale")(image)
    x = keras.layers.Conv2D(6, 3, activation="relu", name="features")(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    original = keras.Model(image, keras.layers.Dense(5, name="head")(x), name="tiny")
    path = tmp_path_factory.mktemp("saved") / "tiny.keras"
    original.save(path)
    return path, original


def test_saved_model_layer_as_embedding(saved_keras):
    path, original = saved_keras
    images = np.random.default_rng(5).uniform(0, 255, size=(3, 32, 32, 3)).astype("float32")

    pooled, size = build_saved_model(path, "features")
    assert size == 32
    feature_maps = keras.Model(original.input, original.get_layer("features").output).predict(images, verbose=0)
    np.testing.assert_allclose(
        pooled.predict(images, verbose=0)["embedding"], feature_maps.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6
    )

    head, _ = build_saved_model(str(path), "head", input_size=32)
    np.testing.assert_allclose(
        head.predict(images, verbose=0)["embedding"], original.predict(images, verbose=0), rtol=1e-5, atol=1e-6
    )


def test_saved_model_errors(saved_keras, tmp_path):
    path, _ = saved_keras
    with pytest.raises(ValueError, match="Received: layer='fc9'"):
        build_saved_model(path, "fc9")
    with pytest.raises(ValueError, match="Received: input_size=64"):
        build_saved_model(path, "features", input_size=64)
    with pytest.raises(ValueError, match=r"\.keras"):
        build_saved_model(tmp_path / "model.h5", "features")
    with pytest.raises(WeightsError, match="no such saved model"):
        build_saved_model(tmp_path / "missing.keras", "features")

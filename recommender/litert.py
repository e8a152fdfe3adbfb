"""A faster CPU runtime: the backbone converted to LiteRT (TFLite) and run with XNNPACK, in float32 or int8.

What converts and what does not:

- the network (its scaling of the pixels, convolutions, band pooling, classifier) converts to LiteRT builtins;
- the colour histogram does not: `tf.image.rgb_to_hsv` has no LiteRT builtin, and a histogram of one-hot counts
  would not survive int8 anyway. It is computed in numpy (`colour_histogram_numpy`), exactly as the Keras layer
  computes it, on every fourth pixel, by looking each pixel's bin up in a table; about 0.11 ms per photo.
- the final steps (unit length, the colour weight, softmax and top-k of the hints) are numpy as well.

The int8 model is quantised throughout (weights and activations), keeping float input and output, and calibrated on
generated scenes (`calibration_scenes`): never on the photos it is evaluated on, and the same on every machine, so
that two machines converting the same backbone get the same model. `tflite-int8-float-stem` is the same but for the
network's stem (its first layers, which quantise worst), kept in float (`recommender.litert_mixed`).
A converted model is cached beside the weights, keyed by everything it depends on (`ConversionSpec.key`), with its
checksum beside it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.errors import BadInput
from recommender.fingerprint import BackboneFingerprint, ExtractionOptions
from recommender.runtimes import TFLITE_FP32, TFLITE_INT8, TFLITE_INT8_FLOAT_STEM

logger = logging.getLogger(__name__)

_CALIBRATED = (TFLITE_INT8, TFLITE_INT8_FLOAT_STEM)
THREADS = 2
CALIBRATION_SCENES = 100
# Bump when the conversion itself changes (ops, quantisation settings, calibration scenes): old caches then miss.
CONVERSION_VERSION = 1


class RuntimeUnavailable(BadInput):
    """The LiteRT runtime was asked for but neither `ai_edge_litert` nor `tf.lite` can run it here."""


def interpreter_class() -> type | None:
    """LiteRT's own Interpreter (`ai-edge-litert`) when installed, else TensorFlow's deprecated `tf.lite` one."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf

        return tf.lite.Interpreter
    except (ImportError, AttributeError):
        return None


# ------------------------------------------------------------------------------------------------ calibration


def calibration_scenes(count: int, size: int, *, seed: int = 0) -> Iterator[np.ndarray]:
    """Generated outdoor-like scenes, float32 (1, S, S, 3) in 0..255: a sky gradient over textured ground, with
    blocks (buildings) and blobs (trees, sun, water).

    Calibration only needs activations in their usual ranges; scenes built here, rather than photos, keep the
    evaluation photos out of it and make every machine's int8 model the same without shipping photos.
    """
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    for _ in range(count):
        horizon = int(size * rng.uniform(0.25, 0.75))
        top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        rows = np.linspace(0.0, 1.0, horizon)[:, None]
        sky = np.repeat((top * (1 - rows) + bottom * rows)[:, None, :], size, axis=1)
        ground_colour = rng.uniform(0, 255, 3)
        ground = np.zeros((size - horizon, size, 3))
        for cells, amplitude in ((4, 60.0), (16, 35.0), (64, 20.0)):
            noise = rng.normal(0, amplitude, (cells, cells, 3))
            layer = Image.fromarray(np.clip(noise + 128, 0, 255).astype(np.uint8)).resize(
                (size, size - horizon), Image.Resampling.BICUBIC
            )
            ground += np.asarray(layer, dtype=np.float64) - 128
        scene = np.concatenate([sky, np.clip(ground + ground_colour, 0, 255)], axis=0)
        image = Image.fromarray(scene.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(0, 8))):
            x0, y0 = rng.integers(0, size, 2)
            w, h = rng.integers(size // 16, size // 2, 2)
            fill = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                draw.rectangle((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=fill)
            else:
                draw.ellipse((int(x0), int(y0), int(x0 + w), int(y0 + h)), fill=fill)
        if rng.random() < 0.5:
            image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5))))
        pixels = np.asarray(image, dtype=np.float32)
        grain = rng.normal(0, rng.uniform(0, 12), pixels.shape)
        yield np.clip(pixels + grain, 0, 255).astype(np.float32)[None]


# ------------------------------------------------------------------------------------------------- conversion


@dataclass(frozen=True)
class ConversionSpec:
    """Everything a converted model depends on; its hash names the cached file."""

    fingerprint: BackboneFingerprint
    options: ExtractionOptions
    runtime: str
    include_top: bool
    calibration_scenes: int = CALIBRATION_SCENES

    def key(self) -> str:
        import tensorflow as tf

        described = {
            "fingerprint": self.fingerprint.to_dict(),
            "options": self.options.to_dict(),
            "runtime": self.runtime,
            "include_top": self.include_top,
            "calibration_scenes": self.calibration_scenes if self.runtime in _CALIBRATED else 0,
            "tensorflow": tf.__version__,
            "conversion": CONVERSION_VERSION,
        }
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:20]

    def filename(self) -> str:
        return f"{self.fingerprint.name.replace(':', '_').replace('/', '_')}-{self.runtime}-{self.key()}.tflite"


def network_part(model: object) -> object:
    """The backbone's model without its colour branch: the part that converts (see the module docstring)."""
    import keras

    assert isinstance(model, keras.Model)
    try:
        unit = model.get_layer("network_part")
    except ValueError:
        return model  # no colour histogram in this model
    outputs = {"embedding": unit.input}
    if "logits" in model.output:
        outputs["logits"] = model.output["logits"]
    return keras.Model(model.input, outputs, name=f"{model.name}_network")


def convert(model: object, runtime: str, *, input_size: int, calibration: int = CALIBRATION_SCENES) -> bytes:
    """The network as a LiteRT flatbuffer with a dynamic batch dimension and one signature, `serving_default`."""
    import tensorflow as tf

    network = network_part(model)

    with tempfile.TemporaryDirectory(prefix="wanderlens-litert-") as folder:
        # Through a SavedModel: the converter freezes its variables into the flatbuffer as constants.
        network.export(folder, format="tf_saved_model", verbose=False)  # type: ignore[attr-defined]
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        converted = _run_converter(
            converter,
            TFLITE_INT8 if runtime == TFLITE_INT8_FLOAT_STEM else runtime,
            model_name=network.name,  # type: ignore[attr-defined]
            input_size=input_size,
            calibration=calibration,
        )
        if runtime != TFLITE_INT8_FLOAT_STEM:
            return converted
        from recommender.litert_mixed import convert_float_stem

        # The fully quantised model names the ops to keep float, then the same calibration converts it again.
        return convert_float_stem(
            folder,
            converted,
            network_name=network.name,  # type: ignore[attr-defined]
            calibration_scenes=lambda: ([scene] for scene in calibration_scenes(calibration, input_size)),
        )


def _run_converter(converter: object, runtime: str, *, model_name: str, input_size: int, calibration: int) -> bytes:
    import tensorflow as tf

    if runtime == TFLITE_INT8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([scene] for scene in calibration_scenes(calibration, input_size))
        # Integer kernels for everything; input and output stay float32 (quantised at the edges of the graph).
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    elif runtime != TFLITE_FP32:
        raise BadInput(f"only LiteRT runtimes convert. Received: runtime={runtime!r}")
    try:
        return bytes(converter.convert())
    except Exception as error:  # the converter raises several unrelated types for ops it cannot map
        raise BadInput(f"this backbone does not convert to {runtime}: {error}. Received: {model_name}") from error


# Counted so that tests can tell a cache hit from a conversion.
conversions = 0


def _digest(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def _write_atomically(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(content)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)  # as the downloaded weights beside it: readable by a worker running as another user
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _read_cached(model_path: Path) -> bytes | None:
    """The cached model when it is whole: its sha256 must be the one written beside it at conversion."""
    checksum = model_path.with_suffix(".sha256")
    try:
        content, expected = model_path.read_bytes(), checksum.read_text().strip()
    except OSError:
        return None
    if _digest(content) != expected:
        logger.warning("the cached LiteRT model %s is damaged (checksum differs): converting it again", model_path)
        return None
    return content


def load_or_convert(model: object, spec: ConversionSpec, cache_dir: Path) -> tuple[bytes, Path]:
    """The converted model from ``cache_dir/litert``, converting (and caching) it first when absent or damaged."""
    global conversions
    path = Path(cache_dir) / "litert" / spec.filename()
    cached = _read_cached(path)
    if cached is not None:
        logger.info("LiteRT model %s loaded from the cache", path.name)
        return cached, path
    logger.info(
        "converting %s to %s (once per backbone and options; %s)...",
        spec.fingerprint.name,
        spec.runtime,
        f"calibrating on {spec.calibration_scenes} generated scenes, about 15 s on 2 cores"
        if spec.runtime == TFLITE_INT8
        else "calibrating twice, about 20 s on 2 cores"
        if spec.runtime == TFLITE_INT8_FLOAT_STEM
        else "about 6 s on 2 cores",
    )
    started = time.perf_counter()
    content = convert(model, spec.runtime, input_size=spec.fingerprint.input_size, calibration=spec.calibration_scenes)
    conversions += 1
    _write_atomically(path, content)
    _write_atomically(path.with_suffix(".sha256"), (_digest(content) + "\n").encode())
    logger.info(
        "converted %s to %s in %.1fs (%.1f MB) -> %s",
        spec.fingerprint.name,
        spec.runtime,
        time.perf_counter() - started,
        len(content) / 1e6,
        path,
    )
    return content, path


# ------------------------------------------------------------------------------------------------------ running


class LiteModel:
    """One interpreter per batch size (each sized once: resizing costs XNNPACK a re-plan), 2 threads, XNNPACK."""

    def __init__(self, content: bytes, buckets: Sequence[int], *, threads: int = THREADS) -> None:
        interpreter = interpreter_class()
        if interpreter is None:
            raise RuntimeUnavailable("no LiteRT interpreter: pip install ai-edge-litert. Received: none importable")
        self.content = content
        self._runners: dict[int, Callable[..., dict[str, np.ndarray]]] = {}
        self._interpreters: dict[int, object] = {}
        self._input = "image"
        for bucket in buckets:
            # The default op resolver applies the XNNPACK delegate to every op it supports, fp32 and int8 alike.
            instance = interpreter(model_content=content, num_threads=threads)
            (signature,) = instance.get_signature_list().values()
            (self._input,) = signature["inputs"]
            self._interpreters[bucket] = instance
            self._runners[bucket] = instance.get_signature_runner()

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        return self._runners[len(images)](**{self._input: images.astype(np.float32, copy=False)})


def lite_steps(
    model: object,
    spec: ConversionSpec,
    *,
    buckets: Sequence[int],
    hints: int,
    colour_weight: float,
    cache_dir: Path,
) -> dict[int, Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]]:
    """One step per bucket, as `Extractor` wants them: uint8 images -> (unit vectors, top-k p, top-k indices)."""
    from recommender.backbones.colour import colour_histogram_numpy

    content, _ = load_or_convert(model, spec, cache_dir)
    lite = LiteModel(content, buckets)

    def step(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        outputs = lite(images)
        vectors = outputs["embedding"].astype(np.float32)
        if colour_weight > 0:
            network = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
            vectors = np.concatenate([network, colour_weight * colour_histogram_numpy(images)], axis=-1)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=-1, keepdims=True), 1e-12)
        if hints and "logits" in outputs:
            logits = outputs["logits"].astype(np.float32)
            probabilities = np.exp(logits - logits.max(axis=-1, keepdims=True))
            probabilities /= probabilities.sum(axis=-1, keepdims=True)
            top_i = np.argsort(-probabilities, axis=-1, kind="stable")[:, :hints].astype(np.int32)
            top_p = np.take_along_axis(probabilities, top_i, axis=-1)
        else:
            top_p = np.zeros((len(images), 0), dtype=np.float32)
            top_i = np.zeros((len(images), 0), dtype=np.int32)
        return vectors.astype(np.float32), top_p, top_i

    return dict.fromkeys(buckets, step)

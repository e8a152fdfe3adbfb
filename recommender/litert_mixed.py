"""int8 with the layers that quantise worst kept in float: the `tflite-int8-mixed` runtime.

Fully quantised, efficientnet-lite0 costs 0.006-0.011 in the dev figures on some halves (LITERT_RESULTS.md). Most of
that comes from a few layers: ranked by their quantisation error (RMSE over the quantisation step, measured by
TensorFlow's QuantizationDebugger on generated scenes), the stem and block 0's depthwise convolution stand far out,
and with the worst `FLOAT_LAYERS` kept in float the vectors are three times closer to TensorFlow's. Everything is
measured on generated scenes, never on photos, so every machine picks the same layers.
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from recommender.errors import BadInput

FLOAT_LAYERS = 20  # fixed on the travel photos (not an evaluation set): 2 layers gave 0.9937 mean cosine, 20: 0.9975
STATISTICS_SCENES = 16  # others than the calibration's (seed 1)


@contextmanager
def _debugger_interpreter() -> Iterator[None]:
    """The debugger runs TensorFlow's deprecated `tf.lite.Interpreter` inside, which warns each time; nothing here
    can choose LiteRT's instead (the models it writes are run with LiteRT's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        yield


def _scenes(count: int, size: int, seed: int) -> Iterator[list[np.ndarray]]:
    from recommender.litert import calibration_scenes

    return ([scene] for scene in calibration_scenes(count, size, seed=seed))


def _quantising(folder: str, *, input_size: int, calibration: int) -> object:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: _scenes(calibration, input_size, 0)
    return converter


def sensitive_tensors(network: object, *, input_size: int, calibration: int, count: int = FLOAT_LAYERS) -> list[str]:
    """The names of the ``count`` op outputs with the largest quantisation error, worst first.

    Measured on the network cut at its last feature map (``head_relu``): on the whole graph, the debugger's model
    divides by zero in the band normalisation. The cut model has the network's name, so its tensors are named as
    the network's.
    """
    import keras
    import tensorflow as tf

    assert isinstance(network, keras.Model)
    layers = {layer.name: layer for layer in network.layers}
    if "head_relu" not in layers:
        raise BadInput(f"tflite-int8-mixed is for EfficientNet-Lite backbones. Received: {network.name}")
    features = keras.Model(network.input, {"features": layers["head_relu"].output}, name=network.name)
    with tempfile.TemporaryDirectory(prefix="wanderlens-litert-") as folder:
        features.export(folder, format="tf_saved_model", verbose=False)
        with _debugger_interpreter():
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=_quantising(folder, input_size=input_size, calibration=calibration),
                debug_dataset=lambda: _scenes(STATISTICS_SCENES, input_size, 1),
            )
            debugger.run()
        dump = io.StringIO()
        debugger.layer_statistics_dump(dump)
    dump.seek(0)
    errors = {
        row["tensor_name"]: math.sqrt(float(row["mean_squared_error"])) / float(row["scale"])
        for row in csv.DictReader(dump)
        if float(row["scale"]) > 0
    }
    return sorted(errors, key=errors.__getitem__, reverse=True)[:count]


def convert_mixed(network: object, folder: str, *, input_size: int, calibration: int) -> bytes:
    """``network`` (exported to the SavedModel ``folder``) quantised to int8 but for its `sensitive_tensors`."""
    import tensorflow as tf

    floats = sensitive_tensors(network, input_size=input_size, calibration=calibration)
    with _debugger_interpreter():
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=_quantising(folder, input_size=input_size, calibration=calibration),
            debug_dataset=lambda: _scenes(2, input_size, 1),
            debug_options=tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=floats),
        )
        content = bytes(debugger.get_nondebug_quantized_model())
    _check_kept_float(content, floats)
    return content


def _check_kept_float(content: bytes, floats: list[str]) -> None:
    """A name the converted graph does not have is ignored by the converter: that would be plain int8, silently."""
    from recommender.litert import interpreter_class

    interpreter = interpreter_class()
    assert interpreter is not None
    dtypes = {t["name"]: t["dtype"] for t in interpreter(model_content=content).get_tensor_details()}
    missing = [name for name in floats if dtypes.get(name) != np.float32]
    if missing:
        raise RuntimeError(f"layers meant to stay float were quantised or not found. Received: {missing[:3]}")

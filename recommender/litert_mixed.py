"""int8 but for the network's stem, kept in float: the `tflite-int8-float-stem` runtime.

Fully quantised, efficientnet-lite0 costs 0.006-0.012 in the dev figures on some halves (README, "CPU runtimes").
Most of that comes from where the network meets the pixels: the input scaling, which int8 rounds twice (once as
pixels, again as scaled pixels), and the two layers that quantise worst of all (the stem convolution and block 0's
depthwise convolution, far ahead of every other layer in TensorFlow's QuantizationDebugger). Kept in float, the
whole stem (everything before block 1) is one contiguous float run at the input, so the graph switches from float
to int8 once. The 20 worst layers kept float instead, scattered through the network, switch back and forth and
ran at 231 images/s at batch 32 against 334, for dev figures no better (README).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from recommender.errors import BadInput

# The first layer that runs in int8; everything before it stays float. EfficientNet-Lite's layers are named by block.
FIRST_INT8_BLOCK = "block1_"
# The scope of one network of several, as the converter names its ops: "…/efficientnet_lite1_192px_1/…", and
# "…/resize_efficientnet_lite1_192px_1/…" for the resize that feeds it (recommender.backbones.efficientnet_lite).
_NETWORK_SCOPE = re.compile(r"/(?:resize_)?(efficientnet_lite\d_\d+px)(?:_\d+)?/")


@contextmanager
def _debugger_interpreter() -> Iterator[None]:
    """The debugger runs TensorFlow's deprecated `tf.lite.Interpreter` inside, which warns each time; nothing here
    can choose LiteRT's instead (the models it writes are run with LiteRT's)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*tf\.lite\.Interpreter is deprecated", category=UserWarning)
        yield


def stem_tensors(int8_model: bytes, network_name: str) -> list[str]:
    """The outputs of the fully quantised model's ops before ``FIRST_INT8_BLOCK``, in the order they run.

    Read from the converted graph, not from Keras: the converter fuses and renames ops (a convolution, its bias and
    its ReLU6 become one op named after all three), and it is those names that can be kept float. An ensemble or a
    multi-scale backbone runs several networks, each in its own scope: each keeps its own stem float, and the
    resize that feeds it.
    """
    from recommender.litert import interpreter_class

    interpreter = interpreter_class()
    assert interpreter is not None
    model = interpreter(model_content=int8_model)
    tensors = {t["index"]: t for t in model.get_tensor_details()}
    several = any(_NETWORK_SCOPE.search(t["name"]) for t in tensors.values())
    kept: list[str] = []
    networks: set[str] = set()
    in_int8: set[str] = set()  # the networks whose ops have reached FIRST_INT8_BLOCK
    for op in model._get_ops_details():  # the one way to list a model's ops in the order they run
        if op["op_name"] in ("QUANTIZE", "DEQUANTIZE"):
            continue  # the graph's float edges, not layers
        outputs = [tensors[i] for i in op["outputs"]]
        names = " ".join(t["name"] for t in outputs)
        scopes = set(_NETWORK_SCOPE.findall(names)) if several else {""}
        networks |= scopes
        if f"/{FIRST_INT8_BLOCK}" in names:
            in_int8 |= scopes
        elif scopes - in_int8:
            # Only quantised tensors can be kept float (not a resize's shape arithmetic, which is int32).
            kept += [t["name"] for t in outputs if t["dtype"] == np.int8]
    with_stem = {
        scope for name in kept if "/stem" in name for scope in (_NETWORK_SCOPE.findall(name) if several else [""])
    }
    if not networks or with_stem != networks:
        raise BadInput(
            f"tflite-int8-float-stem is for EfficientNet-Lite backbones (a stem, then blocks). Received: {network_name}"
        )
    return kept


def convert_float_stem(folder: str, int8_model: bytes, *, network_name: str, calibration_scenes: object) -> bytes:
    """The SavedModel in ``folder`` quantised to int8 but for its `stem_tensors` (``int8_model`` is its fully
    quantised conversion, calibrated on the same scenes)."""
    import tensorflow as tf

    floats = stem_tensors(int8_model, network_name)
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration_scenes
    with _debugger_interpreter():
        # The debugger is TensorFlow's one public way to keep chosen ops float in a quantised model. Its debug
        # dataset only feeds statistics that are not used here: two scenes are enough.
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter,
            debug_dataset=lambda: (scene for _, scene in zip(range(2), calibration_scenes(), strict=False)),
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

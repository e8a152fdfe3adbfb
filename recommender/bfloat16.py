"""The `tensorflow-bf16` runtime: the backbone's convolutions in bfloat16, the rest in float32.

On a CPU with bfloat16 instructions (AVX512-BF16, AMX, Arm BF16), oneDNN runs bfloat16 convolutions faster than
float32 ones: the whole extraction runs 1.6 times as many images a second at batch 32, and the same at batch 1
(README, "CPU runtimes"). What stays float32, and why:

- the stem (the input scaling, the stem convolution and block 0): rounding where the network meets the pixels costs
  most, as with int8; kept float32, the vectors' mean cosine to float32 ones goes from 0.9990 to 0.9994 and the dev
  figures stay within 0.005 of float32 on every half;
- the pooling, the classifier and the colour histogram: averages and counts, cheap, and what the vectors are made
  of. Keras casts their bfloat16 inputs to float32.

Numbers stored in bfloat16 round exactly as they would when cast for each call, so the weights are kept in
bfloat16: the casts would cost a few ms at batch 1.
"""

from __future__ import annotations

import re

import keras
from keras import layers

from recommender.errors import BadInput

# The first block whose layers run in bfloat16; the stem and the blocks before stay float32.
FIRST_BFLOAT16_BLOCK = 1
# EfficientNet-Lite's layers (`recommender.backbones.efficientnet_lite`): "stem_conv", "block3_dw", "head_conv"...
_BLOCK = re.compile(r"^block(\d+)_")
_ARITHMETIC = (layers.Conv2D, layers.DepthwiseConv2D, layers.ReLU, layers.Add)


def _runs_in_bfloat16(layer: keras.Layer) -> bool:
    if not isinstance(layer, _ARITHMETIC):
        return False
    if layer.name.startswith("head_"):
        return True
    block = _BLOCK.match(layer.name)
    return block is not None and int(block.group(1)) >= FIRST_BFLOAT16_BLOCK


def _layers_within(model: keras.Model) -> list[keras.Layer]:
    found: list[keras.Layer] = []
    for layer in model.layers:
        found += _layers_within(layer) if isinstance(layer, keras.Model) else [layer]
    return found


def network_in_bfloat16(model: keras.Model) -> keras.Model:
    """A copy of an EfficientNet-Lite backbone (one network, an ensemble or several scales) whose blocks from
    `FIRST_BFLOAT16_BLOCK` and head run in bfloat16, with the same weights; the original is left as it was."""
    if not any(layer.name == "stem_conv" for layer in _layers_within(model)):
        raise BadInput(
            f"tensorflow-bf16 is for EfficientNet-Lite backbones (a stem, then blocks). Received: {model.name}"
        )

    def clone(layer: keras.Layer) -> keras.Layer:
        config = layer.get_config()
        if _runs_in_bfloat16(layer):
            config["dtype"] = "bfloat16"
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy

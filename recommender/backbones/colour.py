"""The colour part of a fingerprint: a hue x saturation x value histogram, computed inside the model's graph so that
the index, the worker and the GPU all extract it the same way as the network's part; and its numpy twin, equal to
it, for the LiteRT runtimes, which cannot convert `rgb_to_hsv` (`recommender.litert`)."""

from __future__ import annotations

import functools

import keras
import numpy as np
from keras import layers, ops

from recommender.fingerprint import COLOUR_BINS

# Every fourth pixel in each direction: over the evaluation sets, the histogram of 3,136 of a 224 px photo's pixels
# ranks as well as that of all 50,176 (README), and costs a sixteenth.
_STRIDE = 4


@keras.saving.register_keras_serializable(package="wanderlens")
class ColourHistogram(layers.Layer):
    """RGB pixels 0..255 (batch, S, S, 3) -> unit-length square roots of their HSV histogram (batch, bins).

    The square root (Hellinger) keeps one dominant colour, a blue sky, from drowning out the rest.
    """

    def __init__(self, bins: tuple[int, int, int] = COLOUR_BINS, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.bins = tuple(int(b) for b in bins)

    def call(self, images: keras.KerasTensor) -> keras.KerasTensor:
        sampled = images[:, ::_STRIDE, ::_STRIDE, :] / 255.0
        hsv = ops.image.rgb_to_hsv(ops.clip(sampled, 0.0, 1.0))
        batch = ops.shape(hsv)[0]
        flat = ops.reshape(hsv, (batch, -1, 3))
        hue, saturation, value = (
            ops.minimum(ops.cast(flat[..., axis] * count, "int32"), count - 1) for axis, count in enumerate(self.bins)
        )
        # Counting as a batched product of one-hot codes (hue-saturation by value) rather than with bincount, which
        # JAX cannot compile; it is also the cheapest of the ways measured.
        hue_saturation = ops.one_hot(hue * self.bins[1] + saturation, self.bins[0] * self.bins[1])
        counts = ops.einsum("bnk,bnv->bkv", hue_saturation, ops.one_hot(value, self.bins[2]))
        roots = ops.sqrt(ops.reshape(counts, (batch, -1)))
        return roots / ops.maximum(ops.norm(roots, axis=-1, keepdims=True), 1e-12)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return (input_shape[0], self.bins[0] * self.bins[1] * self.bins[2])

    def get_config(self) -> dict[str, object]:
        return {**super().get_config(), "bins": list(self.bins)}


def rgb_to_hsv(rgb: np.ndarray) -> np.ndarray:
    """TensorFlow's RGBToHSV kernel in numpy (float32 in 0..1): hue in [0, 1), ties resolved red, green, blue."""
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    value = np.max(rgb, axis=-1)
    spread = value - np.min(rgb, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        saturation = np.where(value > 0, spread / value, 0.0).astype(np.float32)
        norm = (np.float32(1.0) / spread) * np.float32(1.0 / 6.0)  # in TensorFlow's order: bins are exact
        hue = np.where(
            r == value,
            norm * (g - b),
            np.where(g == value, norm * (b - r) + np.float32(2.0 / 6.0), norm * (r - g) + np.float32(4.0 / 6.0)),
        )
    hue = np.where(spread > 0, hue, 0.0)
    hue = np.where(hue < 0, hue + np.float32(1.0), hue).astype(np.float32)
    return np.stack([hue, saturation, value.astype(np.float32)], axis=-1)


def _bin_codes(rgb: np.ndarray, bins: tuple[int, int, int]) -> np.ndarray:
    """The histogram bin of each pixel (float32 RGB in 0..1, (..., 3)), as `ColourHistogram` bins it."""
    hsv = rgb_to_hsv(rgb)
    codes = np.zeros(hsv.shape[:-1], dtype=np.int64)
    for axis, count in enumerate(bins):
        codes = codes * count + np.minimum((hsv[..., axis] * count).astype(np.int32), count - 1)
    return codes


@functools.cache
def _bin_of_every_colour(bins: tuple[int, int, int]) -> np.ndarray:
    """`_bin_codes` of all 2**24 uint8 colours, indexed by ``r << 16 | g << 8 | b`` (16 MB for 128 bins).

    Looking a pixel up is the same computation done ahead of time, so the histogram stays equal to the Keras
    layer's, at a fifteenth of the cost per photo. Built once per process, a red value at a time (about 2 s).
    """
    dtype = np.uint8 if int(np.prod(bins)) <= 256 else np.uint16
    table = np.empty(1 << 24, dtype=dtype)
    pixels = np.empty((1 << 16, 3), dtype=np.uint8)
    pixels[:, 1], pixels[:, 2] = np.divmod(np.arange(1 << 16), 256)
    for red in range(256):
        pixels[:, 0] = red
        # Scaled as `colour_histogram_numpy` scaled pixels before: the same float32 values, so the same bins.
        table[red << 16 : (red + 1) << 16] = _bin_codes(pixels.astype(np.float32) / np.float32(255.0), bins)
    return table


def colour_histogram_numpy(images: np.ndarray, bins: tuple[int, int, int] = COLOUR_BINS) -> np.ndarray:
    """`ColourHistogram` in numpy, for runtimes without `rgb_to_hsv` (LiteRT): uint8 (n, S, S, 3) -> (n, bins)."""
    sampled = images[:, ::_STRIDE, ::_STRIDE, :].reshape(len(images), -1, 3).astype(np.int32)
    codes = _bin_of_every_colour(tuple(bins))[(sampled[..., 0] << 16) | (sampled[..., 1] << 8) | sampled[..., 2]]
    total = int(np.prod(bins))
    # One bincount for the whole batch: each photo's codes offset into its own range of bins.
    offsets = (np.arange(len(images)) * total)[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=len(images) * total)
    counts = counts.reshape(len(images), total).astype(np.float32)
    roots = np.sqrt(counts)
    return roots / np.maximum(np.linalg.norm(roots, axis=-1, keepdims=True), 1e-12)


def with_colour(model: keras.Model, weight: float) -> keras.Model:
    """The same network whose ``embedding`` is [its unit embedding, ``weight`` x the colour histogram].

    Built on the network's own input and output tensors, so that its layers stay reachable by name.
    """
    outputs = dict(model.output)
    network_part = layers.UnitNormalization(axis=-1, name="network_part")(outputs["embedding"])
    colour_part = ColourHistogram(name="colour")(model.input)
    outputs["embedding"] = layers.Concatenate(name="with_colour")(
        [network_part, layers.Rescaling(weight, name="colour_weight")(colour_part)]
    )
    return keras.Model(model.input, outputs, name=f"{model.name}_colour")

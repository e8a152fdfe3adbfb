"""VGG16 trained on Places365 (365 scene classes): the original method's backbone, rebuilt for Keras 3.

The weights are the Keras release of GKalliatakis/Keras-VGG16-places365 (converted from the CSAILVision Caffe
model). Layer names match that release's HDF5 file, which is loaded by name. The classifier is kept only for
the "looks like" logits: the fingerprint is fc2, the 4096-d activation the tutorial keeps after dropping the
classification layer.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np
from keras import layers, ops

from recommender.download import RemoteWeights, WeightsError, default_cache_dir, resolve_weights

INPUT_SIZE = 224
EMBEDDING_DIM = 4096
NUM_CLASSES = 365

# The port's own preprocessing (its places_utils.preprocess_input, mode="caffe", which its author said in
# issue #13 is required; the README example that skips it is the odd one out): RGB -> BGR, then subtract
# this mean pixel, given in BGR order, with no scaling. The network was trained in Caffe on BGR 0..255 images.
MEAN_BGR = (104.006, 116.669, 122.679)

# Release v1.0 of GKalliatakis/Keras-VGG16-places365: the URL in its vgg16_places_365.py, which pins no hash.
# No sha256 of this file is published anywhere we could find. The project's README says its v1.0 files are
# the ones released by antorsae/landmark-recognition-challenge, whose extra/vgg16_places365.py pins md5
# 7944d606893ead4c74336c354045d248 for its own copy (named vgg16_places365.h5; _notop: d5f7340f...b087).
# We pin that md5, assuming the re-upload is byte-identical: no one here could download the file to check.
# If the assumption is wrong, `fetch` refuses the download (nothing unverified is ever loaded) and explains
# how to pass a hand-checked copy with --weights PATH; then pin that copy's sha256 here instead.
# The _notop file of the same release is of no use here: it lacks fc1 and fc2, and fc2 is the fingerprint.
_RELEASE = "https://github.com/GKalliatakis/Keras-VGG16-places365/releases/download/v1.0/"
WEIGHTS = RemoteWeights(
    url=_RELEASE + "vgg16-places365_weights_tf_dim_ordering_tf_kernels.h5",
    filename="vgg16-places365_weights_tf_dim_ordering_tf_kernels.h5",
    md5="7944d606893ead4c74336c354045d248",
)
# What the original builder called its release (weights="places"), accepted besides "default".
WEIGHTS_ALIASES = ("places", "places365")

# (filters, convolutions) per block: VGG16's configuration "D".
_BLOCKS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


@keras.saving.register_keras_serializable(package="wanderlens")
class CaffePreprocess(layers.Layer):
    """RGB pixels 0..255 in, BGR minus the mean pixel out: what the Caffe-trained weights expect."""

    def __init__(self, mean_bgr: Sequence[float] = MEAN_BGR, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mean_bgr = tuple(float(v) for v in mean_bgr)

    def call(self, images: Any) -> Any:
        bgr = ops.flip(images, axis=-1)
        return bgr - ops.convert_to_tensor(self.mean_bgr, dtype=bgr.dtype)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "mean_bgr": list(self.mean_bgr)}


def build_vgg16_places365(
    *,
    weights: str | os.PathLike[str] | None = None,
    include_top: bool = True,
    cache_dir: Path | None = None,
    name: str = "vgg16_places365",
) -> keras.Model:
    """VGG16-Places365 as a feature extractor.

    Input: float32 (batch, 224, 224, 3), RGB pixel values 0..255. The model's own preprocessing is built into
    the graph (as keras EfficientNet does), so callers never preprocess. Outputs: a dict
    ``{"embedding": (batch, 4096) fc2 activations (after ReLU, the tutorial's "drop the classifier layers"
    fingerprint), "logits": (batch, 365) pre-softmax scores}`` when ``include_top``, else
    ``{"embedding": ...}`` only.

    ``weights``: None (random, for shape tests), "default" (or "places"/"places365": the v1.0 release,
    downloaded once into ``cache_dir`` and checked against its pinned checksum), or a path: a Keras 2 HDF5
    file of the release's layout (loaded by layer name; ``include_top=False`` simply skips "predictions"),
    or a Keras 3 ``.weights.h5``/``.keras`` file saved from this model.
    """
    # Resolved first: a missing file or a failed download should fail before a 550 MB model is built.
    path = resolve_weights(weights, remote=WEIGHTS, cache_dir=cache_dir or default_cache_dir(), aliases=WEIGHTS_ALIASES)

    image = keras.Input(shape=(INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="image")
    x = CaffePreprocess(name="preprocess")(image)
    # The original's l2(0.0002) kernel regularizers only matter for training, so they are left out.
    for block, (filters, convolutions) in enumerate(_BLOCKS, start=1):
        for index in range(1, convolutions + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{index}")(x)
        x = layers.MaxPooling2D(2, strides=2, name=f"block{block}_pool")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(4096, activation="relu", name="fc1")(x)
    x = layers.Dropout(0.5, name="drop_fc1")(x)
    embedding = layers.Dense(EMBEDDING_DIM, activation="relu", name="fc2")(x)
    outputs = {"embedding": embedding}
    if include_top:
        x = layers.Dropout(0.5, name="drop_fc2")(embedding)
        # Same weights as the original softmax layer; the softmax is left to callers that want probabilities.
        outputs["logits"] = layers.Dense(NUM_CLASSES, name="predictions")(x)
    model = keras.Model(image, outputs, name=name)

    if path is not None:
        load_weights_file(model, path)
    return model


def load_weights_file(model: keras.Model, path: str | os.PathLike[str]) -> None:
    """Load ``path`` into ``model``: Keras 3 files natively, Keras 2 HDF5 files strictly by layer name."""
    path = Path(path)
    if path.name.endswith((".weights.h5", ".keras")):
        model.load_weights(path)
        return
    load_legacy_h5_by_name(model, path)


def load_legacy_h5_by_name(model: keras.Model, path: Path) -> None:
    """Load a Keras 2 HDF5 file (``save_weights`` or a full ``save``) into ``model`` by layer name.

    Unlike Keras' own by-name loader, a model layer with weights that the file lacks is an error, not a
    silently random layer: that is how the _notop file, or another network's file, would otherwise slip by.
    Layers in the file that the model lacks (e.g. "predictions" when ``include_top=False``) are ignored.
    """
    try:
        file = h5py.File(path, "r")
    except OSError as error:
        raise WeightsError(f"cannot read {path} as an HDF5 weights file ({error}). Received: path={path}") from error
    with file:
        group = file["model_weights"] if "layer_names" not in file.attrs and "model_weights" in file else file
        if "layer_names" not in group.attrs and "layer_names0" not in group.attrs:
            raise WeightsError(
                f"{path} is not a Keras 2 weights file (no 'layer_names' attribute). Received: path={path}"
            )
        layer_names = _h5_strings(group.attrs, "layer_names")
        saved = {name: _h5_strings(group[name].attrs, "weight_names") for name in layer_names}
        needed = [layer for layer in model.layers if layer.weights]
        missing = [layer.name for layer in needed if not saved.get(layer.name)]
        if missing:
            raise WeightsError(
                f"{path} has no weights for layer(s) {', '.join(missing)}; it is not the full "
                f"VGG16-Places365 release this model needs. Received: path={path}"
            )
        for layer in needed:
            # One layer at a time: fc1 alone is 400 MB.
            values = [np.asarray(group[layer.name][weight]) for weight in saved[layer.name]]
            try:
                layer.set_weights(values)
            except ValueError as error:
                shapes = [v.shape for v in values]
                raise WeightsError(
                    f"{path}: the weights of layer {layer.name} do not fit ({error}). Received: shapes={shapes}"
                ) from error


def _h5_strings(attrs: h5py.AttributeManager, name: str) -> list[str]:
    """A list-of-strings attribute, including Keras' chunked form (``name0``, ``name1``...) for long lists."""
    if name in attrs:
        values = list(attrs[name])
    else:
        values = []
        chunk = 0
        while f"{name}{chunk}" in attrs:
            values.extend(attrs[f"{name}{chunk}"])
            chunk += 1
    return [v.decode("utf8") if isinstance(v, bytes) else str(v) for v in values]

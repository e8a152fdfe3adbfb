"""Any ``keras.applications`` model by name, or a saved ``.keras`` model and one of its layers, as a backbone.

Both builders return ``(model, input_size)`` where the model takes RGB pixel values 0..255 as float32
(batch, size, size, 3) and outputs ``{"embedding": (batch, dim)}``, like every backbone in this project.
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
from keras import layers

from recommender.download import WeightsError
from recommender.errors import BadInput


@dataclass(frozen=True)
class KerasApplication:
    module: str  # the keras.applications submodule whose preprocess_input belongs to this model
    input_size: int  # the resolution its ImageNet weights were trained at


# EfficientNet, EfficientNetV2, ConvNeXt and MobileNetV3 already scale inside their graphs, so their
# preprocess_input is an identity; the others (caffe, tf or torch modes) really change the pixels.
APPLICATIONS: dict[str, KerasApplication] = {
    "VGG16": KerasApplication("vgg16", 224),
    "VGG19": KerasApplication("vgg19", 224),
    "ResNet50": KerasApplication("resnet", 224),
    "ResNet101": KerasApplication("resnet", 224),
    "ResNet152": KerasApplication("resnet", 224),
    "ResNet50V2": KerasApplication("resnet_v2", 224),
    "ResNet101V2": KerasApplication("resnet_v2", 224),
    "ResNet152V2": KerasApplication("resnet_v2", 224),
    "InceptionV3": KerasApplication("inception_v3", 299),
    "InceptionResNetV2": KerasApplication("inception_resnet_v2", 299),
    "Xception": KerasApplication("xception", 299),
    "MobileNet": KerasApplication("mobilenet", 224),
    "MobileNetV2": KerasApplication("mobilenet_v2", 224),
    "MobileNetV3Small": KerasApplication("mobilenet_v3", 224),
    "MobileNetV3Large": KerasApplication("mobilenet_v3", 224),
    "DenseNet121": KerasApplication("densenet", 224),
    "DenseNet169": KerasApplication("densenet", 224),
    "DenseNet201": KerasApplication("densenet", 224),
    "NASNetMobile": KerasApplication("nasnet", 224),
    "NASNetLarge": KerasApplication("nasnet", 331),
    "EfficientNetB0": KerasApplication("efficientnet", 224),
    "EfficientNetB1": KerasApplication("efficientnet", 240),
    "EfficientNetB2": KerasApplication("efficientnet", 260),
    "EfficientNetB3": KerasApplication("efficientnet", 300),
    "EfficientNetB4": KerasApplication("efficientnet", 380),
    "EfficientNetB5": KerasApplication("efficientnet", 456),
    "EfficientNetB6": KerasApplication("efficientnet", 528),
    "EfficientNetB7": KerasApplication("efficientnet", 600),
    "EfficientNetV2B0": KerasApplication("efficientnet_v2", 224),
    "EfficientNetV2B1": KerasApplication("efficientnet_v2", 240),
    "EfficientNetV2B2": KerasApplication("efficientnet_v2", 260),
    "EfficientNetV2B3": KerasApplication("efficientnet_v2", 300),
    "EfficientNetV2S": KerasApplication("efficientnet_v2", 384),
    "EfficientNetV2M": KerasApplication("efficientnet_v2", 480),
    "EfficientNetV2L": KerasApplication("efficientnet_v2", 480),
    "ConvNeXtTiny": KerasApplication("convnext", 224),
    "ConvNeXtSmall": KerasApplication("convnext", 224),
    "ConvNeXtBase": KerasApplication("convnext", 224),
    "ConvNeXtLarge": KerasApplication("convnext", 224),
    "ConvNeXtXLarge": KerasApplication("convnext", 224),
}


@keras.saving.register_keras_serializable(package="wanderlens")
class ApplicationPreprocess(layers.Layer):
    """A keras.applications ``preprocess_input`` as a layer, so the model takes raw 0..255 RGB pixels."""

    def __init__(self, module: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if not hasattr(keras.applications, module):
            raise BadInput(f"no such keras.applications module. Received: module={module!r}")
        self.module = module

    def call(self, images: Any) -> Any:
        return getattr(keras.applications, self.module).preprocess_input(images)

    def compute_output_shape(self, input_shape: tuple[int | None, ...]) -> tuple[int | None, ...]:
        return input_shape

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "module": self.module}


def build_keras_application(
    app_name: str,
    *,
    weights: str | os.PathLike[str] | None = "imagenet",
    input_size: int | None = None,
) -> tuple[keras.Model, int]:
    """A ``keras.applications`` model without its classifier, average-pooled, as a backbone.

    ``app_name``: e.g. "ResNet50", "EfficientNetB0", "MobileNetV3Small", "ConvNeXtTiny" (see APPLICATIONS).
    Returns ``(model, input_size)``; ``input_size`` defaults to the resolution of the ImageNet weights. The model
    takes RGB 0..255 float32 and applies that application's own ``preprocess_input`` inside the graph.
    ``weights``: "imagenet" (downloaded and cached by Keras, so it needs internet the first time), a local
    file of that application's no-top weights, or None (random).
    """
    spec = APPLICATIONS.get(app_name)
    if spec is None:
        examples = ", ".join(("ResNet50", "EfficientNetB0", "MobileNetV3Small", "ConvNeXtTiny"))
        raise BadInput(
            f"unknown keras.applications model; choose one of {len(APPLICATIONS)} names such as {examples} "
            f"(all: recommender.backbones.keras_apps.APPLICATIONS). Received: app_name={app_name!r}"
        )
    size = spec.input_size if input_size is None else input_size
    if size < 32:
        raise BadInput(f"input_size must be at least 32 pixels. Received: input_size={input_size!r}")
    if weights not in (None, "imagenet"):
        weights = os.fspath(weights)
        if not Path(weights).is_file():
            raise WeightsError(
                f"no such weights file: {weights}. Pass an existing file, 'imagenet' or None. "
                f"Received: weights={weights!r}"
            )

    constructor = getattr(keras.applications, app_name)
    try:
        base = constructor(include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg")
    except Exception as error:
        if weights == "imagenet" and _is_download_failure(error):
            raise WeightsError(
                f"could not download the ImageNet weights of {app_name} ({error}). On a machine with internet, "
                f"run keras.applications.{app_name}(include_top=False, weights='imagenet') once: Keras caches "
                "the file under ~/.keras/models. Copy it here and pass it as a local weights file "
                "(--weights PATH)."
            ) from error
        raise

    image = keras.Input(shape=(size, size, 3), dtype="float32", name="image")
    x = ApplicationPreprocess(spec.module, name="preprocess")(image)
    model = keras.Model(image, {"embedding": base(x)}, name=f"{base.name}_embedding")
    return model, size


def _is_download_failure(error: BaseException) -> bool:
    """Whether Keras' get_file failed to fetch or verify a file: it re-raises URL errors as plain Exceptions."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, urllib.error.URLError | OSError):
            return True
        if "URL fetch failure" in str(cause) or "corrupted file" in str(cause):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def build_saved_model(
    path: str | os.PathLike[str], layer: str, *, input_size: int | None = None
) -> tuple[keras.Model, int]:
    """A saved ``.keras`` model and a layer name whose output (global-average-pooled if it is a 4-D map)
    becomes the embedding.

    The saved model must take RGB 0..255 float32 images of shape (batch, size, size, 3), its preprocessing
    included. ``input_size`` is read from the model when its input has a fixed size (passing a different one
    is an error) and is required when it does not. Returns ``(model, input_size)``.
    """
    path = Path(path)
    if path.suffix != ".keras":
        raise BadInput(f"expected a model saved as `.keras`. Received: path={os.fspath(path)!r}")
    if not path.is_file():
        raise WeightsError(f"no such saved model: {path}. Received: path={os.fspath(path)!r}")
    saved = keras.saving.load_model(path, compile=False)

    if len(saved.inputs) != 1:
        raise BadInput(f"{path.name} must have exactly one image input. Received: inputs={len(saved.inputs)}")
    _, height, width, channels = saved.inputs[0].shape
    if channels != 3 or height != width:
        raise BadInput(
            f"{path.name} must take square RGB images (batch, size, size, 3). "
            f"Received: input_shape={tuple(saved.inputs[0].shape)}"
        )
    if height is None:
        if input_size is None:
            raise BadInput(f"{path.name} has no fixed input size; pass one. Received: input_size=None")
        size = input_size
    elif input_size is not None and input_size != height:
        raise BadInput(f"{path.name} takes {height}x{width} images. Received: input_size={input_size}")
    else:
        size = height

    names = [candidate.name for candidate in saved.layers]
    if layer not in names:
        raise BadInput(
            f"{path.name} has no layer {layer!r}; its last layers are {', '.join(names[-6:])}. "
            f"Received: layer={layer!r}"
        )
    features = saved.get_layer(layer).output
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name=f"{layer}_avg_pool")(features)
    elif len(features.shape) != 2:
        raise BadInput(
            f"layer {layer!r} must output (batch, dim) or a (batch, h, w, c) map. "
            f"Received: shape={tuple(features.shape)}"
        )
    model = keras.Model(saved.inputs, {"embedding": features}, name=f"{saved.name}_{layer}")
    return model, size

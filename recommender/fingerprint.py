"""What makes two sets of vectors comparable: the backbone's identity, stored with every index."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class BackboneFingerprint:
    """Vectors from two extractors can only be compared when every field here is equal."""

    name: str
    weights_sha256: str
    layer: str
    input_size: int
    preprocessing: str
    dim: int

    @property
    def key(self) -> str:
        """A short stable id of the whole fingerprint, for cache keys and log lines."""
        encoded = json.dumps(asdict(self), sort_keys=True).encode()
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
        )

    def describe(self) -> str:
        return f"{self.name} ({self.layer}, {self.dim}-d, {self.input_size}px, weights {self.weights_sha256[:12]})"


@dataclass(frozen=True)
class ExtractionOptions:
    """How a backbone turns a photo into its fingerprint, beyond its weights: kept in the index so that the
    worker extracts queries exactly as the catalog was extracted."""

    pooling: str = "avg"  # "avg" or "gem" (generalised mean, p=3)
    scales: tuple[float, ...] = (1.0,)  # extra views of the photo, shrunk by each factor
    trim_borders: bool = True  # cut flat white/black bands (letterboxing, frames) before resizing

    def to_dict(self) -> dict[str, object]:
        return {"pooling": self.pooling, "scales": list(self.scales), "trim_borders": self.trim_borders}

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> ExtractionOptions:
        return cls(
            pooling=str(data.get("pooling", "avg")),
            scales=tuple(float(f) for f in data.get("scales", (1.0,))),  # type: ignore[union-attr]
            trim_borders=bool(data.get("trim_borders", False)),
        )


class FingerprintMismatch(ValueError):
    """An index built with one backbone was asked to serve queries embedded by another."""

    def __init__(self, index: BackboneFingerprint, extractor: BackboneFingerprint) -> None:
        differing = [
            field
            for field in ("name", "weights_sha256", "layer", "input_size", "preprocessing", "dim")
            if getattr(index, field) != getattr(extractor, field)
        ]
        super().__init__(
            f"the index was built with {index.describe()} but the extractor is {extractor.describe()} "
            f"(they differ in: {', '.join(differing)}). Rebuild the index with `wanderlens index` "
            f"or choose the matching --backbone. Received: index={index.key} extractor={extractor.key}"
        )

"""A tiny stand-in extractor and generated catalogs, for testing the loop's mechanics quickly.

The end-to-end tests use the real network; these make batching, crashes and reloads cheap to test.
"""

from __future__ import annotations

import csv
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image

from recommender.extractor import Embedded, SceneHint
from recommender.fingerprint import BackboneFingerprint, ExtractionOptions
from recommender.images import load_for_model

POISON_RGB = (255, 0, 255)
_LEVELS = np.linspace(0.0, 1.0, 5)
_CENTRES = np.stack(np.meshgrid(_LEVELS, _LEVELS, _LEVELS, indexing="ij"), axis=-1).reshape(-1, 3)
_SIGMA = 0.12


class ColourExtractor:
    """Fingerprint = the photo's mean colour and its spread, as a unit vector; counts its forward passes."""

    input_size = 32
    options = ExtractionOptions(trim_borders=False)

    def __init__(self, *, delay_s: float = 0.0, poison: tuple[int, int, int] | None = None) -> None:
        self.delay_s = delay_s
        self.poison = poison
        self.forward_passes = 0
        self.batch_sizes: list[int] = []
        self._lock = threading.Lock()

    @property
    def fingerprint(self) -> BackboneFingerprint:
        return BackboneFingerprint("colour-test", "none", "soft-colour-histogram", self.input_size, "test", 125)

    def preprocess(self, source: bytes | str | Path) -> np.ndarray:
        return load_for_model(source, self.input_size)

    def embed(self, images: np.ndarray) -> Embedded:
        with self._lock:
            self.forward_passes += 1
            self.batch_sizes.append(len(images))
        if self.delay_s:
            time.sleep(self.delay_s)
        pixels = images.astype(np.float32) / 255.0
        means = pixels.mean(axis=(1, 2))
        if self.poison is not None:
            target = np.asarray(self.poison, dtype=np.float32) / 255.0
            if np.any(np.all(np.abs(means - target) < 0.05, axis=1)):
                raise RuntimeError("poisoned photo")
        # A soft colour histogram: similar colours get similar vectors, distinct ones nearly orthogonal ones.
        distances = np.linalg.norm(means[:, None, :] - _CENTRES[None, :, :], axis=2)
        vectors = np.exp(-(distances**2) / (2 * _SIGMA**2))
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        hints = [[SceneHint("colour swatch", 0.9)] for _ in images]
        return Embedded(vectors.astype(np.float32), hints)


def photo_bytes(rgb: tuple[int, int, int], *, size: int = 64, noise: int = 10, seed: int = 0) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    base = np.full((size, size, 3), rgb, dtype=np.int16)
    pixels = np.clip(base + rng.integers(-noise, noise + 1, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def catalog_colour(n: int) -> tuple[int, int, int]:
    """Well-separated colours on a 5x5x5 grid, so no two catalog photos are near-duplicates."""
    return (n % 5 * 60 + 8, (n // 5) % 5 * 60 + 8, (n // 25) % 5 * 60 + 8)


def colour_catalog(folder: Path, count: int, *, seed: int = 1) -> Path:
    """A catalog of ``count`` (at most 125) flat-colour photos named "Place N", with a catalog.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "catalog.csv").open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["id", "image", "name", "city", "country"])
        for n in range(count):
            name = f"p{n:04d}.jpg"
            (folder / name).write_bytes(photo_bytes(catalog_colour((n * 7 + seed) % 125), seed=n))
            writer.writerow([f"p{n:04d}", name, f"Place {n}", f"City {n % 7}", "Testland"])
    return folder

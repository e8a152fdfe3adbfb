"""The vectors `bench.ann` searches: real fingerprints, realistic distractors, held-out queries, exact neighbours.

Everything is cached under ``--cache`` (default ``/tmp/wanderlens-ann-bench``), so a second run skips the
extraction (about a minute), the distractors (about 10 s per 100k) and the exact ground truth (a few minutes at 1M).

* **Real descriptors**: every photo in ``../shared/datasets/*/images`` (about 2,950), fingerprinted by the default
  backbone with `recommender.pipeline.embed_paths`, then put in the space the index searches: the catalog's
  whitening as `wanderlens index` learns it by default (`refine.DEFAULT_REFINE`: partial, keeping 768 directions,
  so 896-d with the colour), learned on the real base photos. DBA is left out: the index skips it above 100,000
  photos (`refine.MAX_DBA_PHOTOS`), which is every size this bench runs.
* **Queries**: ``QUERIES`` real descriptors chosen at random and kept out of the base.
* **Distractors** fill the base up to N, half of each kind, unit-normalised, stored as float16:
  - *scenes*: a Gaussian with the real base's mean and its top ``RANK`` principal directions (their variances),
    plus isotropic noise carrying the variance left over, so the spectrum matches the real one;
  - *near-copies*: a real base photo moved by such a Gaussian sample of random strength (cosine to the photo
    about 0.55-0.9), so that the real photos sit in dense neighbourhoods as in a large catalog of one place.
* **Ground truth**: the exact top-``GT_K`` of each query over the float16 base, computed in chunks of rows
  converted to float32, merged, and cached.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.common import SHARED_DATASETS

DEFAULT_CACHE = Path("/tmp/wanderlens-ann-bench")
QUERIES = 500
RANK = 256
GT_K = 100
CHUNK_ROWS = 65_536
PHOTO_SUFFIXES = {".jpg", ".jpeg", ".png"}


class NoRealPhotos(RuntimeError):
    """../shared/datasets is missing or holds no photos: the bench has no real descriptors to start from."""


@dataclass(frozen=True)
class BenchData:
    base: np.ndarray  # (N, dim) float16, memory-mapped from the cache
    base_path: Path
    queries: np.ndarray  # (QUERIES, dim) float32, real photos not in the base
    real_in_base: int
    description: str


def photo_paths(datasets: Path = SHARED_DATASETS) -> list[Path]:
    if not datasets.is_dir():
        raise NoRealPhotos(f"{datasets} is missing (the evaluation photos are not in the repository)")
    paths = sorted(p for p in datasets.glob("*/images/**/*") if p.suffix.lower() in PHOTO_SUFFIXES)
    if not paths:
        raise NoRealPhotos(f"no photos under {datasets}/*/images")
    return paths


def real_descriptors(cache: Path, datasets: Path = SHARED_DATASETS) -> tuple[np.ndarray, int]:
    """Raw fingerprints of every dataset photo (extracted once, then cached) and the colour columns' count."""
    paths = photo_paths(datasets)
    key = hashlib.sha256("\n".join(str(p) for p in paths).encode()).hexdigest()[:12]
    cached = cache / f"real-{key}.npz"
    if cached.exists():
        with np.load(cached) as data:
            return np.asarray(data["raw"]), int(data["tail"])
    from bench.common import quiet_tensorflow

    quiet_tensorflow()
    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor
    from recommender.pipeline import embed_paths

    started = time.perf_counter()
    extractor = Extractor(load_backbone())
    embedded = embed_paths(paths, extractor, progress=True, description="Fingerprinting dataset photos")
    raw = np.stack([embedded.vectors[i] for i in sorted(embedded.vectors)]).astype(np.float32)
    tail = extractor.options.unwhitened_tail
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(cached, raw=raw, tail=np.int64(tail))
    print(f"real descriptors: {len(raw)} photos fingerprinted in {time.perf_counter() - started:.0f}s -> {cached}")
    return raw, tail


def split_real(raw: np.ndarray, tail: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(base, queries) in the searched space: the whitening is learned on the base photos only."""
    from recommender.refine import DEFAULT_REFINE, Whitening, unit

    order = np.random.default_rng(seed).permutation(len(raw))
    query_rows, base_rows = order[:QUERIES], order[QUERIES:]
    whitening = Whitening.learn(raw[base_rows], DEFAULT_REFINE.whitening, passthrough=tail, keep=DEFAULT_REFINE.dims)
    space = whitening.apply if whitening is not None else unit
    return space(raw[base_rows]), space(raw[query_rows])


def _spectrum(real: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """mean, top principal directions (rank, dim), their standard deviations, and the leftover noise's."""
    mean = real.mean(axis=0)
    centred = (real - mean).astype(np.float64)
    _, singular, directions = np.linalg.svd(centred, full_matrices=False)
    rank = min(RANK, len(real) - 1)
    variances = singular**2 / len(real)
    leftover = float(variances[rank:].sum()) / real.shape[1]
    return mean, directions[:rank].astype(np.float32), np.sqrt(variances[:rank]).astype(np.float32), leftover**0.5


def _fill_distractors(out: np.ndarray, real: np.ndarray, rng: np.random.Generator) -> None:
    mean, directions, scales, noise = _spectrum(real)
    dim = real.shape[1]
    for start in range(0, len(out), CHUNK_ROWS):
        rows = min(CHUNK_ROWS, len(out) - start)
        sample = (rng.standard_normal((rows, len(scales)), dtype=np.float32) * scales) @ directions
        sample += noise * rng.standard_normal((rows, dim), dtype=np.float32)
        scenes = rows // 2
        sample[:scenes] += mean
        # Near-copies: a real photo plus a centred sample of random strength (relative to the photo's unit length).
        strength = rng.uniform(0.5, 1.5, size=(rows - scenes, 1)).astype(np.float32)
        centred = sample[scenes:] / np.linalg.norm(sample[scenes:], axis=1, keepdims=True)
        sample[scenes:] = real[rng.integers(0, len(real), rows - scenes)] + strength * centred
        sample /= np.linalg.norm(sample, axis=1, keepdims=True)
        out[start : start + rows] = sample


def base_matrix(size: int, real: np.ndarray, cache: Path, seed: int) -> tuple[np.ndarray, Path]:
    """The (size, dim) float16 base: the real base photos spread over it, distractors elsewhere; memory-mapped."""
    dim = real.shape[1]
    path = cache / f"base-{size}-{dim}-{len(real)}-s{seed}.f16.npy"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        out = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float16, shape=(size, dim))
        rng = np.random.default_rng(seed + size)
        _fill_distractors(out, real, rng)
        keep = min(len(real), size)
        out[np.sort(rng.choice(size, keep, replace=False))] = real[:keep]
        out.flush()
        del out
        partial.rename(path)
        print(f"N={size}: base of {size} x {dim} float16 written in {time.perf_counter() - started:.0f}s -> {path}")
    return np.load(path, mmap_mode="r"), path


def exact_neighbours(base: np.ndarray, queries: np.ndarray, path: Path, k: int = GT_K) -> np.ndarray:
    """The exact top-k rows of each query (best first), chunk by chunk over the float16 base; cached beside it."""
    cached = path.with_name(path.name.replace(".f16.npy", f".gt{k}-q{len(queries)}.npy"))
    if cached.exists():
        return np.load(cached)
    started = time.perf_counter()
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(base), CHUNK_ROWS):
        block = np.asarray(base[start : start + CHUNK_ROWS], dtype=np.float32)
        scores = np.concatenate([best_scores, queries @ block.T], axis=1)
        rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(start, start + len(block)), scores[:, k:].shape)], 1
        )
        keep = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores, best_rows = np.take_along_axis(scores, keep, 1), np.take_along_axis(rows, keep, 1)
    order = np.argsort(-best_scores, axis=1, kind="stable")
    truth = np.take_along_axis(best_rows, order, 1)
    np.save(cached, truth)
    print(f"exact top-{k} of {len(queries)} queries over N={len(base)} in {time.perf_counter() - started:.0f}s")
    return truth


def real_split(cache: Path, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(base photos, queries) of the real descriptors, in the searched space."""
    raw, tail = real_descriptors(cache)
    return split_real(raw, tail, seed)


def bench_data(size: int, real: np.ndarray, queries: np.ndarray, cache: Path, seed: int) -> BenchData:
    base, path = base_matrix(size, real, cache, seed)
    real_in_base = min(len(real), size)
    description = (
        f"{real_in_base} real photos + {size - real_in_base} distractors (half Gaussian scenes with the real "
        f"spectrum, half near-copies of real photos), {len(queries)} held-out real queries"
    )
    return BenchData(base, path, queries.astype(np.float32), real_in_base, description)

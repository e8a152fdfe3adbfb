"""Training-free refinements of raw fingerprints: whitening learned from the catalog, database-side augmentation
(DBA) and query expansion (QE) — the image-retrieval field's standard post-processing.

Raw fingerprints of a classification network spend most of their length on what every photo shares; a
whitening learned from the catalog itself evens that out so that what tells places apart counts. "Partial"
whitening (eigenvalues to the power -1/4, with shrinkage) keeps scene-level similarity, which full whitening
(-1/2) trades away for same-place matching.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

logger = logging.getLogger(__name__)

WHITENINGS = ("none", "partial", "full")
WHITENING_POWER = {"partial": 0.25, "full": 0.5}
WHITENING_DIMS = 768
WHITENING_SHRINK = {"partial": 4.0, "full": 1.0}  # added to each eigenvalue, in units of their mean
# Fewer photos than this say nothing reliable about the catalog's directions (whitening) or about what each photo's
# nearest neighbours have in common (DBA: with 5 neighbours in a dozen photos, everything blurs into everything).
MIN_PHOTOS_TO_LEARN_FROM = 32
# DBA compares every catalog photo with every other: 100,000 photos take minutes on two cores, a million hours.
MAX_DBA_PHOTOS = 100_000
_CHUNK = 4096


@dataclass(frozen=True)
class RefineOptions:
    """How raw fingerprints become the vectors searched; stored with every index."""

    whitening: str = "partial"
    dba: int = 0  # neighbours averaged into each catalog vector (0: off)
    query_expansion: int = 0  # top results averaged into each query before a second search (0: off)
    alpha: float = 3.0  # weight of a neighbour = similarity ** alpha (alpha-DBA / alpha-QE)
    # Directions the whitening keeps, those of largest variance first (0: every one). The rest change neither dev
    # figure beyond the noise (README, "Chosen on one half"), and dropping them makes every query's whitening and
    # search, and the catalog in memory, about a third of the size.
    dims: int = WHITENING_DIMS

    def __post_init__(self) -> None:
        if self.whitening not in WHITENINGS:
            raise ValueError(f"whitening must be one of {WHITENINGS}. Received: whitening={self.whitening!r}")
        if self.dba < 0 or self.query_expansion < 0 or self.dims < 0:
            raise ValueError(f"dba, query_expansion and dims count (0 or more). Received: {self}")

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> RefineOptions:
        return cls(
            whitening=str(data.get("whitening", "none")),
            dba=int(data.get("dba", 0)),  # type: ignore[arg-type]
            query_expansion=int(data.get("query_expansion", 0)),  # type: ignore[arg-type]
            alpha=float(data.get("alpha", 3.0)),  # type: ignore[arg-type]
            dims=int(data.get("dims", 0)),  # type: ignore[arg-type]  # indexes from before it kept every direction
        )


DEFAULT_REFINE = RefineOptions(whitening="partial", dba=5)  # measured in the README's ablation
NO_REFINE = RefineOptions(whitening="none")


def unit(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class Whitening:
    """x -> unit((x - mean) @ projection), learned from the catalog's own raw fingerprints.

    With ``passthrough`` > 0 the last that many columns (the colour histogram) are left as they are: only the
    network's part is whitened, and it keeps the length it had beside them, so their relative weight is the one
    chosen at extraction.
    """

    mean: np.ndarray
    projection: np.ndarray
    passthrough: int = 0

    @property
    def dim(self) -> int:
        """The length of the vectors it makes."""
        return int(self.projection.shape[1]) + self.passthrough

    @classmethod
    def learn(cls, vectors: np.ndarray, kind: str, *, passthrough: int = 0, keep: int = 0) -> Whitening | None:
        """``keep``: the number of directions kept, those of largest variance (0: all of them)."""
        if kind == "none" or len(vectors) < MIN_PHOTOS_TO_LEARN_FROM:
            return None
        data = np.asarray(vectors, dtype=np.float64)
        data = data[:, : data.shape[1] - passthrough]
        mean = data.mean(axis=0)
        centred = data - mean
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(data))
        eigenvalues = np.maximum(eigenvalues, 0.0)
        scale = np.power(eigenvalues + WHITENING_SHRINK[kind] * eigenvalues.mean(), -WHITENING_POWER[kind])
        projection = eigenvectors * scale
        if 0 < keep < projection.shape[1]:
            projection = projection[:, -keep:]  # eigh sorts the eigenvalues in ascending order
        return cls(mean.astype(np.float32), np.ascontiguousarray(projection, dtype=np.float32), passthrough)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        vectors = np.asarray(vectors, dtype=np.float32)
        head, tail = vectors[..., : self.mean.shape[0]], vectors[..., self.mean.shape[0] :]
        whitened = unit((head - self.mean) @ self.projection)
        if not self.passthrough:
            return whitened
        length = np.linalg.norm(head, axis=-1, keepdims=True)
        return unit(np.concatenate([whitened * length, tail], axis=-1))

    def save(self, path: Path) -> None:
        with path.open("wb") as file:
            np.savez(file, mean=self.mean, projection=self.projection, passthrough=np.int64(self.passthrough))

    @classmethod
    def load(cls, path: Path) -> Whitening:
        with np.load(path, allow_pickle=False) as data:
            passthrough = int(data["passthrough"]) if "passthrough" in data.files else 0
            return cls(np.asarray(data["mean"]), np.asarray(data["projection"]), passthrough)


def weighted_neighbours(
    queries: np.ndarray,
    database: np.ndarray,
    k: int,
    alpha: float,
    *,
    keep_query: bool,
    skip_same_row: bool = False,
) -> np.ndarray:
    """unit([q +] sum of its k best database rows, each weighted by similarity ** alpha), chunk by chunk.

    ``skip_same_row``: query i is database row i (leave-one-out evaluation), so that row is not a neighbour.
    """
    out = np.empty_like(queries, dtype=np.float32)
    k = min(k, len(database))
    starts = range(0, len(queries), _CHUNK)
    for start in tqdm(starts, desc="Neighbours", unit="chunk", disable=len(starts) < 4, leave=False):
        block = queries[start : start + _CHUNK]
        scores = block @ database.T
        if skip_same_row:
            rows = np.arange(len(block))
            scores[rows, start + rows] = -np.inf
        best = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        weights = np.power(np.maximum(np.take_along_axis(scores, best, axis=1), 0.0), alpha)
        pooled = np.einsum("qk,qkd->qd", weights, database[best])
        out[start : start + len(block)] = block + pooled if keep_query else pooled
    return unit(out)


def augment_database(vectors: np.ndarray, k: int, alpha: float) -> np.ndarray:
    """DBA: each catalog vector moves toward its k nearest catalog neighbours (itself not counted twice)."""
    if k <= 0 or len(vectors) < MIN_PHOTOS_TO_LEARN_FROM:
        return vectors
    if len(vectors) > MAX_DBA_PHOTOS:
        logger.warning(
            "DBA skipped: %d catalog photos is more than %d (it compares every photo with every other)",
            len(vectors),
            MAX_DBA_PHOTOS,
        )
        return vectors
    return weighted_neighbours(vectors, vectors, k + 1, alpha, keep_query=False)  # its own row is among the best


def expand_query(
    queries: np.ndarray, database: np.ndarray, k: int, alpha: float, *, skip_same_row: bool = False
) -> np.ndarray:
    """alpha-QE: each query moves toward its k best results; search again with the result."""
    if k <= 0 or len(database) == 0:
        return queries
    return weighted_neighbours(np.atleast_2d(queries), database, k, alpha, keep_query=True, skip_same_row=skip_same_row)


def refine_catalog(
    raw: np.ndarray, options: RefineOptions, *, unwhitened_tail: int = 0
) -> tuple[np.ndarray, Whitening | None]:
    """The vectors to search, and the whitening that queries must go through too.

    ``unwhitened_tail``: trailing columns the whitening leaves alone (`ExtractionOptions.unwhitened_tail`).
    """
    whitening = Whitening.learn(raw, options.whitening, passthrough=unwhitened_tail, keep=options.dims)
    vectors = whitening.apply(raw) if whitening is not None else unit(np.asarray(raw, dtype=np.float32))
    return augment_database(vectors, options.dba, options.alpha), whitening

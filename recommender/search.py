"""Top-k search over a matrix of unit vectors: exact cosine similarity, on the GPU when Keras has one.

``VectorIndex`` is the small interface the rest of the code relies on, so that an approximate index (FAISS, HNSW)
can take over for catalogs beyond about a million photos without touching the worker or the taste functions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

NEAR_DUPLICATE_SIMILARITY = 0.97
_DUPLICATE_SCAN_NEIGHBOURS = 8


@dataclass(frozen=True)
class Match:
    """A catalog row and its cosine similarity to the query."""

    position: int
    score: float


class VectorIndex(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def search(
        self, queries: np.ndarray, k: int, *, exclude: Sequence[Collection[int]] | None = None
    ) -> list[list[Match]]: ...

    def vectors(self, positions: Sequence[int]) -> np.ndarray: ...


def _device_matrix(matrix: np.ndarray) -> object | None:
    """The matrix as a tensor on the accelerator, or None when there is none (numpy's BLAS is as fast on CPU)."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            return None
    elif backend == "jax":
        import jax

        if jax.default_backend() == "cpu":
            return None
    elif backend == "torch":
        import torch

        if not torch.cuda.is_available():
            return None
    else:
        return None
    # Kept transposed once: transposing per query copies the whole matrix on JAX and TensorFlow.
    return keras.ops.transpose(keras.ops.convert_to_tensor(matrix))


class ExactIndex:
    """Brute-force inner product over unit vectors: exact, and memory-bandwidth bound."""

    def __init__(self, matrix: np.ndarray, *, use_accelerator: bool = True) -> None:
        if matrix.ndim != 2:
            raise ValueError(f"expected a 2-D matrix of vectors. Received: shape={matrix.shape}")
        self._matrix = matrix
        self._device = _device_matrix(matrix) if use_accelerator and len(matrix) else None

    @property
    def size(self) -> int:
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    @property
    def on_accelerator(self) -> bool:
        return self._device is not None

    def vectors(self, positions: Sequence[int]) -> np.ndarray:
        return np.asarray(self._matrix[np.asarray(positions, dtype=np.int64)], dtype=np.float32)

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """Similarity of each query to every row: (queries, size) float32."""
        queries = np.asarray(queries, dtype=self._matrix.dtype)
        if self._device is not None:
            import keras

            product = keras.ops.matmul(keras.ops.convert_to_tensor(queries), self._device)
            return np.asarray(keras.ops.convert_to_numpy(product), dtype=np.float32)
        return np.asarray(queries @ self._matrix.T, dtype=np.float32)

    def search(
        self, queries: np.ndarray, k: int, *, exclude: Sequence[Collection[int]] | None = None
    ) -> list[list[Match]]:
        """The k best rows for each query, best first, leaving out each query's ``exclude`` positions."""
        if k < 1:
            raise ValueError(f"k must be a positive integer. Received: k={k}")
        queries = np.atleast_2d(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns. Received: shape={queries.shape}")
        scores = self.scores(queries)
        results = []
        for row, similarity in enumerate(scores):
            skip = exclude[row] if exclude is not None else ()
            results.append(top_k(similarity, k, exclude=skip))
        return results


def top_k(similarity: np.ndarray, k: int, *, exclude: Collection[int] = ()) -> list[Match]:
    """Best-first matches from one row of scores; argpartition keeps this O(n) rather than a full sort."""
    want = min(len(similarity), k + len(exclude))
    if want <= 0:
        return []
    candidates = np.argpartition(-similarity, want - 1)[:want] if want < len(similarity) else np.arange(want)
    if want < len(similarity):
        # argpartition keeps an arbitrary few of the rows tied with the last score, in arbitrary order: keep them
        # all, in position order, so that ties rank by position whatever k is (pages then never overlap).
        candidates = np.flatnonzero(similarity >= similarity[candidates].min())
    ordered = candidates[np.argsort(-similarity[candidates], kind="stable")]
    matches = [Match(int(i), float(similarity[i])) for i in ordered if int(i) not in exclude]
    return matches[:k]


def near_duplicate_groups(matrix: np.ndarray, *, threshold: float = NEAR_DUPLICATE_SIMILARITY) -> np.ndarray:
    """For each row, the first row of its group of near-identical photos (itself when it has none).

    The same photo added twice, or a crop of it, would otherwise fill a result list with one place.
    Neighbours are found in chunks so memory stays bounded; the groups are connected components.
    """
    size = len(matrix)
    parent = np.arange(size)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    neighbours = min(_DUPLICATE_SCAN_NEIGHBOURS, size)
    for start in range(0, size, 1024):
        block = np.asarray(matrix[start : start + 1024], dtype=np.float32) @ np.asarray(matrix, dtype=np.float32).T
        for offset, row in enumerate(block):
            i = start + offset
            for j in np.argpartition(-row, neighbours - 1)[:neighbours]:
                if j != i and row[j] >= threshold:
                    a, b = find(i), find(int(j))
                    parent[max(a, b)] = min(a, b)
    return np.array([find(i) for i in range(size)], dtype=np.int64)


def collapse_duplicates(matches: list[Match], groups: np.ndarray | None) -> list[Match]:
    """Keep only the best match of each near-duplicate group, in order."""
    if groups is None:
        return matches
    seen: set[int] = set()
    kept = []
    for match in matches:
        group = int(groups[match.position])
        if group not in seen:
            seen.add(group)
            kept.append(match)
    return kept

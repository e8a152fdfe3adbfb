"""Top-k search over a matrix of unit vectors: exact cosine similarity, on the GPU when Keras has one.

``VectorIndex`` is the small interface the rest of the code relies on, so that an approximate index (FAISS, HNSW)
can take over for catalogs beyond about a million photos without touching the worker or the taste functions.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Literal, NamedTuple, Protocol, get_args

import numpy as np

NEAR_DUPLICATE_SIMILARITY = 0.97
_DUPLICATE_SCAN_NEIGHBOURS = 8


class Match(NamedTuple):
    """A catalog row and its cosine similarity to the query.

    A named tuple rather than a frozen dataclass: a search makes one per overfetched row (hundreds a photo), and a
    frozen dataclass takes three times as long to build (README, Benchmarks).
    """

    position: int
    score: float


class VectorIndex(Protocol):
    @property
    def size(self) -> int: ...

    @property
    def dim(self) -> int: ...

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[Collection[int]] | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[list[Match]]: ...

    def vectors(self, positions: Sequence[int]) -> np.ndarray: ...


Placement = Literal["auto", "host", "keras"]

# Added to the scores of rows a filter leaves out: below any cosine (-1), so they can never be chosen.
_FILTERED_OUT = -4.0

# The device sends back this many more candidates than a query needs, so that rows tied with the last one needed
# are nearly always among them; when they are not, that query's whole row of scores is copied instead.
_TIE_SLACK = 8


def has_accelerator() -> bool:
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    return False


def _device_matrix(matrix: np.ndarray, placement: Placement) -> object | None:
    """The matrix as a Keras tensor on the backend's device, or None to search it with numpy.

    "auto" keeps it on an accelerator when there is one (numpy's BLAS is as fast on a CPU); "keras" keeps it in
    a Keras tensor whatever the device, which runs the accelerator's code path on a CPU (tests, benchmarks).
    """
    if placement == "host" or not len(matrix) or (placement == "auto" and not has_accelerator()):
        return None
    import keras

    # Kept transposed once: transposing per query copies the whole matrix on JAX and TensorFlow.
    return keras.ops.transpose(keras.ops.convert_to_tensor(matrix))


class ExactIndex:
    """Brute-force inner product over unit vectors: exact, and memory-bandwidth bound."""

    def __init__(self, matrix: np.ndarray, *, placement: Placement = "auto") -> None:
        if matrix.ndim != 2:
            raise ValueError(f"expected a 2-D matrix of vectors. Received: shape={matrix.shape}")
        if placement not in get_args(Placement):
            raise ValueError(f"placement must be one of {get_args(Placement)}. Received: placement={placement!r}")
        self._matrix = matrix
        self._device = _device_matrix(matrix, placement)

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
        if self._device is not None:
            import keras

            return np.asarray(keras.ops.convert_to_numpy(self._device_scores(queries)), dtype=np.float32)
        return np.asarray(np.asarray(queries, dtype=self._matrix.dtype) @ self._matrix.T, dtype=np.float32)

    def _device_scores(self, queries: np.ndarray) -> object:
        import keras

        queries = keras.ops.convert_to_tensor(np.asarray(queries, dtype=self._matrix.dtype))
        return keras.ops.matmul(queries, self._device)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[Collection[int]] | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[list[Match]]:
        """The k best rows for each query, best first, leaving out each query's ``exclude`` positions.

        ``allowed`` (a boolean per row) filters inside the search, on the device where the matrix is: a query
        gets k rows whenever k allowed rows exist, and fewer only when there are not that many.
        """
        if k < 1:
            raise ValueError(f"k must be a positive integer. Received: k={k}")
        queries = np.atleast_2d(queries)
        if queries.shape[1] != self.dim:
            raise ValueError(f"queries must have {self.dim} columns. Received: shape={queries.shape}")
        skips = list(exclude) if exclude is not None else [()] * len(queries)
        if len(skips) != len(queries):
            raise ValueError(
                f"exclude needs one collection per query. Received: {len(skips)} for {len(queries)} queries"
            )
        if allowed is not None and len(allowed) != self.size:
            raise ValueError(f"allowed needs one flag per row. Received: {len(allowed)} for {self.size} rows")
        candidates = k + max((len(skip) for skip in skips), default=0) + _TIE_SLACK
        if self._device is None or candidates > self.size // 4:
            rows = self.scores(queries)
            if allowed is not None:
                rows[:, ~np.asarray(allowed, dtype=bool)] = _FILTERED_OUT
            found = [top_k(row, k, exclude=skip) for row, skip in zip(rows, skips, strict=True)]
        else:
            found = self._device_search(queries, k, skips, candidates, allowed)
        if allowed is None:
            return found
        return [[match for match in matches if match.score > _FILTERED_OUT / 2] for matches in found]

    def _device_search(
        self,
        queries: np.ndarray,
        k: int,
        skips: Sequence[Collection[int]],
        candidates: int,
        allowed: np.ndarray | None,
    ) -> list[list[Match]]:
        """Top-k on the device, so that only a few candidates per query cross to the host, not a row per query.

        Copying every score is what costs on a GPU: for 32 queries over a million rows, 128 MB to the host and an
        argpartition of each row there took 257 ms on an H200, against 4.5 ms for the product. The result is the
        host path's exactly, ties included: when rows tied with the last one needed might lie beyond the
        candidates, that query's full row is copied and ranked as on the host.
        """
        import keras

        scores = self._device_scores(queries)
        if allowed is not None:
            bias = np.where(np.asarray(allowed, dtype=bool), 0.0, _FILTERED_OUT).astype(self._matrix.dtype)
            scores = keras.ops.add(scores, keras.ops.convert_to_tensor(bias[None, :]))
        values, rows = (keras.ops.convert_to_numpy(t) for t in keras.ops.top_k(scores, candidates, sorted=True))
        results = []
        for query, skip in enumerate(skips):
            want = min(self.size, k + len(skip))
            last_needed = values[query, want - 1]
            if values[query, -1] >= last_needed:  # the tie may go on beyond the candidates
                row = np.asarray(keras.ops.convert_to_numpy(scores[query]), dtype=np.float32)
                results.append(top_k(row, k, exclude=skip))
                continue
            kept = values[query] >= last_needed
            results.append(_ranked(rows[query, kept], values[query, kept].astype(np.float32), k, skip))
        return results


def top_k(similarity: np.ndarray, k: int, *, exclude: Collection[int] = ()) -> list[Match]:
    """Best-first matches from one row of scores; argpartition keeps this O(n) rather than a full sort."""
    want = min(len(similarity), k + len(exclude))
    if want <= 0:
        return []
    if want < len(similarity):
        # argpartition keeps an arbitrary few of the rows tied with the last score, in arbitrary order: keep them
        # all, so that ties rank by position whatever k is (pages then never overlap).
        last_needed = similarity[np.argpartition(-similarity, want - 1)[want - 1]]
        candidates = np.flatnonzero(similarity >= last_needed)
    else:
        candidates = np.arange(want)
    return _ranked(candidates, similarity[candidates], k, exclude)


def _ranked(positions: np.ndarray, scores: np.ndarray, k: int, exclude: Collection[int]) -> list[Match]:
    """The k best of these candidates, best first, ties by position, leaving out ``exclude``."""
    by_position = np.argsort(positions, kind="stable")
    positions, scores = positions[by_position], scores[by_position]
    ordered = np.argsort(-scores, kind="stable")
    if exclude:
        ordered = ordered[~np.isin(positions[ordered], np.fromiter(exclude, dtype=np.int64, count=len(exclude)))]
    ordered = ordered[:k]
    # Python numbers from whole arrays at once: a Match per candidate, built from numpy scalars, cost ~0.3 ms a query.
    return list(map(Match._make, zip(positions[ordered].tolist(), scores[ordered].tolist(), strict=True)))


class _UnionFind:
    """Rows joined into groups; each group is labelled by its first row."""

    def __init__(self, size: int) -> None:
        self.parent = np.arange(size)

    def find(self, i: int) -> int:
        parent = self.parent
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    def join(self, i: int, j: int) -> None:
        a, b = self.find(i), self.find(j)
        self.parent[max(a, b)] = min(a, b)

    def labels(self) -> np.ndarray:
        return np.array([self.find(i) for i in range(len(self.parent))], dtype=np.int64)


def near_duplicate_groups(matrix: np.ndarray, *, threshold: float = NEAR_DUPLICATE_SIMILARITY) -> np.ndarray:
    """For each row, the first row of its group of near-identical photos (itself when it has none).

    The same photo added twice, or a crop of it, would otherwise fill a result list with one place.
    Neighbours are found in chunks so memory stays bounded; the groups are connected components.
    """
    size = len(matrix)
    groups = _UnionFind(size)
    neighbours = min(_DUPLICATE_SCAN_NEIGHBOURS, size)
    for start in range(0, size, 1024):
        block = np.asarray(matrix[start : start + 1024], dtype=np.float32) @ np.asarray(matrix, dtype=np.float32).T
        for offset, row in enumerate(block):
            i = start + offset
            for j in np.argpartition(-row, neighbours - 1)[:neighbours]:
                if j != i and row[j] >= threshold:
                    groups.join(i, int(j))
    return groups.labels()


def merge_groups(*labelings: np.ndarray | None) -> np.ndarray | None:
    """One labelling where rows are together whenever any labelling puts them together; None if all apart.

    Each labelling gives every row the first row of its group (as ``near_duplicate_groups`` does).
    """
    present = [np.asarray(labels, dtype=np.int64) for labels in labelings if labels is not None]
    if not present:
        return None
    size = len(present[0])
    identity = np.arange(size)
    present = [labels for labels in present if (labels != identity).any()]
    if not present:
        return None  # every row its own group: the common case, and a million rows need no loop for it
    groups = _UnionFind(size)
    for labels in present:
        for i in np.flatnonzero(labels != identity):
            groups.join(int(i), int(labels[i]))
    return groups.labels()


def collapse_duplicates(matches: list[Match], groups: np.ndarray | None, limit: int | None = None) -> list[Match]:
    """Keep only the best match of each group (near-identical photos, photos of one place), in order.

    ``limit``: stop once that many are kept (the search overfetches several rows per group)."""
    if groups is None:
        return matches[:limit]
    seen: set[int] = set()
    kept = []
    labels = groups[[match.position for match in matches]].tolist()
    for match, group in zip(matches, labels, strict=True):
        if len(kept) == limit:
            break
        if group not in seen:
            seen.add(group)
            kept.append(match)
    return kept

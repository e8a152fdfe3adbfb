"""Approximate top-k search (FAISS) behind `recommender.search.VectorIndex`, for catalogs of hundreds of thousands
of photos and more.

How a query is answered:

1. **Candidates** come from a compressed FAISS index held in RAM. ``ivfpq``: a PCA to ``reduce_dim`` dimensions
   (with a random rotation, so that every PQ sub-vector carries a similar share of the variance), an inverted
   file of ``nlist`` clusters of which ``nprobe`` are scanned, and product-quantised residuals of ``pq_m`` bytes
   per vector. ``hnsw``: the same PCA, then an HNSW graph over the reduced float32 vectors.
2. **Re-rank**: the best ``rerank`` candidates are scored again with the exact cosine, on the full vectors read
   from a memory-mapped matrix on disk (a float16 copy written beside the index, or the index's own float32
   matrix). The compressed scores only have to bring the true neighbours into the candidates; the order and the
   scores returned are exact over those candidates, which is what lifts recall@10 to the exact search's.

What sits where, per vector: in RAM the FAISS index (``ivfpq``: ``pq_m`` bytes of code + 8 bytes of id; ``hnsw``:
4 x ``reduce_dim`` bytes + the graph's 8 x ``hnsw_m`` bytes); on disk, mapped, the re-rank matrix (2 x dim bytes
in float16), of which only the rows of recent candidates are in the page cache.

``exclude`` removes positions before k is cut (the candidates are over-fetched by the largest exclusion);
``allowed`` restricts the search to some rows (a later region filter): a FAISS ID selector when many rows are
allowed, an exact scan of the allowed rows when few are (faster, and exact). Either way a query gets k results
whenever k rows are allowed and not excluded: a query the approximate search leaves short is answered exactly.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from recommender.errors import UserError
from recommender.search import ExactIndex, Match, Placement, VectorIndex, top_k

if TYPE_CHECKING:
    import faiss

logger = logging.getLogger(__name__)

AnnKind = Literal["ivfpq", "hnsw"]
IndexKind = Literal["auto", "exact", "ivfpq", "hnsw"]

EXACT_BELOW = 200_000  # "auto" searches exactly below this many vectors: 28 ms/query at 100k is fast enough
EXACT_FILTER_BELOW = 50_000  # fewer allowed rows than this are scanned exactly: as fast, and exact
REDUCE_ABOVE = 256  # vectors wider than this are reduced by PCA to REDUCED_DIM before the FAISS index
REDUCED_DIM = 256
TRAIN_MIN, TRAIN_MAX = 100_000, 256_000  # training sample, bounded: k-means cost grows with it
POINTS_PER_CENTROID = 39  # FAISS's own minimum for k-means
KMEANS_ITERATIONS = 10  # FAISS's IVF default is 25; 10 loses little and halves the training time
DEFAULT_RERANK = 256
ADD_CHUNK = 65_536

ANN_FILE = "ann.faiss"
ANN_META = "ann.json"
RERANK_FILE = "ann_rerank.f16.npy"


class AnnUnavailable(UserError, ValueError):
    """An approximate index was asked for but the index folder has none of that kind."""


@dataclass(frozen=True)
class AnnParams:
    """How an approximate index is built and searched; saved as ann.json beside it."""

    kind: AnnKind
    dim: int
    reduce_dim: int  # 0: no PCA
    train_size: int
    rerank: int = DEFAULT_RERANK
    nlist: int = 0  # ivfpq
    pq_m: int = 0
    pq_bits: int = 8
    nprobe: int = 0
    hnsw_m: int = 32  # hnsw
    ef_construction: int = 80
    ef_search: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnnParams:
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


# ---------------------------------------------------------------------------------------------------- choice


def choose_kind(
    size: int, kind: IndexKind = "auto", *, exact_below: int = EXACT_BELOW
) -> Literal["exact", "ivfpq", "hnsw"]:
    """What to search ``size`` vectors with: ``kind`` itself, or for "auto" exact below ``exact_below``, else ivfpq.

    ivfpq rather than hnsw for "auto": a tenth of the RAM, and it builds in minutes on two cores at 1M.
    """
    if kind not in get_args(IndexKind):
        raise ValueError(f"kind must be one of {get_args(IndexKind)}. Received: kind={kind!r}")
    if kind != "auto":
        return kind
    return "exact" if size < exact_below else "ivfpq"


def wanted_ann(size: int, kind: IndexKind = "auto") -> AnnKind | None:
    """The approximate index a version of ``size`` vectors should carry, or None when it is searched exactly."""
    chosen = choose_kind(size, kind)
    return None if chosen == "exact" else chosen


def default_params(size: int, dim: int, kind: AnnKind) -> AnnParams:
    """Parameters by catalog size: nlist ~ 4 sqrt(N), enough training points per cluster, PCA above 256-d."""
    if kind not in get_args(AnnKind):
        raise ValueError(f"kind must be one of {get_args(AnnKind)}. Received: kind={kind!r}")
    if size < 1:
        raise ValueError(f"an approximate index needs vectors. Received: size={size}")
    # The PCA needs more vectors than it keeps dimensions; a tiny catalog (forced approximate) keeps them all.
    reduce_dim = REDUCED_DIM if dim > REDUCE_ABOVE and size >= 4 * REDUCED_DIM else 0
    width = reduce_dim or dim
    target_nlist = round(4 * math.sqrt(size))
    train_size = min(size, max(TRAIN_MIN, min(TRAIN_MAX, POINTS_PER_CENTROID * target_nlist)))
    if kind == "hnsw":
        return AnnParams("hnsw", dim, reduce_dim, train_size=min(train_size, TRAIN_MIN), ef_search=2 * DEFAULT_RERANK)
    nlist = max(1, min(target_nlist, train_size // POINTS_PER_CENTROID))
    # 8-bit codes need 256 x 39 training points per sub-quantiser; smaller samples get fewer bits.
    pq_bits = max(1, min(8, int(math.log2(max(2, train_size // POINTS_PER_CENTROID)))))
    return AnnParams(
        "ivfpq",
        dim,
        reduce_dim,
        train_size=train_size,
        nlist=nlist,
        pq_m=_pq_subquantisers(width),
        pq_bits=pq_bits,
        nprobe=max(1, min(nlist, round(nlist / 16))),  # recall@10 0.98-0.99 at 100k with the re-rank (bench.ann)
    )


def _pq_subquantisers(width: int) -> int:
    """Sub-vectors of about 4 dimensions each (64 bytes for 256-d), the largest such divisor of ``width``."""
    target = max(1, width // 4)
    return max(m for m in range(1, target + 1) if width % m == 0)


# ---------------------------------------------------------------------------------------------------- build


def _faiss() -> Any:
    import faiss

    return faiss


def _new_faiss_index(params: AnnParams) -> faiss.Index:
    faiss = _faiss()
    width = params.reduce_dim or params.dim
    if params.kind == "ivfpq":
        quantiser = faiss.IndexFlatIP(width)
        inner = faiss.IndexIVFPQ(
            quantiser, width, params.nlist, params.pq_m, params.pq_bits, faiss.METRIC_INNER_PRODUCT
        )
        inner.cp.niter = KMEANS_ITERATIONS
        inner.nprobe = params.nprobe
    else:
        inner = faiss.IndexHNSWFlat(width, params.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = params.ef_construction
        inner.hnsw.efSearch = params.ef_search
    if not params.reduce_dim:
        return inner
    pca = faiss.PCAMatrix(params.dim, params.reduce_dim, 0.0, True)  # random_rotation: balance the PQ sub-vectors
    return faiss.IndexPreTransform(pca, inner)


def _chunks(matrix: np.ndarray, rows: int = ADD_CHUNK) -> Iterator[np.ndarray]:
    """float32 blocks of a (possibly float16, memory-mapped) matrix, so that no full float32 copy is made."""
    for start in range(0, len(matrix), rows):
        yield np.ascontiguousarray(matrix[start : start + rows], dtype=np.float32)


def build_ann(
    matrix: np.ndarray,
    kind: AnnKind = "ivfpq",
    *,
    params: AnnParams | None = None,
    seed: int = 0,
    progress: bool = True,
) -> AnnIndex:
    """Train on a sample of ``matrix`` (unit rows), add every row, and wrap it with ``matrix`` for the re-rank."""
    from tqdm import tqdm

    if matrix.ndim != 2 or not len(matrix):
        raise ValueError(f"expected a non-empty 2-D matrix of vectors. Received: shape={matrix.shape}")
    params = params or default_params(len(matrix), matrix.shape[1], kind)
    if params.dim != matrix.shape[1]:
        raise ValueError(f"params are for {params.dim}-d vectors. Received: shape={matrix.shape}")
    started = time.perf_counter()
    index = _new_faiss_index(params)
    sample_rows = np.sort(np.random.default_rng(seed).choice(len(matrix), params.train_size, replace=False))
    logger.info("training a %s index on %d of %d vectors: %s", params.kind, len(sample_rows), len(matrix), params)
    if progress:
        print(f"ANN {params.kind}: training on {len(sample_rows):,} of {len(matrix):,} vectors", flush=True)
    index.train(np.ascontiguousarray(matrix[sample_rows], dtype=np.float32))
    trained = time.perf_counter()
    bar = tqdm(total=len(matrix), unit="vec", desc=f"ANN {params.kind}: adding", disable=not progress)
    for block in _chunks(matrix):
        index.add(block)
        bar.update(len(block))
    bar.close()
    built = time.perf_counter()
    logger.info(
        "%s index: trained in %.1fs, %d vectors added in %.1fs", kind, trained - started, len(matrix), built - trained
    )
    return AnnIndex(index, matrix, params, build_seconds=built - started)


# ---------------------------------------------------------------------------------------------------- search


@dataclass(frozen=True)
class Footprint:
    """Bytes the index holds: in RAM (the FAISS index) and mapped from disk (the re-rank matrix)."""

    ram_bytes: int
    mapped_bytes: int


class AnnIndex:
    """Candidates from FAISS, re-ranked with the exact cosine on ``rerank_matrix``; see the module docstring."""

    def __init__(
        self,
        index: faiss.Index,
        rerank_matrix: np.ndarray,
        params: AnnParams,
        *,
        exact_filter_below: int = EXACT_FILTER_BELOW,
        build_seconds: float | None = None,
    ) -> None:
        if index.ntotal != len(rerank_matrix) or index.d != rerank_matrix.shape[1]:
            raise ValueError(
                f"the FAISS index and the re-rank matrix disagree. Received: index {index.ntotal} x {index.d}, "
                f"matrix {rerank_matrix.shape}"
            )
        self._index = index
        self._matrix = rerank_matrix
        self.params = params
        self.exact_filter_below = exact_filter_below
        self.build_seconds = build_seconds

    @property
    def size(self) -> int:
        return int(self._matrix.shape[0])

    @property
    def dim(self) -> int:
        return int(self._matrix.shape[1])

    @property
    def faiss_index(self) -> faiss.Index:
        return self._index

    @property
    def rerank_matrix(self) -> np.ndarray:
        return self._matrix

    def with_params(self, **changes: int) -> AnnIndex:
        """The same index searched with other ``nprobe``/``ef_search``/``rerank`` (the bench's sweeps)."""
        return AnnIndex(
            self._index, self._matrix, replace(self.params, **changes), exact_filter_below=self.exact_filter_below
        )

    def footprint(self) -> Footprint:
        ram = int(_faiss().serialize_index(self._index).nbytes)
        return Footprint(ram, int(self._matrix.nbytes))

    def vectors(self, positions: Sequence[int]) -> np.ndarray:
        return np.asarray(self._matrix[np.asarray(positions, dtype=np.int64)], dtype=np.float32)

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[Collection[int]] | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[list[Match]]:
        """The k best rows for each query, best first, leaving out its ``exclude`` positions; only ``allowed`` rows
        (a bool mask over the rows, or an array of positions) when given."""
        queries, skips = _checked_queries(queries, k, exclude, self.dim)
        subset = allowed_positions(allowed, self.size)
        if subset is not None and len(subset) < self.exact_filter_below:
            return exact_search_rows(self._matrix, subset, queries, k, skips)
        want = min(self.size, max(self.params.rerank, k + max((len(s) for s in skips), default=0)))
        keep_alive, params = self._search_parameters(subset)
        _, labels = self._index.search(queries, want, params=params)
        del keep_alive
        results = []
        for query, candidates, skip in zip(queries, labels, skips, strict=True):
            matches = self._reranked(query, candidates[candidates >= 0], k, skip)
            if len(matches) < _reachable(k, skip, subset, self.size):
                # The probed clusters (or the graph walk) held too few allowed rows: answer this query exactly.
                matches = exact_search_rows(self._matrix, subset, query[None], k, [skip])[0]
            results.append(matches)
        return results

    def _reranked(self, query: np.ndarray, candidates: np.ndarray, k: int, skip: Collection[int]) -> list[Match]:
        """Exact cosine over the candidates; sorted by position first so that ties rank as in `ExactIndex`."""
        candidates = np.unique(candidates)
        scores = np.asarray(self._matrix[candidates], dtype=np.float32) @ query
        local_skip = _local_positions(candidates, skip)
        return [Match(int(candidates[m.position]), m.score) for m in top_k(scores, k, exclude=local_skip)]

    def _search_parameters(self, subset: np.ndarray | None) -> tuple[object, Any]:
        """FAISS search parameters (probes or beam width, and the allowed rows); the first item must outlive the
        search: FAISS's bitmap selector points into it."""
        faiss = _faiss()
        bitmap = None
        selector = {}
        if subset is not None:
            mask = np.zeros(self.size, dtype=bool)
            mask[subset] = True
            bitmap = np.packbits(mask, bitorder="little")
            selector = {"sel": faiss.IDSelectorBitmap(self.size, faiss.swig_ptr(bitmap))}
        if self.params.kind == "ivfpq":
            inner = faiss.SearchParametersIVF(nprobe=self.params.nprobe, **selector)
        else:
            inner = faiss.SearchParametersHNSW(efSearch=max(self.params.ef_search, self.params.rerank), **selector)
        if isinstance(self._index, faiss.IndexPreTransform):
            return (bitmap, selector, inner), faiss.SearchParametersPreTransform(index_params=inner)
        return (bitmap, selector), inner


def _checked_queries(
    queries: np.ndarray, k: int, exclude: Sequence[Collection[int]] | None, dim: int
) -> tuple[np.ndarray, list[Collection[int]]]:
    if k < 1:
        raise ValueError(f"k must be a positive integer. Received: k={k}")
    queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must have {dim} columns. Received: shape={queries.shape}")
    skips = list(exclude) if exclude is not None else [()] * len(queries)
    if len(skips) != len(queries):
        raise ValueError(f"exclude needs one collection per query. Received: {len(skips)} for {len(queries)} queries")
    return queries, skips


def allowed_positions(allowed: np.ndarray | None, size: int) -> np.ndarray | None:
    """A bool mask over the rows or an array of positions -> sorted unique positions (None: every row)."""
    if allowed is None:
        return None
    allowed = np.asarray(allowed)
    if allowed.dtype == bool:
        if allowed.shape != (size,):
            raise ValueError(f"an allowed mask needs one entry per row ({size}). Received: shape={allowed.shape}")
        return np.flatnonzero(allowed)
    if allowed.size and not np.issubdtype(allowed.dtype, np.integer):
        raise ValueError(f"allowed must be a bool mask or integer positions. Received: dtype={allowed.dtype}")
    positions = np.unique(allowed.astype(np.int64).reshape(-1))
    if positions.size and (positions[0] < 0 or positions[-1] >= size):
        raise ValueError(f"allowed positions must lie in [0, {size}). Received: {positions[0]}..{positions[-1]}")
    return positions


def _local_positions(rows: np.ndarray, positions: Collection[int]) -> set[int]:
    """Where ``positions`` sit in the sorted ``rows`` (those that are there)."""
    if not positions:
        return set()
    wanted = np.fromiter(positions, dtype=np.int64)
    at = np.clip(np.searchsorted(rows, wanted), 0, max(len(rows) - 1, 0))
    return {int(i) for i in at[rows[at] == wanted]} if len(rows) else set()


def _reachable(k: int, skip: Collection[int], subset: np.ndarray | None, size: int) -> int:
    """How many results a query can have: k, unless fewer rows are allowed and not excluded."""
    if subset is None:
        return min(k, size - sum(1 for p in set(skip) if 0 <= p < size))
    return min(k, len(subset) - len(_local_positions(subset, set(skip))))


def exact_search_rows(
    matrix: np.ndarray,
    rows: np.ndarray | None,
    queries: np.ndarray,
    k: int,
    skips: Sequence[Collection[int]],
) -> list[list[Match]]:
    """Exact top-k over some rows of ``matrix`` (None: all), read in float32 blocks: a float16 matrix then costs
    a conversion, not numpy's slow float16 product."""
    positions = np.arange(len(matrix)) if rows is None else rows
    scores = np.empty((len(queries), len(positions)), dtype=np.float32)
    for start in range(0, len(positions), ADD_CHUNK):
        block = positions[start : start + ADD_CHUNK]
        contiguous = rows is None
        vectors = matrix[block[0] : block[-1] + 1] if contiguous else matrix[block]
        scores[:, start : start + len(block)] = queries @ np.asarray(vectors, dtype=np.float32).T
    results = []
    for row, skip in zip(scores, skips, strict=True):
        local = {p for p in skip if 0 <= p < len(positions)} if rows is None else _local_positions(positions, skip)
        results.append([Match(int(positions[m.position]), m.score) for m in top_k(row, k, exclude=local)])
    return results


# ---------------------------------------------------------------------------------------------------- files


def save_ann(ann: AnnIndex, folder: str | Path, *, rerank_copy: bool = True) -> None:
    """Write ann.faiss and ann.json into an index version folder; with ``rerank_copy``, a float16 copy of the
    vectors for the re-rank (half the page cache of the float32 matrix)."""
    faiss = _faiss()
    folder = Path(folder)
    faiss.write_index(ann.faiss_index, str(folder / ANN_FILE))
    if rerank_copy:
        half = np.lib.format.open_memmap(
            folder / RERANK_FILE, mode="w+", dtype=np.float16, shape=ann.rerank_matrix.shape
        )
        for start in range(0, ann.size, ADD_CHUNK):
            half[start : start + ADD_CHUNK] = ann.rerank_matrix[start : start + ADD_CHUNK]
        half.flush()
        del half
    meta = {
        "params": ann.params.to_dict(),
        "faiss_version": faiss.__version__,
        "count": ann.size,
        "build_seconds": None if ann.build_seconds is None else round(ann.build_seconds, 3),
        "rerank_file": RERANK_FILE if rerank_copy else None,
    }
    (folder / ANN_META).write_text(json.dumps(meta, indent=2))


def saved_kind(folder: str | Path) -> AnnKind | None:
    """The kind of approximate index saved in a version folder, or None."""
    try:
        return json.loads((Path(folder) / ANN_META).read_text())["params"]["kind"]
    except (OSError, ValueError, KeyError):
        return None


def load_ann(folder: str | Path, matrix: np.ndarray | None = None) -> AnnIndex:
    """Read ann.faiss (memory-mapped where FAISS can) with its re-rank matrix: the float16 copy when saved, else
    ``matrix`` (the version's own vectors)."""
    faiss = _faiss()
    folder = Path(folder)
    try:
        meta = json.loads((folder / ANN_META).read_text())
        params = AnnParams.from_dict(meta["params"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise AnnUnavailable(f"no readable approximate index in {folder}. Received: {error}") from error
    try:
        index = faiss.read_index(str(folder / ANN_FILE), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:  # this index type cannot be mapped: read it into RAM
        index = faiss.read_index(str(folder / ANN_FILE))
    rerank_file = meta.get("rerank_file")
    if rerank_file:
        rerank = np.load(folder / rerank_file, mmap_mode="r")
    elif matrix is not None:
        rerank = matrix
    else:
        raise AnnUnavailable(f"{folder} keeps no re-rank copy: pass the version's vectors. Received: matrix=None")
    return AnnIndex(index, rerank, params, build_seconds=meta.get("build_seconds"))


def open_vector_index(
    index_version_dir: str | Path,
    matrix: np.ndarray,
    kind: IndexKind = "auto",
    *,
    placement: Placement = "auto",
) -> VectorIndex:
    """The index a worker searches ``matrix`` (a version's vectors) with, by a setting.

    "auto": the version's approximate index when it has one (`build_index` made one for a large catalog),
    else exact. "exact": always exact. "ivfpq"/"hnsw": that approximate index, or `AnnUnavailable`.
    """
    saved = saved_kind(index_version_dir)
    if kind not in get_args(IndexKind):
        raise ValueError(f"kind must be one of {get_args(IndexKind)}. Received: kind={kind!r}")
    if kind == "exact" or (kind == "auto" and saved is None):
        if kind == "auto" and len(matrix) >= EXACT_BELOW:
            logger.warning("%d vectors searched exactly: this version has no approximate index", len(matrix))
        return ExactIndex(matrix, placement=placement)
    if kind != "auto" and saved != kind:
        raise AnnUnavailable(
            f"the index in {index_version_dir} has no {kind} index: rebuild it with ann={kind!r}. Received: {saved}"
        )
    ann = load_ann(index_version_dir, matrix)
    if ann.size != len(matrix):
        raise AnnUnavailable(f"the approximate index has {ann.size} rows, the matrix {len(matrix)}; rebuild it")
    return ann

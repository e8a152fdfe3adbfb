"""Exact top-k search speed against random unit vectors, beside the memory-bandwidth floor.

Run from the repository root::

    python -m bench.search                         # N = 10k, 100k, 1M (float32), and 1M float16
    python -m bench.search --sizes 10k,100k --float16-sizes ''   # a quick run

Each query reads the whole (N, dim) matrix once, so on a CPU the search cannot be faster than
``matrix bytes / memory bandwidth``: that is the "floor" column. The bandwidth is measured here, before the
searches, as the faster of two reads of a 1 GiB float32 array: ``np.sum`` (one thread, streaming) and a
matrix-vector product ``a @ ones`` (OpenBLAS sgemv, all cores). Search goes through
``recommender.search.ExactIndex(placement="host")`` (numpy's BLAS) and ``top_k`` with k=10; the
batch-32 column searches 32 queries in one call (one matrix-matrix product, then 32 top-k selections).

numpy has no BLAS kernel for float16, so float16 halves the memory but its product runs in numpy's own loop;
the float16 rows show what that costs on this machine. The last line is ``search_ms_1M=…`` (float32, one query).
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

from bench.common import (
    SEARCHED_DIM,
    available_memory_bytes,
    metric,
    parse_sizes,
    print_header,
    print_load_after,
    print_table,
    size_label,
    time_it,
)
from recommender.search import ExactIndex, top_k

K = 10
QUERY_BATCH = 32
BANDWIDTH_BYTES = 1 << 30
CHUNK_ROWS = 65_536
SLOW_BATCH_LIMIT_S = 30.0  # skip a batch-32 measurement expected to take longer than this per call


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10k,100k,1M", help="catalog sizes, k/M suffixes (default: %(default)s)")
    parser.add_argument("--float16-sizes", default="1M", help="sizes also run as float16; '' for none (default: 1M)")
    parser.add_argument(
        "--dim", type=int, default=SEARCHED_DIM, help="vector dimension (default: %(default)s, what the index searches)"
    )
    parser.add_argument("--repeats", type=int, default=10, help="timed calls per measurement (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def unit_rows(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """``count`` random unit vectors as float32, generated in chunks so that no temporary doubles the memory."""
    matrix = np.empty((count, dim), dtype=np.float32)
    for start in range(0, count, CHUNK_ROWS):
        block = matrix[start : start + CHUNK_ROWS]
        rng.standard_normal(out=block, dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
    return matrix


def as_float16(matrix: np.ndarray) -> np.ndarray:
    half = np.empty(matrix.shape, dtype=np.float16)
    for start in range(0, len(matrix), CHUNK_ROWS):
        half[start : start + CHUNK_ROWS] = matrix[start : start + CHUNK_ROWS]
    return half


def measure_bandwidth(repeats: int) -> tuple[float, float]:
    """Bytes/s of reading 1 GiB: (np.sum, one thread; sgemv a @ ones, all BLAS threads). Best of ``repeats``."""
    dim = 1280
    a = np.ones((BANDWIDTH_BYTES // (4 * dim), dim), dtype=np.float32)  # written once, so its pages are real
    ones = np.ones(dim, dtype=np.float32)
    summed = time_it(lambda: a.sum(), repeats=repeats, warmup=1)
    product = time_it(lambda: a @ ones, repeats=repeats, warmup=1)
    return a.nbytes / (summed.best / 1000), a.nbytes / (product.best / 1000)


def main() -> None:
    args = parse_args()
    sizes = parse_sizes(args.sizes)
    half_sizes = set(parse_sizes(args.float16_sizes))

    print_header("exact search (numpy BLAS, CPU)")
    sum_bw, gemv_bw = measure_bandwidth(max(3, args.repeats // 2))
    bandwidth = max(sum_bw, gemv_bw)
    print(
        f"memory bandwidth, reading a 1 GiB float32 array (best of runs): np.sum {sum_bw / 1e9:.1f} GB/s (1 thread), "
        f"a @ ones {gemv_bw / 1e9:.1f} GB/s (sgemv); floor uses {bandwidth / 1e9:.1f} GB/s"
    )
    print(f"k={K}, dim={args.dim}, {args.repeats} timed calls after 2 untimed (float16: 3 after 1)")
    print()

    rng = np.random.default_rng(args.seed)
    queries = unit_rows(rng, QUERY_BATCH, args.dim)
    rows = []
    single_ms: dict[tuple[int, str], float] = {}
    for size in sizes:
        made = time.perf_counter()
        matrix = unit_rows(rng, size, args.dim)
        print(f"N={size_label(size)}: {matrix.nbytes / 1e9:.2f} GB generated in {time.perf_counter() - made:.1f}s")
        variants = [np.float32] + ([np.float16] if size in half_sizes else [])
        for dtype in variants:
            if dtype is np.float16:
                available = available_memory_bytes()
                if available is not None and available < 1.5 * size * args.dim * 2:
                    print(f"N={size_label(size)} float16 skipped: {available / 2**30:.1f} GiB available")
                    continue
                matrix = as_float16(matrix)
                gc.collect()
            rows.append(measure(matrix, queries, args.repeats, bandwidth))
            single_ms[(size, np.dtype(dtype).name)] = rows[-1][5]
        del matrix
        gc.collect()

    print()
    print_table(
        [
            "N",
            "dtype",
            "MB",
            "floor ms",
            "scores ms",
            "search ms/query",
            "p95",
            "x floor",
            "top_k ms",
            f"batch{QUERY_BATCH} ms",
            "ms/query in batch",
        ],
        rows,
    )
    print()
    print("search = ExactIndex.search(one query, k=10): scores (the matrix product) + top_k (argpartition, sort)")
    print_load_after()
    print(f"search_ms_1M={metric(single_ms.get((1_000_000, 'float32'), float('nan')))}")


def measure(matrix: np.ndarray, queries: np.ndarray, repeats: int, bandwidth: float) -> list[object]:
    """One table row: the floor, then scores / top_k / search of one query, then a batch of queries."""
    index = ExactIndex(matrix, placement="host")
    label = size_label(len(matrix))
    half = matrix.dtype == np.float16
    repeats, warmup = (3, 1) if half else (repeats, 2)
    one = queries[:1]
    scores = time_it(lambda: index.scores(one), repeats=repeats, warmup=warmup)
    row = index.scores(one)[0]
    selection = time_it(lambda: top_k(row, K), repeats=repeats, warmup=warmup)
    search = time_it(lambda: index.search(one, K), repeats=repeats, warmup=warmup)
    floor_ms = 1000 * matrix.nbytes / bandwidth
    batch_ms = float("nan")
    if search.median * QUERY_BATCH / 1000 < SLOW_BATCH_LIMIT_S:
        batch_ms = time_it(lambda: index.search(queries, K), repeats=max(3, repeats // 2), warmup=1).median
    else:
        print(
            f"N={label} {matrix.dtype}: batch of {QUERY_BATCH} skipped (about {search.median * 32 / 1000:.0f}s a call)"
        )
    return [
        label,
        str(matrix.dtype),
        matrix.nbytes / 1e6,
        floor_ms,
        scores.median,
        search.median,
        search.p95,
        search.median / floor_ms,
        selection.median,
        batch_ms,
        batch_ms / QUERY_BATCH,
    ]


if __name__ == "__main__":
    main()

"""Approximate search (`recommender.ann`) against exact search, on real fingerprints plus realistic distractors.

Run from the repository root::

    python -m bench.ann                              # 100k and 1M, ivfpq and hnsw (10M where memory allows)
    python -m bench.ann --sizes 100k --kinds ivfpq   # a quick run
    python -m bench.ann --sizes 100k --sweep         # recall and speed for other nprobe / efSearch / re-rank depths

The vectors (`bench.ann_data`): the default fingerprint of every photo in ../shared/datasets, in the space the
index searches (the catalog's default whitening: 896-d), spread over a base of N rows filled with synthetic
distractors of the same spectrum;
the queries are 500 held-out real photos. Everything heavy is cached in ``--cache`` (base matrices as float16
files, exact neighbours, built indexes), so a rerun only measures.

For each size and kind: the build time (training on a sample + adding every row; on a rerun from the cache,
the first build's), recall@10 against the exact top-10 over all 500 queries, ms per query at batch 1 (the median
over ``--timed`` queries, each timed on its own) and at batch 32, for the approximate index (FAISS and BLAS on one
thread each, as in the worker) and for `ExactIndex(placement="host")` on a float32 copy of the same base (BLAS on
every core, its fastest), measured the same way. Bytes per vector: in RAM (the FAISS index file, which is what it
occupies once loaded) and mapped from disk (the float16 matrix the re-rank reads; its rows are in the page cache in
these runs, as the exact ground truth has just read them).

The last line is ``size=… recall@10=… speedup=…`` (batch 1, exact ms / approximate ms) for the largest size run,
for the first kind given.
"""

from __future__ import annotations

import argparse
import gc
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.ann_data import DEFAULT_CACHE, NoRealPhotos, bench_data, exact_neighbours, real_split
from bench.common import (
    available_memory_bytes,
    metric,
    parse_sizes,
    print_header,
    print_load_after,
    print_table,
    size_label,
    time_it,
)
from recommender.ann import AnnIndex, AnnKind, build_ann, load_ann, save_ann
from recommender.search import ExactIndex, VectorIndex

K = 10
BATCH = 32
PROCESS_MEMORY_CAP = 13 * 2**30  # this machine is shared: no process of the bench goes beyond this


@dataclass(frozen=True)
class Measured:
    recall: float
    batch1_ms: float
    batch1_p95: float
    batch32_ms_per_query: float


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1M,10M", help="base sizes, k/M suffixes (default: %(default)s)")
    parser.add_argument("--kinds", default="ivfpq,hnsw", help="approximate kinds (default: %(default)s)")
    parser.add_argument("--timed", type=int, default=100, help="queries timed one by one (default: %(default)s)")
    parser.add_argument("--sweep", action="store_true", help="also measure other nprobe/efSearch/re-rank depths")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="cache folder (default: %(default)s)")
    parser.add_argument("--rebuild", action="store_true", help="build the approximate indexes again")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def recall_at_k(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> float:
    hits = 0
    for start in range(0, len(queries), BATCH):
        found = index.search(queries[start : start + BATCH], K)
        for row, true_rows in zip(found, truth[start : start + BATCH], strict=True):
            hits += len({m.position for m in row} & set(true_rows[:K].tolist()))
    return hits / (K * len(queries))


def speed(index: VectorIndex, queries: np.ndarray, timed: int, *, batch_repeats: int = 3) -> tuple[float, float, float]:
    """(median and p95 ms of one query at batch 1 over ``timed`` different queries, ms/query in batches of 32)."""
    singles = [time_it(lambda q=q: index.search(q[None], K), repeats=1, warmup=0).best for q in queries[:timed]]
    batch = time_it(lambda: index.search(queries[:BATCH], K), repeats=batch_repeats, warmup=1).median
    ordered = sorted(singles)
    return float(np.median(singles)), ordered[int(0.95 * (len(ordered) - 1))], batch / BATCH


def measure(index: VectorIndex, queries: np.ndarray, truth: np.ndarray, timed: int) -> Measured:
    """Recall and speed with one thread for FAISS and for BLAS, as in the worker (see `one_thread`)."""
    with one_thread():
        index.search(queries[:5], K)  # warm-up: first touches of the index and the mapped rows
        return Measured(recall_at_k(index, queries, truth), *speed(index, queries, timed))


@contextmanager
def one_thread() -> Iterator[None]:
    """FAISS's OpenMP and numpy's OpenBLAS each on one thread, as the worker runs BLAS.

    With both pools at two threads on two cores they spin against each other: one query took 32 ms instead of 8.
    """
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def exact_speed(base: np.ndarray, queries: np.ndarray, timed: int) -> tuple[float, float] | str:
    """(batch-1 ms, batch-32 ms/query) of ExactIndex over a float32 copy, or why it was skipped."""
    need = base.shape[0] * base.shape[1] * 4
    available = available_memory_bytes() or 0
    if need > PROCESS_MEMORY_CAP or need * 1.2 > available:
        return (
            f"exact search not timed: its float32 matrix ({need / 1e9:.1f} GB) exceeds the "
            f"{PROCESS_MEMORY_CAP / 2**30:.0f} GiB cap or the {available / 2**30:.1f} GiB available"
        )
    matrix = np.empty(base.shape, dtype=np.float32)
    for start in range(0, len(base), 65_536):
        matrix[start : start + 65_536] = base[start : start + 65_536]
    index = ExactIndex(matrix, placement="host")
    index.search(queries[:2], K)
    # The same measurement as the approximate index's, on fewer queries: an exact query costs the same whatever it is.
    single, _, batch = speed(index, queries, min(timed, 10))
    del index, matrix
    gc.collect()
    return single, batch


def built_index(base: np.ndarray, kind: AnnKind, folder: Path, rebuild: bool) -> tuple[AnnIndex, float]:
    """The approximate index from the cache, or built and saved there; and its build time in seconds."""
    if rebuild and folder.exists():
        shutil.rmtree(folder)
    if not (folder / "ann.json").exists():
        ann = build_ann(base, kind)
        folder.mkdir(parents=True, exist_ok=True)
        save_ann(ann, folder, rerank_copy=False)  # the base is already a float16 file: re-rank from it
        del ann
        gc.collect()
    loaded = load_ann(folder, base)  # as the worker would: FAISS file memory-mapped, base mapped
    return loaded, float(loaded.build_seconds or float("nan"))


def sweep_variants(ann: AnnIndex) -> list[tuple[str, AnnIndex]]:
    p = ann.params
    variants = []
    for rerank in (64, 128, 256, 512):
        if p.kind == "ivfpq":
            for nprobe in sorted({max(1, p.nprobe // 2), p.nprobe, 2 * p.nprobe, 4 * p.nprobe}):
                variants.append((f"nprobe={nprobe} rerank={rerank}", ann.with_params(nprobe=nprobe, rerank=rerank)))
        else:
            for ef in (rerank, 2 * rerank):
                variants.append((f"ef={ef} rerank={rerank}", ann.with_params(ef_search=ef, rerank=rerank)))
    return variants


def skip_reason(size: int, dim: int, cache: Path) -> str | None:
    """Why a size cannot run here: its float16 base must fit in the page cache beside the rest, and on disk."""
    base_bytes = size * dim * 2
    available = available_memory_bytes()
    if available is not None and base_bytes > 0.6 * available:
        return (
            f"N={size_label(size)} skipped: its float16 base ({base_bytes / 1e9:.1f} GB) would not stay in the "
            f"{available / 2**30:.1f} GiB of memory available (the re-rank reads it at random), and exact search "
            f"needs {2 * base_bytes / 1e9:.0f} GB in float32"
        )
    cache.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(cache).free
    if base_bytes * 1.1 > free:
        return f"N={size_label(size)} skipped: {base_bytes / 1e9:.1f} GB of base, {free / 1e9:.1f} GB free in {cache}"
    return None


def main() -> None:
    args = parse_args()
    sizes = parse_sizes(args.sizes)
    kinds: list[AnnKind] = [k.strip() for k in args.kinds.split(",") if k.strip()]  # type: ignore[misc]
    print_header("approximate search (FAISS) vs exact search, CPU")
    import faiss

    try:
        real, queries = real_split(args.cache, args.seed)
    except NoRealPhotos as error:
        raise SystemExit(f"skipped: no real descriptors to start from: {error}") from None
    dim = real.shape[1]
    print(f"faiss {faiss.__version__}, {faiss.omp_get_max_threads()} OpenMP threads; k={K}, dim={dim}")
    rows, sweep_rows = [], []
    headline: dict[tuple[int, str], tuple[float, float]] = {}  # (size, kind) -> (recall, speed-up at batch 1)
    for size in sizes:
        reason = skip_reason(size, dim, args.cache)
        if reason:
            print(reason)
            continue
        data = bench_data(size, real, queries, args.cache, args.seed)
        label = size_label(size)
        print(f"N={label}: {data.description}")
        truth = exact_neighbours(data.base, data.queries, data.base_path)
        exact = exact_speed(data.base, data.queries, args.timed)
        if isinstance(exact, str):
            print(f"N={label}: {exact}")
            exact_ms, exact_batch = float("nan"), float("nan")
        else:
            exact_ms, exact_batch = exact
        rows.append([label, "exact", "-", 1.0, exact_ms, float("nan"), exact_batch, 4 * dim, 0, "-"])
        for kind in kinds:
            folder = args.cache / f"ann-{kind}-{data.base_path.stem}"
            ann, build_s = built_index(data.base, kind, folder, args.rebuild)
            m = measure(ann, data.queries, truth, args.timed)
            ram = (folder / "ann.faiss").stat().st_size / size
            p = ann.params
            setting = f"nprobe={p.nprobe}/{p.nlist}" if kind == "ivfpq" else f"M={p.hnsw_m} ef={p.ef_search}"
            speeds = [m.batch1_ms, m.batch1_p95, m.batch32_ms_per_query]
            rows.append([label, kind, f"{setting} rerank={p.rerank}", m.recall, *speeds, ram, 2 * dim, build_s])
            print(f"N={label} {kind}: recall@10 {m.recall:.3f}, {m.batch1_ms:.2f} ms/query, built in {build_s:.0f}s")
            headline[(size, kind)] = (m.recall, exact_ms / m.batch1_ms)
            if args.sweep:
                for name, variant in sweep_variants(ann):
                    v = measure(variant, data.queries, truth, min(args.timed, 30))
                    sweep_rows.append([label, kind, name, v.recall, v.batch1_ms, v.batch32_ms_per_query])
            del ann
            gc.collect()
    print()
    headers = ["N", "index", "setting", "recall@10", "ms/query", "p95", f"ms/query @{BATCH}", "RAM B/vec"]
    print_table([*headers, "mapped B/vec", "build s"], rows)
    if sweep_rows:
        print()
        print_table(["N", "index", "setting", "recall@10", "ms/query", f"ms/query @{BATCH}"], sweep_rows)
    print()
    print(
        "exact = ExactIndex(float32 copy in RAM, numpy BLAS on every core); approximate indexes run FAISS and BLAS on "
        "one thread each; RAM B/vec = the FAISS index file / N (ids included)"
    )
    print_load_after()
    if headline:
        size, kind = max(headline, key=lambda key: (key[0], key[1] == kinds[0]))
        recall, speedup = headline[(size, kind)]
        print(f"size={size_label(size)} recall@10={metric(recall, 3)} speedup={metric(speedup, 1)}")


if __name__ == "__main__":
    main()

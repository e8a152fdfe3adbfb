"""The worker's cold start with a large catalog: how long opening a memory-mapped index takes, and its first query.

python -m bench.cold_start [--sizes 100k,1M] [--folder /tmp/wanderlens-cold-start]

Writes a synthetic index version per size once (random unit vectors of the size the index searches, names,
countries, coordinates; float32 as `wanderlens index` writes them) and keeps it for later runs; then, in a fresh
process each time, times `open_index` and the first and second search. "cold" first drops the file from the page
cache (posix_fadvise DONTNEED), as after a reboot; "warm" is a restart with the file still cached. The model's
own load (the other part of a start) is in the worker's log line "model … ready in …".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.common import SEARCHED_DIM, print_header, print_load_after

SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
CHUNK = 65_536
COUNTRIES = ("Italy", "France", "Japan", "Peru", "Norway", "Kenya")


def write_index(folder: Path, size: int, dim: int) -> Path:
    """An index folder as `wanderlens index` publishes it, with synthetic rows; reused when already there."""
    from recommender.fingerprint import BackboneFingerprint
    from recommender.index import CURRENT_FILE, INDEX_FORMAT, VERSIONS_DIR, IndexManifest

    version = f"synthetic-{size}-{dim}d"
    target = folder / VERSIONS_DIR / version
    if (folder / CURRENT_FILE).exists() and (target / "manifest.json").exists():
        return folder
    target.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    vectors = np.lib.format.open_memmap(target / "vectors.npy", mode="w+", dtype=np.float32, shape=(size, dim))
    for start in tqdm(range(0, size, CHUNK), desc=f"vectors {size:,}", unit="chunk"):
        block = rng.standard_normal((min(CHUNK, size - start), dim), dtype=np.float32)
        vectors[start : start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    with (target / "destinations.jsonl").open("w", encoding="utf-8") as file:
        for n in range(size):
            row = {
                "id": f"d{n}",
                "image": f"photos/{n}.jpg",
                "name": f"Place {n}",
                "country": COUNTRIES[n % len(COUNTRIES)],
                "lat": float(rng.uniform(-60, 70)),
                "lon": float(rng.uniform(-180, 180)),
                "content_hash": f"{n:064x}",
            }
            file.write(json.dumps(row) + "\n")
    fingerprint = BackboneFingerprint("synthetic", "none", "random", 224, "none", dim)
    manifest = IndexManifest(INDEX_FORMAT, version, fingerprint, size, "", 0.0, "", size, 0)
    (target / "manifest.json").write_text(json.dumps(manifest.to_dict()))
    (folder / CURRENT_FILE).write_text(version + "\n")
    return folder


def _drop_from_page_cache(path: Path) -> None:
    with path.open("rb") as file:
        os.posix_fadvise(file.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def measure_in_child(folder: Path) -> dict[str, float]:
    """Run in a fresh process (as a worker starts): open the index, then search twice."""
    started = time.perf_counter()
    from recommender.index import open_index

    imported = time.perf_counter()
    index = open_index(folder, placement="host", search="exact")
    opened = time.perf_counter()
    query = np.random.default_rng(0).standard_normal(index.vectors.shape[1]).astype(np.float32)
    index.rank_positions(query / np.linalg.norm(query), 50)
    first = time.perf_counter()
    index.rank_positions(query / np.linalg.norm(query), 50)
    second = time.perf_counter()
    return {
        "import_s": imported - started,
        "open_s": opened - imported,
        "first_query_s": first - opened,
        "second_query_s": second - first,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100k,1M", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--folder", type=Path, default=Path("/tmp/wanderlens-cold-start"))
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(measure_in_child(args.child)))
        return
    print_header("worker cold start: opening a memory-mapped index")
    for name in args.sizes.split(","):
        size = SIZES[name.strip()]
        folder = write_index(args.folder / name.strip(), size, SEARCHED_DIM)
        for state in ("cold", "warm"):
            if state == "cold":
                for path in folder.rglob("*.npy"):
                    _drop_from_page_cache(path)
            command = [sys.executable, "-m", "bench.cold_start", "--child", str(folder)]
            result = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
            total = sum(result.values())
            print(
                f"{name:>5} {state}: open_index {result['open_s']:.2f} s, first query {result['first_query_s']:.2f} s "
                f"(second {result['second_query_s'] * 1000:.0f} ms), imports {result['import_s']:.2f} s, "
                f"total {total:.2f} s"
            )
    print_load_after()


if __name__ == "__main__":
    main()

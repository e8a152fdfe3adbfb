"""Index build speed: ``recommender.index_build.build_index`` from cold, then incrementally, then with nothing new.

Run from the repository root::

    python -m bench.index_build                                  # travel-photos (148 photos, 640 px)
    python -m bench.index_build --catalog ../shared/datasets/intel-scenes-dev/images   # any catalog folder

Three builds into one temporary index folder (never into the catalog or the repository):

1. cold: the catalog without its last ``--new-fraction`` of destinations, nothing to reuse;
2. incremental: the whole catalog, so only the held-back photos are fingerprinted, the rest reused by hash;
3. unchanged: the whole catalog again: hashing, near-duplicate scan and publishing only.

The model is loaded and warmed up first, and that time is printed apart (``wanderlens index`` pays it on top of
the build). The last line is ``build_img_per_s=… incremental_s=… unchanged_s=…``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import tempfile
import time
from pathlib import Path

from bench.common import SHARED_DATASETS, metric, print_header, print_load_after, print_table, quiet_tensorflow
from recommender.runtimes import AUTO, RUNTIMES

TRAVEL_PHOTOS = SHARED_DATASETS / "travel-photos"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--catalog", type=Path, help="a catalog folder (default: travel-photos as a temporary catalog with a CSV)"
    )
    parser.add_argument("--backbone", default="efficientnet-lite0", help="backbone name (default: %(default)s)")
    parser.add_argument(
        "--runtime",
        choices=(AUTO, *RUNTIMES),
        default=AUTO,
        help="what runs the network (default: auto, as `wanderlens index` does for a new index)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="photos per forward pass (default: %(default)s)")
    parser.add_argument("--decode-workers", type=int, default=2, help="decoding threads (default: %(default)s)")
    parser.add_argument(
        "--new-fraction",
        type=float,
        default=0.1,
        help="share of destinations left out of the cold build and added by the incremental one (default: 0.1)",
    )
    return parser.parse_args()


def travel_catalog(folder: Path) -> Path:
    """travel-photos as a catalog: symlinks to its images plus a catalog.csv from its manifest."""
    images = folder / "images"
    images.mkdir(parents=True)
    with (TRAVEL_PHOTOS / "manifest.csv").open(newline="", encoding="utf-8") as source:
        rows = list(csv.DictReader(source))
    with (folder / "catalog.csv").open("w", newline="", encoding="utf-8") as target:
        writer = csv.writer(target)
        writer.writerow(["image", "name", "city", "country", "lat", "lon", "credit"])
        for row in rows:
            photo = TRAVEL_PHOTOS / row["path"]
            (images / photo.name).symlink_to(photo.resolve())
            writer.writerow(
                [
                    f"images/{photo.name}",
                    row["name"],
                    row["city"],
                    row["country"],
                    row["latitude"],
                    row["longitude"],
                    row["creator"],
                ]
            )
    return folder


def main() -> None:
    args = parse_args()
    if not 0 <= args.new_fraction < 1:
        raise SystemExit(f"--new-fraction must be in [0, 1). Received: {args.new_fraction}")
    quiet_tensorflow()

    from recommender.backbones import load_backbone
    from recommender.catalog import load_catalog
    from recommender.extractor import Extractor
    from recommender.index_build import build_index

    with tempfile.TemporaryDirectory(prefix="wanderlens-bench-") as scratch:
        scratch_dir = Path(scratch)
        if args.catalog is None:
            if not (TRAVEL_PHOTOS / "manifest.csv").exists():
                raise SystemExit(f"no catalog: {TRAVEL_PHOTOS} is missing; pass --catalog DIR")
            catalog_dir = travel_catalog(scratch_dir / "catalog")
            described = f"travel-photos ({TRAVEL_PHOTOS})"
        else:
            catalog_dir = args.catalog
            described = str(args.catalog)
        catalog = load_catalog(catalog_dir)

        started = time.perf_counter()
        extractor = Extractor(load_backbone(args.backbone), runtime=args.runtime)
        loaded = time.perf_counter()
        extractor.warm_up()
        warmed = time.perf_counter()
        print_header(f"index build: {extractor.fingerprint.describe()}")
        print(f"catalog: {described}: {len(catalog)} destinations, {len(catalog.problems)} catalog problems")
        print(
            f"model load {loaded - started:.1f}s + warm-up {warmed - loaded:.1f}s (not in the figures below); "
            f"batch {args.batch_size}, {args.decode_workers} decoding threads"
        )
        print()

        held_back = round(len(catalog) * args.new_fraction)
        first = dataclasses.replace(catalog, destinations=catalog.destinations[: len(catalog) - held_back])
        out_dir = scratch_dir / "index"
        rows = []
        seconds = {}
        for name, which in (("cold", first), ("incremental", catalog), ("unchanged", catalog)):
            begun = time.perf_counter()
            report = build_index(
                which,
                extractor,
                out_dir,
                batch_size=args.batch_size,
                decode_workers=args.decode_workers,
                progress=False,
            )
            took = time.perf_counter() - begun
            seconds[name] = took
            m = report.manifest
            rows.append(
                [
                    name,
                    m.count,
                    m.extracted,
                    m.reused,
                    len(report.problems),
                    took,
                    m.extracted / took if m.extracted else float("nan"),
                    m.count / took,
                ]
            )

    print_table(
        [
            "build",
            "destinations",
            "fingerprinted",
            "reused",
            "problems",
            "seconds",
            "fingerprinted/s",
            "destinations/s",
        ],
        rows,
    )
    print()
    print_load_after()
    cold_rate = rows[0][2] / seconds["cold"]
    print(
        f"build_img_per_s={metric(cold_rate)} incremental_s={metric(seconds['incremental'])} "
        f"unchanged_s={metric(seconds['unchanged'])}"
    )


if __name__ == "__main__":
    main()

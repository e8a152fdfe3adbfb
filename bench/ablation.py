"""Ablation: retrieval quality of each descriptor option beside its extraction cost.

    python -m bench.ablation [--datasets ../shared/datasets] [--only NAME,...]

For each configuration: INRIA Holidays (holidays-dev) mAP, Intel scenes (intel-scenes-dev) P@1 and P@5 with
`wanderlens eval`'s protocol (with DBA or QE each query is searched in a catalog augmented without it, see
`recommender.tools.evaluation`), and the extraction cost in ms per photo at batch 1 (decode excluded: the
network's forward pass, every scale, plus the query-side views) on this machine. Whitening, DBA and QE cost
nothing at extraction; their search-time cost is one or two more passes over the catalog matrix.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import print_header, print_load_after, print_table, quiet_tensorflow, time_it


@dataclass(frozen=True)
class Config:
    name: str
    backbone: str = "efficientnet-lite0"
    pooling: str = "avg"
    scales: tuple[float, ...] = (1.0,)
    trim: bool = False
    bands: int = 1
    colour: float = 0.0
    whitening: str = "none"
    dba: int = 0
    qe: int = 0
    rotations: bool = False


_DEFAULT: dict[str, Any] = {"trim": True, "bands": 2, "colour": 0.4, "whitening": "partial", "dba": 5}
CONFIGS = [
    Config("baseline: average pool (the tutorial's method)"),
    Config("+ GeM pooling", pooling="gem"),
    Config("+ multi-scale (1, 0.71)", scales=(1.0, 0.71)),
    Config("+ border trimming", trim=True),
    Config("+ partial whitening", whitening="partial"),
    Config("+ full whitening", whitening="full"),
    Config("+ 2 bands", bands=2),
    Config("+ colour 0.4", colour=0.4),
    Config("+ DBA 5", dba=5),
    Config("+ rotated queries", rotations=True),
    Config("earlier default: trimming + partial whitening", trim=True, whitening="partial"),
    Config("earlier default + 2 bands", trim=True, bands=2, whitening="partial"),
    Config("earlier default + colour 0.4", trim=True, colour=0.4, whitening="partial"),
    Config("earlier default + 2 bands + colour 0.4", trim=True, bands=2, colour=0.4, whitening="partial"),
    Config("DEFAULT: trimming, 2 bands, colour 0.4, partial whitening, DBA 5", **_DEFAULT),
    Config("default + QE 5", **_DEFAULT, qe=5),
    Config("default, 3 bands", **{**_DEFAULT, "bands": 3}),
    Config("default, colour 0.25", **{**_DEFAULT, "colour": 0.25}),
    Config("default, colour 0.6", **{**_DEFAULT, "colour": 0.6}),
    Config("default + GeM", **_DEFAULT, pooling="gem"),
    Config("default + multi-scale", **_DEFAULT, scales=(1.0, 0.71)),
    Config("default, full whitening", **{**_DEFAULT, "whitening": "full"}),
    Config("default on efficientnet-lite1", "efficientnet-lite1", **_DEFAULT),
    Config("default on efficientnet-lite2", "efficientnet-lite2", **_DEFAULT),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "datasets")
    parser.add_argument("--only", default="", help="comma-separated prefixes of configuration names")
    parser.add_argument("--repeats", type=int, default=30, help="timed batch-1 calls per configuration")
    args = parser.parse_args()
    quiet_tensorflow()

    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor
    from recommender.fingerprint import ExtractionOptions
    from recommender.refine import RefineOptions
    from recommender.tools.evaluation import evaluate_manifest

    holidays = args.datasets / "holidays-dev" / "manifest.csv"
    scenes = args.datasets / "intel-scenes-dev" / "manifest.csv"
    for manifest in (holidays, scenes):
        if not manifest.exists():
            raise SystemExit(f"{manifest} is missing: pass --datasets (the evaluation photos are not in the repo)")
    print_header("ablation: descriptor options on efficientnet-lite0 (and the default on lite1, lite2)")
    chosen = [c for c in CONFIGS if not args.only or any(c.name.startswith(p) for p in args.only.split(","))]
    extractors: dict[tuple[str, ExtractionOptions], Extractor] = {}
    rows = []
    started = time.perf_counter()
    for config in chosen:
        options = ExtractionOptions(
            pooling=config.pooling,
            scales=config.scales,
            trim_borders=config.trim,
            bands=config.bands,
            colour_weight=config.colour,
        )
        key = (config.backbone, options)
        if key not in extractors:
            extractors[key] = Extractor(load_backbone(config.backbone, options=options))
            extractors[key].warm_up()
        extractor = extractors[key]
        refine = RefineOptions(whitening=config.whitening, dba=config.dba, query_expansion=config.qe)
        on_holidays = evaluate_manifest(holidays, extractor, refine=refine, rotations=config.rotations, progress=False)
        on_scenes = evaluate_manifest(scenes, extractor, refine=refine, rotations=config.rotations, progress=False)
        photo = np.zeros((1, extractor.input_size, extractor.input_size, 3), dtype=np.uint8)
        views = 3 if config.rotations else 1
        cost = time_it(lambda e=extractor, x=photo: e.embed(x), repeats=args.repeats, warmup=3).median * views
        rows.append(
            [
                config.name,
                f"{on_holidays.mean_average_precision:.4f}",
                f"{on_scenes.precision_at_1:.4f}",
                f"{on_scenes.precision_at_5:.4f}",
                f"{cost:.1f}",
            ]
        )
        print(f"  done: {config.name} ({time.perf_counter() - started:.0f}s)", flush=True)
    print()
    print_table(["configuration", "Holidays mAP", "Intel P@1", "Intel P@5", "ms/photo (batch 1)"], rows)
    print_load_after()
    default = next((r for r in rows if r[0].startswith("DEFAULT")), None)
    if default is not None:
        print(f"default_holidays_map={default[1]} default_intel_p1={default[2]} default_ms={default[4]}")


if __name__ == "__main__":
    main()

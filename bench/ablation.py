"""Ablation: retrieval quality of each descriptor option beside its extraction cost, with the split protocol.

    python -m bench.ablation [--datasets ../shared/datasets] [--only NAME,...]

For each configuration: INRIA Holidays (holidays-dev) mAP and Intel scenes (intel-scenes-dev) P@1, on the whole
set and on each of its two fixed halves (`bench.dev_sets`), with `wanderlens eval`'s protocol (with DBA or QE each
query is searched in a catalog augmented without it, see `recommender.tools.evaluation`); Intel P@5; and the
extraction cost on this machine in ms per photo at batch 1 and at batch 32 (decode excluded: the network's forward
pass, every scale, plus the query-side views). Whitening, DBA and QE cost nothing at extraction; their search-time
cost is one or two more passes over the catalog matrix.

Then the split protocol: on each half, the configuration with the best mean of the two figures among those that
cost at most 1.5x the default (at batch 1 and at batch 32) is chosen, and reported on the other half beside the
default. The figures on the half it was chosen on are selection (optimistic by construction); those on the other
half are confirmation, the estimate of what photos nobody tuned on will see.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import SHARED_DATASETS, print_header, print_load_after, print_table, quiet_tensorflow, time_it
from bench.dev_sets import DEV_SETS, HALVES


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
    Config(
        "default on efficientnet-lite0+efficientnet-lite1@160", "efficientnet-lite0+efficientnet-lite1@160", **_DEFAULT
    ),
    Config(
        "default on efficientnet-lite0+efficientnet-lite1@192", "efficientnet-lite0+efficientnet-lite1@192", **_DEFAULT
    ),
    Config(
        "default on efficientnet-lite0+efficientnet-lite2@224", "efficientnet-lite0+efficientnet-lite2@224", **_DEFAULT
    ),
    Config("default on efficientnet-lite0+efficientnet-lite2", "efficientnet-lite0+efficientnet-lite2", **_DEFAULT),
]
MAX_COST_RATIO = 1.5  # the budget: at most 1.5x the default's extraction cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=SHARED_DATASETS)
    parser.add_argument("--only", default="", help="comma-separated prefixes of configuration names")
    parser.add_argument("--repeats", type=int, default=30, help="timed batch-1 calls per configuration")
    args = parser.parse_args()
    quiet_tensorflow()

    from bench.dev_sets import evaluate_half
    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor
    from recommender.fingerprint import ExtractionOptions
    from recommender.pipeline import embed_paths
    from recommender.refine import RefineOptions
    from recommender.tools.evaluation import choose_on_halves

    photos = {dev.name: dev.photos(args.datasets) for dev in DEV_SETS}
    print_header("ablation: descriptor options on efficientnet-lite0 (and the default on other backbones)")
    chosen = [c for c in CONFIGS if not args.only or any(c.name.startswith(p) for p in args.only.split(","))]
    extractors: dict[tuple[str, ExtractionOptions], Extractor] = {}
    views: dict[tuple[str, ExtractionOptions], dict[str, list[np.ndarray]]] = {}
    quality: dict[str, list[str]] = {}  # each configuration's cells, before its cost
    keys: dict[str, tuple[str, ExtractionOptions]] = {}
    figures: dict[str, dict[int, tuple[float, ...]]] = {}
    started = time.perf_counter()
    for config in chosen:
        options = ExtractionOptions(
            pooling=config.pooling,
            scales=config.scales,
            trim_borders=config.trim,
            bands=config.bands,
            colour_weight=config.colour,
        )
        key = keys[config.name] = (config.backbone, options)
        if key not in extractors:
            extractor = extractors[key] = Extractor(load_backbone(config.backbone, options=options))
            extractor.warm_up()
            views[key] = {dev.name: [_fingerprints(extractor, photos[dev.name], embed_paths)] for dev in DEV_SETS}
        extractor, seen = extractors[key], views[key]
        if config.rotations and len(seen[DEV_SETS[0].name]) == 1:
            for dev in DEV_SETS:
                for turns in (1, 3):
                    pixels = np.stack([np.rot90(extractor.preprocess(p.path), turns) for p in photos[dev.name]])
                    seen[dev.name].append(extractor.embed(np.ascontiguousarray(pixels)).vectors)
        refine = RefineOptions(whitening=config.whitening, dba=config.dba, query_expansion=config.qe)
        cells: list[str] = []
        figures[config.name] = {half: () for half in HALVES}
        for dev in DEV_SETS:
            raw, *turned = seen[dev.name]
            reports = {
                half: evaluate_half(
                    dev,
                    photos[dev.name],
                    raw,
                    refine,
                    half,
                    unwhitened_tail=extractor.options.unwhitened_tail,
                    other_views=turned if config.rotations else (),
                )
                for half in (None, *HALVES)
            }
            cells += [f"{dev.headline(report):.4f}" for report in reports.values()]
            if dev.figure == "P@1":
                cells.append(f"{reports[None].precision_at_5:.4f}")
            for half in HALVES:
                figures[config.name][half] += (dev.headline(reports[half]),)
        quality[config.name] = cells
        print(f"  done: {config.name} ({time.perf_counter() - started:.0f}s)", flush=True)

    # Timed last, every network in turn and in several rounds: this machine's speed drifts by a third within
    # minutes, and networks timed minutes apart would be compared across that drift.
    per_network = extraction_costs(extractors, args.repeats)
    costs = {}
    for config in chosen:
        batch1_ms, batch32_ms = per_network[keys[config.name]]
        views_per_query = 3 if config.rotations else 1
        costs[config.name] = (batch1_ms * views_per_query, batch32_ms * views_per_query)
    print()
    headers = ["configuration"]
    for dev in DEV_SETS:
        headers += [f"{dev.name} {dev.figure}", "half 0", "half 1"] + (["P@5"] if dev.figure == "P@1" else [])
    rows = [[name, *cells, f"{costs[name][0]:.1f}", f"{costs[name][1]:.2f}"] for name, cells in quality.items()]
    print_table([*headers, "ms/photo batch 1", "ms/photo batch 32"], rows)
    print_split_protocol(figures, costs, choose_on_halves)
    print_load_after()


def _fingerprints(extractor: Any, photos: list[Any], embed_paths: Any) -> np.ndarray:
    embedded = embed_paths([p.path for p in photos], extractor, progress=False)
    if embedded.failures:
        raise RuntimeError(f"photos failed: {embedded.failures}")
    return np.stack([embedded.vectors[i] for i in range(len(photos))])


ROUNDS = 3


def extraction_costs(extractors: dict[Any, Any], repeats: int) -> dict[Any, tuple[float, float]]:
    """Median ms per photo of each extractor's compiled step at batch 1 and at batch 32, over interleaved rounds."""
    samples: dict[Any, list[tuple[float, float]]] = {key: [] for key in extractors}
    for _ in range(ROUNDS):
        for key, extractor in extractors.items():
            per_photo = []
            for batch, timed in ((1, max(3, repeats // ROUNDS)), (32, 3)):
                pixels = np.zeros((batch, extractor.input_size, extractor.input_size, 3), dtype=np.uint8)
                timing = time_it(lambda x=pixels, e=extractor: e.embed(x), repeats=timed, warmup=1)
                per_photo.append(timing.median / batch)
            samples[key].append((per_photo[0], per_photo[1]))
    return {
        key: (float(np.median([s[0] for s in got])), float(np.median([s[1] for s in got])))
        for key, got in samples.items()
    }


def print_split_protocol(
    figures: dict[str, dict[int, tuple[float, ...]]], costs: dict[str, tuple[float, float]], choose: Any
) -> None:
    default = next((name for name in figures if name.startswith("DEFAULT")), None)
    if default is None:
        return
    budget = [
        name
        for name, (batch1, batch32) in costs.items()
        if batch1 <= MAX_COST_RATIO * costs[default][0] and batch32 <= MAX_COST_RATIO * costs[default][1]
    ]
    within = _print_choices(
        choose(figures, default, eligible=budget),
        f"split protocol, within the budget ({MAX_COST_RATIO}x the default's ms/photo at batch 1 and at batch 32: "
        f"{len(budget)} of {len(figures)} configurations)",
    )
    _print_choices(choose(figures, default), "split protocol, every configuration whatever its cost (for information)")
    print(
        f"split_choices={'|'.join(c.option.split(':')[0] for c in within)} "
        + " ".join(f"gain_chosen_on_half{c.chosen_on}=" + "/".join(f"{g:+.4f}" for g in c.gains) for c in within)
    )


def _print_choices(choices: list[Any], title: str) -> list[Any]:
    names = " / ".join(f"{dev.name} {dev.figure}" for dev in DEV_SETS)
    print()
    print(title)
    print_table(
        [
            "chosen on",
            "configuration",
            f"selection ({names})",
            "confirmation: other half",
            "default: other half",
            "gain confirmed",
        ],
        [
            [
                f"half {choice.chosen_on}",
                choice.option,
                " / ".join(f"{f:.4f}" for f in choice.selection),
                " / ".join(f"{f:.4f}" for f in choice.confirmation),
                " / ".join(f"{f:.4f}" for f in choice.reference),
                " / ".join(f"{g:+.4f}" for g in choice.gains),
            ]
            for choice in choices
        ],
    )
    return choices


if __name__ == "__main__":
    main()

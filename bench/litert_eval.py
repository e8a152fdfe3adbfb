"""Retrieval quality of the LiteRT runtimes beside TensorFlow's, on both dev sets, whole and in two halves.

Run from the repository root (needs ``../shared/datasets``)::

    python -m bench.litert_eval                            # tensorflow, tflite-fp32, tflite-int8
    python -m bench.litert_eval --runtimes tensorflow,tflite-int8
    python -m bench.litert_eval --backbones efficientnet-lite0,efficientnet-lite0+efficientnet-lite1@192 \
        --runtimes tensorflow,tflite-int8-float-stem --protocol

Each backbone on each runtime fingerprints every photo of holidays-dev and intel-scenes-dev once with the default
extraction; the figures are then those `wanderlens eval` reports (the index's default refinement), for the whole set
and for each half (`bench.dev_sets`). The halves answer the issue's rule (int8 may cost at most 0.005 in Holidays
mAP and in Intel P@1, chosen on one half and confirmed on the other). Costs are against the first backbone on
TensorFlow (today's default unless ``--backbones`` says otherwise). With ``--protocol`` every run is also timed
(three interleaved rounds) and the ablation's split protocol chooses among the runs within its budget.
"""

from __future__ import annotations

import argparse
import functools
import time
from pathlib import Path

import numpy as np

from bench.ablation import extraction_costs, print_split_protocol
from bench.common import SHARED_DATASETS, print_load_after, print_table, quiet_tensorflow
from bench.dev_sets import DEV_SETS, HALVES, DevSet, evaluate_half
from recommender.fingerprint import DEFAULT_BACKBONE

MAX_COST = 0.005  # the rule


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runtimes", default="tensorflow,tflite-fp32,tflite-int8", help="comma-separated")
    parser.add_argument("--backbones", default=DEFAULT_BACKBONE, help="comma-separated (default: %(default)s)")
    parser.add_argument(
        "--protocol",
        action="store_true",
        help="also time every run and apply the ablation's split protocol to them (the first on TensorFlow is the "
        "default; the budget is 1.5x its ms per photo at batch 1 and 32)",
    )
    parser.add_argument("--datasets", type=Path, default=SHARED_DATASETS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    quiet_tensorflow()
    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor
    from recommender.pipeline import embed_paths
    from recommender.refine import DEFAULT_REFINE
    from recommender.tools.evaluation import choose_on_halves

    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    backbones = {name: load_backbone(name) for name in (b.strip() for b in args.backbones.split(",")) if name}
    runs = [(name, runtime) for name in backbones for runtime in runtimes]  # the first on TensorFlow: the baseline
    baseline = (next(iter(backbones)), "tensorflow") if "tensorflow" in runtimes else None
    photos = {dev.name: dev.photos(args.datasets) for dev in DEV_SETS}
    vectors: dict[tuple[tuple[str, str], str], np.ndarray] = {}
    extractors = {}
    for run in runs:
        extractor = extractors[run] = Extractor(backbones[run[0]], runtime=run[1])
        for dev in DEV_SETS:
            started = time.perf_counter()
            embedded = embed_paths([p.path for p in photos[dev.name]], extractor, progress=False)
            if embedded.failures:
                raise RuntimeError(f"{dev.name}: {len(embedded.failures)} photos failed: {embedded.failures}")
            vectors[run, dev.name] = np.stack([embedded.vectors[i] for i in range(len(photos[dev.name]))])
            took = time.perf_counter() - started
            print(f"{' on '.join(run)} {dev.name}: {len(photos[dev.name])} photos in {took:.1f}s")

    @functools.cache  # the baseline's figures are compared with every other run's
    def figures(run: tuple[str, str], dev: DevSet, half: int | None) -> tuple[float, float]:
        report = evaluate_half(
            dev,
            photos[dev.name],
            vectors[run, dev.name],
            DEFAULT_REFINE,
            half,
            unwhitened_tail=backbones[run[0]].options.unwhitened_tail,
        )
        return report.mean_average_precision, report.precision_at_1

    print()
    rows = []
    verdicts: dict[tuple[str, str], list[bool]] = {}
    for run in runs:
        row: list[object] = list(run)
        for dev in DEV_SETS:
            for half in (None, *HALVES):
                mean_ap, p1 = figures(run, dev, half)
                row.append(f"{mean_ap if dev.figure == 'mAP' else p1:.4f}")
                if half is not None and baseline is not None:
                    base_ap, base_p1 = figures(baseline, dev, half)
                    cost = (base_ap - mean_ap) if dev.figure == "mAP" else (base_p1 - p1)
                    verdicts.setdefault(run, []).append(cost <= MAX_COST)
        if baseline is not None and run[0] == baseline[0]:  # cosines only where the vectors are comparable
            pairs = [(vectors[run, d.name], vectors[baseline, d.name]) for d in DEV_SETS]
            cosines = np.concatenate([np.sum(ours * theirs, axis=1) for ours, theirs in pairs])
            row += [f"{cosines.mean():.4f}", f"{cosines.min():.4f}"]
        elif baseline is not None:
            row += ["", ""]
        rows.append(row)
    headers = ["backbone", "runtime"]
    for dev in DEV_SETS:
        headers += [f"{dev.name} {dev.figure}", "half 0", "half 1"]
    headers += ["mean cos to TF", "min cos"] if baseline is not None else []
    print_table(headers, rows)
    print()
    for run, passed in verdicts.items():
        if run != baseline:
            print(
                f"{' on '.join(run)}: costs <= {MAX_COST} on every half of both sets, against {' on '.join(baseline)}: "
                f"{'yes' if all(passed) else 'no'}"
            )
    if baseline is not None and args.protocol:
        # The ablation's split protocol, over these runs: each one's cost is timed here, in interleaved rounds.
        costs = extraction_costs(extractors, repeats=30)
        label = {run: ("DEFAULT: " if run == baseline else "") + " on ".join(run) for run in runs}
        halves = {
            label[run]: {
                half: tuple(figures(run, dev, half)[0 if dev.figure == "mAP" else 1] for dev in DEV_SETS)
                for half in HALVES
            }
            for run in runs
        }
        print_split_protocol(halves, {label[run]: costs[run] for run in runs}, choose_on_halves)
    print_load_after()


if __name__ == "__main__":
    main()

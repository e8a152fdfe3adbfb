"""The two dev sets and their fixed halves, shared by every benchmark that measures quality.

Options are chosen on one half and confirmed on the other, both ways (`recommender.tools.evaluation.
choose_on_halves`). The halves are deterministic: Holidays is split by label (a query and its matches stay
together), Intel by photo (its labels are its six classes, which each half must keep), both by the sha256 of the
label or file name. Each half is evaluated as a dev set of its own: its photos are its whole catalog, and the
refinement (whitening, DBA) is learned from it alone.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recommender.refine import RefineOptions
from recommender.tools.evaluation import EvalReport, LabelledPhoto, evaluate_vectors, read_manifest

HALVES = (0, 1)


@dataclass(frozen=True)
class DevSet:
    name: str
    figure: str  # the headline figure: "mAP" or "P@1"
    split_by_label: bool

    def photos(self, datasets: Path) -> list[LabelledPhoto]:
        manifest = datasets / self.name / "manifest.csv"
        if not manifest.exists():
            raise SystemExit(f"{manifest} is missing: pass --datasets (the evaluation photos are not in the repo)")
        return read_manifest(manifest)

    def half_of(self, photo: LabelledPhoto) -> int:
        key = photo.label if self.split_by_label else photo.path.name
        return hashlib.sha256(key.encode()).digest()[0] % 2

    def headline(self, report: EvalReport) -> float:
        return report.mean_average_precision if self.figure == "mAP" else report.precision_at_1


DEV_SETS = (DevSet("holidays-dev", "mAP", True), DevSet("intel-scenes-dev", "P@1", False))


def evaluate_half(
    dev: DevSet,
    photos: Sequence[LabelledPhoto],
    raw: np.ndarray,
    refine: RefineOptions,
    half: int | None,
    *,
    unwhitened_tail: int = 0,
    other_views: Sequence[np.ndarray] = (),
) -> EvalReport:
    """`wanderlens eval`'s figures for one half of a dev set (None: the whole set); rows of ``raw`` are photos'."""
    rows = [i for i, photo in enumerate(photos) if half is None or dev.half_of(photo) == half]
    return evaluate_vectors(
        raw[rows],
        [photos[i].label for i in rows],
        [photos[i].is_query for i in rows],
        refine,
        unwhitened_tail=unwhitened_tail,
        other_views=[view[rows] for view in other_views],
    )

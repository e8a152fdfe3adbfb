"""Retrieval quality on a labelled manifest: mean average precision and precision at 1 and 5.

A manifest is a CSV with columns ``path,label`` and optionally ``is_query`` (paths relative to the manifest's
folder). With ``is_query`` each query is ranked against every other row (the INRIA Holidays protocol: the query
itself is left out, average precision over the whole ranking). Without it every row is a query in turn
(leave-one-out).

Refinements are learned from the photos as an index build would learn them from a catalog. DBA and query expansion
mix catalog rows, so with them a query left out of the ranking would still be inside its neighbours' vectors and
pull them toward itself (+0.008 P@1 on intel-scenes-dev with DBA 5 + QE 5); there the queries are split into folds and
each fold is searched in a catalog augmented without it, as a new photo is searched in an index that has never
seen it.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.errors import BadInput
from recommender.pipeline import embed_paths
from recommender.refine import (
    DEFAULT_REFINE,
    RefineOptions,
    augment_database,
    expand_query,
    refine_catalog,
    unit,
)

if TYPE_CHECKING:
    from recommender.extractor import Extractor


@dataclass(frozen=True)
class LabelledPhoto:
    path: Path
    label: str
    is_query: bool


@dataclass(frozen=True)
class EvalReport:
    queries: int
    database: int
    mean_average_precision: float
    precision_at_1: float
    precision_at_5: float
    failures: tuple[str, ...] = ()

    def summary_line(self) -> str:
        return f"mAP={self.mean_average_precision:.4f} P@1={self.precision_at_1:.4f} P@5={self.precision_at_5:.4f}"


def read_manifest(manifest: str | Path) -> list[LabelledPhoto]:
    manifest = Path(manifest)
    with manifest.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.DictReader(file)
        columns = set(reader.fieldnames or ())
        if not {"path", "label"} <= columns:
            raise BadInput(f"a manifest needs columns path,label[,is_query]. Received: {sorted(columns)}")
        has_queries = "is_query" in columns
        return [
            LabelledPhoto(
                path=manifest.parent / row["path"],
                label=row["label"],
                is_query=_truthy(row.get("is_query")) if has_queries else True,
            )
            for row in reader
        ]


def _truthy(value: str | None) -> bool:
    text = (value or "").strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("", "0", "false", "no", "n"):
        return False
    raise BadInput(f"is_query must be 1/0, true/false or yes/no. Received: {value!r}")


def average_precision(relevant_in_rank_order: np.ndarray, total_relevant: int) -> float:
    """Non-interpolated AP of one ranking given as a boolean array (True where the item is relevant)."""
    if total_relevant == 0:
        return 0.0
    hits = np.cumsum(relevant_in_rank_order)
    ranks = np.flatnonzero(relevant_in_rank_order) + 1
    return float(np.sum(hits[ranks - 1] / ranks) / total_relevant)


HELD_OUT_FOLDS = 20  # with DBA or QE: each fold of queries is searched in the other 95 % of the photos


@dataclass
class _Scores:
    """Per-query scores, gathered fold by fold."""

    aps: list[float] = field(default_factory=list)
    p1: list[float] = field(default_factory=list)
    p5: list[float] = field(default_factory=list)

    def add(self, similarity: np.ndarray, query_label: int, catalog_labels: np.ndarray) -> None:
        order = np.argsort(-similarity, kind="stable")
        relevant = catalog_labels[order] == query_label
        total = int(relevant.sum())
        if total == 0:
            return  # a query with nothing to find says nothing about the ranking
        self.aps.append(average_precision(relevant, total))
        self.p1.append(float(relevant[0]))
        self.p5.append(float(relevant[:5].mean()))

    def report(self, database: int) -> EvalReport:
        return EvalReport(
            queries=len(self.aps),
            database=database,
            mean_average_precision=float(np.mean(self.aps)) if self.aps else 0.0,
            precision_at_1=float(np.mean(self.p1)) if self.p1 else 0.0,
            precision_at_5=float(np.mean(self.p5)) if self.p5 else 0.0,
        )


def _best_over_views(views: Sequence[np.ndarray], catalog: np.ndarray) -> np.ndarray:
    similarity = views[0] @ catalog.T
    for view in views[1:]:
        similarity = np.maximum(similarity, view @ catalog.T)
    return similarity


def retrieval_metrics(
    vectors: np.ndarray,
    labels: list[str],
    is_query: list[bool],
    *,
    query_views: Sequence[np.ndarray] = (),
) -> EvalReport:
    """Rank every other row for each query row by cosine similarity and score the rankings.

    ``query_views``: other versions of every row to query with (expanded, or rotated photos); each catalog
    row then counts with its best similarity to any view.
    """
    label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    queries = np.flatnonzero(is_query)
    views = [view[queries] for view in query_views] or [vectors[queries]]
    similarity = _best_over_views(views, vectors)
    scores = _Scores()
    others = np.ones(len(vectors), dtype=bool)
    for row, query in enumerate(queries):
        others[query] = False  # the query itself is not among its results
        scores.add(similarity[row][others], label_ids[query], label_ids[others])
        others[query] = True
    return scores.report(len(vectors) - 1)


def evaluate_vectors(
    raw: np.ndarray,
    labels: list[str],
    is_query: list[bool],
    refine: RefineOptions,
    *,
    unwhitened_tail: int = 0,
    other_views: Sequence[np.ndarray] = (),
) -> EvalReport:
    """Retrieval quality of raw fingerprints once ``refine`` is learned from them, as an index build would.

    ``other_views``: the same photos seen otherwise (e.g. turned), tried as queries beside ``raw``.
    """
    # The whitening is learned once from every photo, as in leave-one-out (each photo is 1/n of it); what moves a
    # vector by its nearest neighbours (DBA, QE) is computed without the queries it ranks for.
    whitened, whitening = refine_catalog(raw, replace(refine, dba=0), unwhitened_tail=unwhitened_tail)
    prepared_views = [whitening.apply(v) if whitening is not None else unit(v) for v in (raw, *other_views)]
    if refine.dba <= 0 and refine.query_expansion <= 0:
        return retrieval_metrics(whitened, labels, is_query, query_views=prepared_views)
    label_ids = np.unique(np.asarray(labels), return_inverse=True)[1]
    queries = np.flatnonzero(is_query)
    scores, smallest_catalog = _Scores(), len(raw)
    for fold in range(HELD_OUT_FOLDS):
        held = queries[fold::HELD_OUT_FOLDS]
        if len(held) == 0:
            continue
        in_catalog = np.ones(len(raw), dtype=bool)
        in_catalog[held] = False
        smallest_catalog = min(smallest_catalog, int(in_catalog.sum()))
        database = augment_database(whitened[in_catalog], refine.dba, refine.alpha)
        views = [expand_query(v[held], database, refine.query_expansion, refine.alpha) for v in prepared_views]
        similarity = _best_over_views(views, database)
        for row, query in enumerate(held):
            scores.add(similarity[row], label_ids[query], label_ids[in_catalog])
    return scores.report(smallest_catalog)


def evaluate_manifest(
    manifest: str | Path,
    extractor: Extractor,
    *,
    refine: RefineOptions = DEFAULT_REFINE,
    rotations: bool = False,
    batch_size: int = 32,
    progress: bool = True,
) -> EvalReport:
    """Embed every photo of the manifest with ``extractor`` and measure retrieval quality.

    The photos are the catalog: ``refine`` (whitening, DBA, QE) is learned from and applied to them as an
    index build would. With ``rotations`` each query is also tried turned a quarter left and right.
    """
    photos = read_manifest(manifest)
    embedded = embed_paths([p.path for p in photos], extractor, batch_size=batch_size, progress=progress)
    kept = sorted(embedded.vectors)
    if not kept:
        raise BadInput(f"no photo of the manifest could be read. Received: {manifest}")
    raw = np.stack([embedded.vectors[i] for i in kept])
    turned = []
    if rotations:
        for turns in (1, 3):
            pixels = np.stack([np.rot90(extractor.preprocess(photos[i].path), turns) for i in kept])
            turned.append(extractor.embed(np.ascontiguousarray(pixels)).vectors)
    report = evaluate_vectors(
        raw,
        [photos[i].label for i in kept],
        [photos[i].is_query for i in kept],
        refine,
        unwhitened_tail=extractor.options.unwhitened_tail,
        other_views=turned,
    )
    failures = tuple(f"{photos[i].path}: {why}" for i, why in sorted(embedded.failures.items()))
    return replace(report, failures=failures)


# ---- choosing options honestly: on one half of the dev photos, confirmed on the other


@dataclass(frozen=True)
class SplitChoice:
    """One direction of the split protocol: the option chosen on ``chosen_on``, and how it fares on the other half
    beside the reference option (the current default)."""

    chosen_on: int
    option: str
    selection: tuple[float, ...]  # the chosen option's figures on the half it was chosen on
    confirmation: tuple[float, ...]  # ... and on the other half: the honest estimate
    reference: tuple[float, ...]  # the reference option's figures on that other half

    @property
    def gains(self) -> tuple[float, ...]:
        return tuple(c - r for c, r in zip(self.confirmation, self.reference, strict=True))


def choose_on_halves(
    figures: dict[str, dict[int, tuple[float, ...]]], reference: str, *, eligible: Sequence[str] | None = None
) -> list[SplitChoice]:
    """For each half: the eligible option with the best mean figure there, reported on the other half.

    ``figures[option][half]``: the headline figures (e.g. Holidays mAP, Intel P@1) on that half. What is chosen on
    a half says nothing about how good it is on that half (it was picked for being best there); only the other
    half's figures estimate what new photos will see, and the two directions' difference shows the spread.
    """
    candidates = list(eligible if eligible is not None else figures)
    if not candidates or reference not in figures:
        raise ValueError(f"need candidates and the reference among the figures. Received: {sorted(figures)}")
    choices = []
    for chosen_on in (0, 1):
        other = 1 - chosen_on
        best = max(candidates, key=lambda option: float(np.mean(figures[option][chosen_on])))
        choices.append(
            SplitChoice(
                chosen_on=chosen_on,
                option=best,
                selection=figures[best][chosen_on],
                confirmation=figures[best][other],
                reference=figures[reference][other],
            )
        )
    return choices

"""Retrieval quality on a labelled manifest: mean average precision and precision at 1 and 5.

A manifest is a CSV with columns ``path,label`` and optionally ``is_query`` (paths relative to the manifest's
folder). With ``is_query`` each query is ranked against every other row (the INRIA Holidays protocol: the query
itself is left out, average precision over the whole ranking). Without it every row is a query in turn
(leave-one-out).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.pipeline import embed_paths
from recommender.refine import DEFAULT_REFINE, RefineOptions, expand_query, refine_catalog, unit

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
            raise ValueError(f"a manifest needs columns path,label[,is_query]. Received: {sorted(columns)}")
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
    raise ValueError(f"is_query must be 1/0, true/false or yes/no. Received: {value!r}")


def average_precision(relevant_in_rank_order: np.ndarray, total_relevant: int) -> float:
    """Non-interpolated AP of one ranking given as a boolean array (True where the item is relevant)."""
    if total_relevant == 0:
        return 0.0
    hits = np.cumsum(relevant_in_rank_order)
    ranks = np.flatnonzero(relevant_in_rank_order) + 1
    return float(np.sum(hits[ranks - 1] / ranks) / total_relevant)


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
    similarity = vectors @ vectors.T if not query_views else query_views[0] @ vectors.T
    for view in query_views[1:]:
        similarity = np.maximum(similarity, view @ vectors.T)
    aps, p1, p5 = [], [], []
    for query in np.flatnonzero(is_query):
        scores = similarity[query].copy()
        scores[query] = -np.inf
        order = np.argsort(-scores, kind="stable")[:-1]  # the query itself sorts last
        relevant = label_ids[order] == label_ids[query]
        total = int(relevant.sum())
        if total == 0:
            continue  # a query with nothing to find says nothing about the ranking
        aps.append(average_precision(relevant, total))
        p1.append(float(relevant[0]))
        p5.append(float(relevant[:5].mean()))
    return EvalReport(
        queries=len(aps),
        database=len(vectors) - 1,
        mean_average_precision=float(np.mean(aps)) if aps else 0.0,
        precision_at_1=float(np.mean(p1)) if p1 else 0.0,
        precision_at_5=float(np.mean(p5)) if p5 else 0.0,
    )


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
        raise ValueError(f"no photo of the manifest could be read. Received: {manifest}")
    raw = np.stack([embedded.vectors[i] for i in kept])
    database, whitening = refine_catalog(raw, refine, unwhitened_tail=extractor.options.unwhitened_tail)

    def prepare(views: np.ndarray) -> np.ndarray:
        queries = whitening.apply(views) if whitening is not None else unit(views)
        # The query is one of the catalog's own rows here: leave it out of its own expansion.
        return expand_query(queries, database, refine.query_expansion, refine.alpha, skip_same_row=True)

    views = [prepare(raw)]
    if rotations:
        for turns in (1, 3):
            turned = np.stack([np.rot90(extractor.preprocess(photos[i].path), turns) for i in kept])
            views.append(prepare(extractor.embed(np.ascontiguousarray(turned)).vectors))
    report = retrieval_metrics(
        database,
        [photos[i].label for i in kept],
        [photos[i].is_query for i in kept],
        query_views=views,
    )
    failures = tuple(f"{photos[i].path}: {why}" for i, why in sorted(embedded.failures.items()))
    return replace(report, failures=failures)

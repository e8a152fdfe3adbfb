"""Taste: steering a query toward what a person liked, and ranking places for a whole group.

Pure functions over unit vectors; where the likes are stored is the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.refine import unit

GROUP_STRATEGIES = ("mean", "least_misery", "fair")


@dataclass(frozen=True)
class TasteWeights:
    """Rocchio weights: how much the photo, the likes and the dislikes each pull the query."""

    query: float = 1.0
    liked: float = 0.5
    disliked: float = 0.25


def taste_profile(liked: np.ndarray, disliked: np.ndarray | None = None) -> np.ndarray | None:
    """One unit vector for a person's taste (mean of likes minus a little of dislikes); None without likes."""
    if liked is None or len(liked) == 0:
        return None
    profile = np.mean(liked, axis=0)
    if disliked is not None and len(disliked):
        profile = profile - 0.5 * np.mean(disliked, axis=0)
    return unit(profile)


def steer(
    query: np.ndarray,
    liked: np.ndarray | None = None,
    disliked: np.ndarray | None = None,
    weights: TasteWeights = TasteWeights(),
) -> np.ndarray:
    """Rocchio: a*query + b*mean(liked) - c*mean(disliked), back on the unit sphere."""
    steered = weights.query * np.asarray(query, dtype=np.float32)
    if liked is not None and len(liked):
        steered = steered + weights.liked * np.mean(liked, axis=0)
    if disliked is not None and len(disliked):
        steered = steered - weights.disliked * np.mean(disliked, axis=0)
    return unit(steered)


@dataclass(frozen=True)
class GroupCandidate:
    position: int
    score: float  # the strategy's score (standardised similarity)
    mean: float
    least: float
    fits: tuple[str, ...]  # members for whom this place is among their best


def rank_for_group(
    profiles: Mapping[str, np.ndarray],
    catalog: np.ndarray,
    k: int,
    *,
    strategy: str = "fair",
    exclude: Sequence[int] = (),
    fit_quantile: float = 0.9,
) -> list[GroupCandidate]:
    """The k catalog rows that suit the group best, with whom each one fits.

    Each member's similarities are standardised over the catalog first: people's raw cosine scores live on
    different scales, and without this the member with the "easiest" taste would decide for everyone.
    ``mean`` maximises the average, ``least_misery`` the worst-off member, ``fair`` the average of the two.
    A place fits a member when it is in the top ``1 - fit_quantile`` of that member's own ranking.
    """
    if strategy not in GROUP_STRATEGIES:
        raise ValueError(f"strategy must be one of {GROUP_STRATEGIES}. Received: strategy={strategy!r}")
    if not profiles:
        return []
    members = list(profiles)
    raw = np.stack([np.asarray(catalog @ profiles[m], dtype=np.float32) for m in members])  # (members, n)
    spread = raw.std(axis=1, keepdims=True)
    standard = (raw - raw.mean(axis=1, keepdims=True)) / np.where(spread > 1e-9, spread, 1.0)
    thresholds = np.quantile(raw, fit_quantile, axis=1)
    mean, least = standard.mean(axis=0), standard.min(axis=0)
    score = {"mean": mean, "least_misery": least, "fair": (mean + least) / 2}[strategy].copy()
    excluded = [i for i in exclude if 0 <= i < len(score)]
    score[excluded] = -np.inf
    order = np.argsort(-score, kind="stable")[: max(0, min(k, len(score) - len(set(excluded))))]
    return [
        GroupCandidate(
            position=int(i),
            score=float(score[i]),
            mean=float(mean[i]),
            least=float(least[i]),
            fits=tuple(m for j, m in enumerate(members) if raw[j, i] >= thresholds[j]),
        )
        for i in order
    ]

"""The ranking policy, in one place: what a photo (or a group) gets back from the catalog, and in what order.

The worker and the CLI both call these; they pass what they stored (likes, exclusions, a region, locations) as
plain arguments. The order comes from the catalog's refined (whitened, expanded, taste-steered) scores; the
similarity shown to people is the plain cosine of the two photos' fingerprints, since that is what "% match" is
read as.

Distance, when someone shared a location: the best ``NEAR_POOL`` destinations by similarity are re-ordered by

    similarity in standard deviations of the pool  -  DISTANCE_WEIGHT * log2(1 + km / DISTANCE_SCALE_KM)

so each doubling of the distance beyond a few hundred kilometres costs half a standard deviation of similarity:
a place next door beats a slightly more alike one across the world, but not a far better match. A region filter
(``Scope.region``) is applied inside the search, so a page is full whenever the region has enough places.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.catalog import Destination
from recommender.geo import MAX_RADIUS_KM, Region, distance_km, region_mask
from recommender.index import DestinationIndex
from recommender.taste import TasteWeights, rank_for_group, steer, taste_profile

NEAR_POOL = 200
DISTANCE_SCALE_KM = 250.0
DISTANCE_WEIGHT = 0.5


@dataclass(frozen=True)
class Scope:
    """Where results may come from and whom they should be close to."""

    region: Region | None = None
    near: tuple[tuple[float, float], ...] = ()  # (lat, lon) of the person, or of each member of a group


@dataclass(frozen=True)
class RankedDestination:
    position: int  # the catalog row
    destination: Destination
    similarity: float  # for people: the plain photo similarity (photos), or the group's fit score (groups)
    fits: tuple[str, ...] = ()  # group suggestions: the members it suits
    distance_km: float | None = None  # from the person (or the group's members, on average), when known


def allowed_rows(index: DestinationIndex, scope: Scope) -> np.ndarray | None:
    """The region as a boolean per row (None: everywhere)."""
    if scope.region is None:
        return None
    origin = scope.near[0] if scope.near else None
    return region_mask(scope.region, index.country_codes, index.coordinates, origin)


def mean_distance_km(
    index: DestinationIndex, positions: Sequence[int], near: Sequence[tuple[float, float]]
) -> np.ndarray:
    """Mean distance from the locations in ``near`` to each row; as far as can be where a row has no coordinates."""
    points = index.coordinates[np.asarray(positions, dtype=np.int64)]
    distances = np.mean([distance_km(origin, points) for origin in near], axis=0)
    return np.where(np.isnan(distances), MAX_RADIUS_KM, distances)


def by_distance(scores: np.ndarray, distances: np.ndarray) -> np.ndarray:
    """The pool's order once distance weighs in (indices into the pool, best first)."""
    spread = float(scores.std())
    standard = (scores - scores.mean()) / (spread if spread > 1e-9 else 1.0)
    combined = standard - DISTANCE_WEIGHT * np.log2(1.0 + distances / DISTANCE_SCALE_KM)
    return np.argsort(-combined, kind="stable")


def _steered(
    index: DestinationIndex, raw_queries: np.ndarray, liked_ids: Sequence[Sequence[str]], taste: TasteWeights
) -> np.ndarray:
    """Each photo's fingerprint in the catalog's (whitened) space, leaning toward what its person liked."""
    searched = index.prepare_queries(raw_queries)  # one whitening for the whole batch
    steered = []
    for query, liked_by_them in zip(searched, liked_ids, strict=True):
        liked = index.vectors_of(liked_by_them)
        steered.append(steer(query, liked, weights=taste) if len(liked) else query)
    return np.stack(steered)


def _ranked(
    index: DestinationIndex, raw_query: np.ndarray, positions: list[int], distances: np.ndarray | None = None
) -> list[RankedDestination]:
    alike = index.photo_similarity(raw_query, positions) if positions else np.zeros(0, np.float32)
    return [
        RankedDestination(
            position,
            index.destinations[position],
            float(score),
            distance_km=float(distances[n]) if distances is not None else None,
        )
        for n, (position, score) in enumerate(zip(positions, alike, strict=True))
    ]


def rank_for_photo(
    index: DestinationIndex,
    raw_query: np.ndarray,
    limit: int,
    *,
    liked_ids: Sequence[str] = (),
    exclude: Collection[str] = (),
    taste: TasteWeights | None = None,
    scope: Scope | None = None,
) -> list[RankedDestination]:
    """The best ``limit`` destinations for a photo's fingerprint, leaning toward ``liked_ids``, within ``scope``."""
    scope = scope or Scope()
    steered = _steered(index, np.atleast_2d(raw_query), [liked_ids], taste or TasteWeights())[0]
    pool = max(limit, NEAR_POOL) if scope.near else limit
    matches = index.rank_positions(steered, pool, exclude=exclude, allowed=allowed_rows(index, scope))
    positions = [match.position for match in matches]
    if not scope.near or not positions:
        return _ranked(index, raw_query, positions)
    distances = mean_distance_km(index, positions, scope.near)
    order = by_distance(np.array([m.score for m in matches]), distances)[:limit]
    return _ranked(index, raw_query, [positions[i] for i in order], distances[order])


def rank_for_photos(
    index: DestinationIndex,
    raw_queries: np.ndarray,
    limit: int,
    *,
    liked_ids: Sequence[Sequence[str]],
    taste: TasteWeights | None = None,
) -> list[list[RankedDestination]]:
    """``rank_for_photo`` for a batch of photos without a region or a location: the same rankings, at once."""
    steered = _steered(index, raw_queries, liked_ids, taste or TasteWeights())
    return [
        _ranked(index, raw, [match.position for match in matches])
        for raw, matches in zip(raw_queries, index.rank_many(steered, limit), strict=True)
    ]


def rank_for_members(
    index: DestinationIndex, member_likes: Mapping[str, Sequence[str]], limit: int, *, scope: Scope | None = None
) -> tuple[list[RankedDestination], tuple[str, ...]]:
    """Places for a group, none that someone already liked, and whom each fits; also the members counted.

    Members without a like still in the catalog are not counted. No members: no places. With the members'
    locations in ``scope.near``, places close to all of them (on average) come first.
    """
    scope = scope or Scope()
    profiles = {}
    for member, ids in member_likes.items():
        profile = taste_profile(index.vectors_of(ids))
        if profile is not None:
            profiles[member] = profile
    if not profiles:
        return [], ()
    liked = {index.group_of(p) for ids in member_likes.values() for i in ids if (p := index.position(i)) is not None}
    # Every photo of a place someone liked is left out, and each place comes once, with its best photo.
    allowed = allowed_rows(index, scope)
    excluded = index.rows_in_groups(liked)
    if allowed is not None:
        excluded = sorted(set(excluded) | set(np.flatnonzero(~allowed).tolist()))
    pool = max(limit, NEAR_POOL) if scope.near else limit
    candidates = rank_for_group(
        profiles, np.asarray(index.vectors, dtype=np.float32), index.overfetch(pool), exclude=excluded
    )
    distances: dict[int, float] = {}
    if scope.near and candidates:
        far = mean_distance_km(index, [c.position for c in candidates], scope.near)
        order = by_distance(np.array([c.score for c in candidates]), far)
        candidates = [candidates[i] for i in order]
        distances = {c.position: float(far[i]) for i, c in zip(order, candidates, strict=True)}
    seen: set[int] = set()
    ranked = []
    for c in candidates:
        if index.group_of(c.position) not in seen and len(ranked) < limit:
            seen.add(index.group_of(c.position))
            ranked.append(
                RankedDestination(
                    c.position, index.destinations[c.position], c.score, c.fits, distances.get(c.position)
                )
            )
    return ranked, tuple(sorted(profiles))

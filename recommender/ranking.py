"""The ranking policy, in one place: what a photo (or a group) gets back from the catalog, and in what order.

The worker and the CLI both call these; they pass what they stored (likes, exclusions) as plain arguments.
The order comes from the catalog's refined (whitened, expanded, taste-steered) scores; the similarity shown to
people is the plain cosine of the two photos' fingerprints, since that is what "% match" is read as.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from recommender.catalog import Destination
from recommender.index import DestinationIndex
from recommender.taste import TasteWeights, rank_for_group, steer, taste_profile


@dataclass(frozen=True)
class RankedDestination:
    position: int  # the catalog row
    destination: Destination
    similarity: float  # for people: the plain photo similarity (photos), or the group's fit score (groups)
    fits: tuple[str, ...] = ()  # group suggestions: the members it suits


def rank_for_photo(
    index: DestinationIndex,
    raw_query: np.ndarray,
    limit: int,
    *,
    liked_ids: Sequence[str] = (),
    exclude: Collection[str] = (),
    taste: TasteWeights | None = None,
) -> list[RankedDestination]:
    """The best ``limit`` destinations for a photo's fingerprint, leaning toward ``liked_ids``."""
    searched = index.prepare_queries(raw_query)[0]  # into the catalog's (whitened) space, where the likes live
    liked = index.vectors_of(liked_ids)
    steered = steer(searched, liked, weights=taste or TasteWeights()) if len(liked) else searched
    positions = [match.position for match in index.rank_positions(steered, limit, exclude=exclude)]
    alike = index.photo_similarity(raw_query, positions) if positions else np.zeros(0, np.float32)
    return [
        RankedDestination(position, index.destinations[position], float(score))
        for position, score in zip(positions, alike, strict=True)
    ]


def rank_for_members(
    index: DestinationIndex, member_likes: Mapping[str, Sequence[str]], limit: int
) -> tuple[list[RankedDestination], tuple[str, ...]]:
    """Places for a group, none that someone already liked, and whom each fits; also the members counted.

    Members without a like still in the catalog are not counted. No members: no places.
    """
    profiles = {}
    for member, ids in member_likes.items():
        profile = taste_profile(index.vectors_of(ids))
        if profile is not None:
            profiles[member] = profile
    if not profiles:
        return [], ()
    liked = {index.group_of(p) for ids in member_likes.values() for i in ids if (p := index.position(i)) is not None}
    # Every photo of a place someone liked is left out, and each place comes once, with its best photo.
    candidates = rank_for_group(
        profiles,
        np.asarray(index.vectors, dtype=np.float32),
        index.overfetch(limit),
        exclude=index.rows_in_groups(liked),
    )
    seen: set[int] = set()
    ranked = []
    for c in candidates:
        if index.group_of(c.position) not in seen and len(ranked) < limit:
            seen.add(index.group_of(c.position))
            ranked.append(RankedDestination(c.position, index.destinations[c.position], c.score, c.fits))
    return ranked, tuple(sorted(profiles))

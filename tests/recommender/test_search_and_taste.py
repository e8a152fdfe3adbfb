"""Tests for recommender.search (exact top-k, near-duplicates) and recommender.taste (steering, group ranking)."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.search import ExactIndex, Match, collapse_duplicates, near_duplicate_groups, top_k
from recommender.taste import GROUP_STRATEGIES, TasteWeights, rank_for_group, steer, taste_profile


def unit_rows(rows: np.ndarray) -> np.ndarray:
    rows = np.asarray(rows, dtype=np.float32)
    return rows / np.linalg.norm(rows, axis=-1, keepdims=True)


def random_units(count: int, dim: int, seed: int) -> np.ndarray:
    return unit_rows(np.random.default_rng(seed).normal(size=(count, dim)))


def brute_force(matrix: np.ndarray, query: np.ndarray, k: int, exclude: set[int] = frozenset()) -> list[int]:
    scores = (matrix @ query).astype(np.float32)
    return [int(i) for i in np.argsort(-scores, kind="stable") if int(i) not in exclude][:k]


def positions(matches: list[Match]) -> list[int]:
    return [m.position for m in matches]


# --- exact search ---------------------------------------------------------------------------------------------
# "host" is numpy's path; "keras" keeps the matrix in a Keras tensor and takes the top-k there, which is the
# accelerator's code path even on this CPU. Both must give the same ranking, ties included.
PLACEMENTS = pytest.mark.parametrize("placement", ["host", "keras"])


@PLACEMENTS
@pytest.mark.parametrize("k", [1, 5, 37, 200, 500])
def test_search_matches_brute_force(k, placement):
    matrix = random_units(200, 32, seed=0)
    queries = random_units(6, 32, seed=1)
    index = ExactIndex(matrix, placement=placement)

    results = index.search(queries, k)

    assert len(results) == 6
    for query, matches in zip(queries, results, strict=True):
        assert positions(matches) == brute_force(matrix, query, k)
        scores = [m.score for m in matches]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores, matrix[positions(matches)] @ query, atol=1e-6)


@PLACEMENTS
def test_search_with_exclude(placement):
    matrix = random_units(400, 16, seed=2)
    queries = matrix[[3, 40]]
    exclude = [{3, 7, 8, 99}, set(range(1, 60, 2))]

    results = ExactIndex(matrix, placement=placement).search(queries, 10, exclude=exclude)

    for query, skip, matches in zip(queries, exclude, results, strict=True):
        assert positions(matches) == brute_force(matrix, query, 10, skip)
        assert not set(positions(matches)) & skip
    assert results[1][0].position == 40 and results[1][0].score == pytest.approx(1.0, abs=1e-6)


@PLACEMENTS
def test_everything_excluded_or_k_beyond_the_size(placement):
    matrix = random_units(5, 4, seed=3)
    index = ExactIndex(matrix, placement=placement)
    assert positions(index.search(matrix[0], 50)[0]) == brute_force(matrix, matrix[0], 50)
    assert len(index.search(matrix[0], 50, exclude=[{1, 2}])[0]) == 3
    assert index.search(matrix[0], 3, exclude=[set(range(5))]) == [[]]


@PLACEMENTS
@pytest.mark.parametrize("copies", [3, 40])  # 40: the tie runs past the device's candidates
def test_ties_rank_by_position_whatever_k_is(placement, copies):
    base = random_units(4, 8, seed=4)
    query = base[1] * 0.6 + base[2] * 0.4
    base = np.vstack([base, -unit_rows(query)])  # row 4 is the query's opposite: it ranks below all the others
    rng = np.random.default_rng(copies)
    pattern = np.concatenate([[0, 1, 2, 3], rng.choice([1, 2], copies), np.full(300, 4)])
    matrix = base[pattern]  # many rows with exactly equal scores, then many that rank below them all
    assert (matrix @ query)[pattern == 4].max() < (matrix @ query)[pattern != 4].min()
    index = ExactIndex(matrix, placement=placement)

    # Ranked by the index's own scores: a backend's matrix product may give equal rows scores an ulp apart.
    scores = index.scores(query[None])[0]
    full = [int(i) for i in np.argsort(-scores, kind="stable")]
    assert len(set(scores[full[:5]])) < 5  # the ties are there
    for k in range(1, copies + 6):
        assert positions(index.search(query, k)[0]) == full[:k], k
    for k in range(1, copies + 6):
        assert positions(index.search(query, k, exclude=[{3, 7}])[0]) == [p for p in full if p not in (3, 7)][:k], k

    # One row of scores directly, with an exclusion made of a list.
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1, 0.5, 0.9, 0.5], dtype=np.float32)
    assert positions(top_k(scores, 4)) == [1, 6, 0, 2]
    assert positions(top_k(scores, 4, exclude=[0, 6])) == [1, 2, 3, 5]


@PLACEMENTS
def test_search_checks_its_arguments(placement):
    index = ExactIndex(random_units(100, 4, seed=5), placement=placement)
    with pytest.raises(ValueError, match=r"k must be a positive integer\. Received: k=0"):
        index.search(np.ones(4), 0)
    with pytest.raises(ValueError, match=r"queries must have 4 columns. Received: shape=\(1, 5\)"):
        index.search(np.ones(5), 1)
    with pytest.raises(ValueError, match=r"one collection per query. Received: 1 for 2 queries"):
        index.search(np.ones((2, 4)), 1, exclude=[[3]])
    with pytest.raises(ValueError, match="expected a 2-D matrix"):
        ExactIndex(np.ones(4))


def test_index_basics():
    matrix = random_units(10, 4, seed=6)
    index = ExactIndex(matrix)  # on the GPU when there is one

    assert (index.size, index.dim) == (10, 4)
    np.testing.assert_array_equal(index.vectors([3, 1]), matrix[[3, 1]])
    assert index.vectors([3]).dtype == np.float32
    tolerance = 3e-3 if index.on_accelerator else 1e-6  # TF32 on a GPU
    np.testing.assert_allclose(index.scores(matrix[:2]), matrix[:2] @ matrix.T, atol=tolerance)
    assert index.scores(matrix[:2]).shape == (2, 10)

    empty = ExactIndex(np.zeros((0, 4), dtype=np.float32))
    assert empty.size == 0 and not empty.on_accelerator
    assert empty.search(np.ones((2, 4)), 3) == [[], []]


# --- near-duplicates ------------------------------------------------------------------------------------------


def test_near_duplicate_groups():
    rng = np.random.default_rng(7)
    a, b, c = random_units(3, 64, seed=8)
    twist = unit_rows(rng.normal(size=64))
    c1 = unit_rows(c + 0.15 * twist)  # c ~ c1 ~ c2 in a chain: c and c2 alone are below the threshold
    c2 = unit_rows(c1 + 0.15 * twist)
    matrix = np.stack([a, b, unit_rows(a + 0.01 * rng.normal(size=64)), c, c1, c2, b])
    assert matrix[3] @ matrix[5] < 0.97 < min(matrix[3] @ matrix[4], matrix[4] @ matrix[5])

    groups = near_duplicate_groups(matrix)

    assert groups.tolist() == [0, 1, 0, 3, 3, 3, 1]
    assert near_duplicate_groups(matrix, threshold=1.01).tolist() == list(range(7))
    assert near_duplicate_groups(np.zeros((0, 8), dtype=np.float32)).tolist() == []
    assert near_duplicate_groups(matrix[:1]).tolist() == [0]


def test_near_duplicates_across_chunks():
    matrix = random_units(1100, 64, seed=9)
    matrix[1050] = matrix[3]
    matrix[1099] = matrix[1030]

    groups = near_duplicate_groups(matrix)

    assert groups[1050] == groups[3] == 3
    assert groups[1099] == groups[1030] == 1030
    assert (groups == np.arange(1100))[[i for i in range(1100) if i not in (1050, 1099)]].all()


def test_collapse_duplicates():
    matches = [Match(4, 0.9), Match(0, 0.8), Match(2, 0.7), Match(1, 0.6), Match(3, 0.5)]
    groups = np.array([0, 1, 0, 3, 0])
    assert positions(collapse_duplicates(matches, groups)) == [4, 1, 3]
    assert collapse_duplicates(matches, None) == matches


# --- taste ------------------------------------------------------------------------------------------------------


def test_steer_moves_toward_likes_and_away_from_dislikes():
    query, liked, other, disliked = random_units(4, 32, seed=10)
    likes = np.stack([liked, unit_rows(liked + 0.3 * other)])

    steered = steer(query, likes)

    assert steered.dtype == np.float32
    assert np.linalg.norm(steered) == pytest.approx(1.0, abs=1e-6)
    assert steered @ liked > query @ liked + 0.1
    assert steered @ query > 0.7  # still mostly the photo

    away = steer(query, likes, disliked[None])
    assert away @ disliked < steered @ disliked
    stronger = steer(query, likes, weights=TasteWeights(query=1.0, liked=2.0, disliked=0.0))
    assert stronger @ liked > steered @ liked

    np.testing.assert_allclose(steer(query), query, atol=1e-6)
    np.testing.assert_allclose(steer(query * 3, np.zeros((0, 32)), np.zeros((0, 32))), query, atol=1e-6)


def test_taste_profile():
    a, b, c = random_units(3, 16, seed=11)
    assert taste_profile(np.zeros((0, 16))) is None
    assert taste_profile(None) is None

    profile = taste_profile(np.stack([a, b]))
    np.testing.assert_allclose(profile, unit_rows(a + b), atol=1e-6)
    assert profile.dtype == np.float32

    with_dislike = taste_profile(np.stack([a, b]), c[None])
    np.testing.assert_allclose(with_dislike, unit_rows((a + b) / 2 - 0.5 * c), atol=1e-6)
    assert with_dislike @ c < profile @ c


def _clusters() -> tuple[np.ndarray, dict[str, list[int]], dict[str, np.ndarray]]:
    """Alice's corner, Bob's corner, places in between, and places neither cares about; and their profiles."""
    rng = np.random.default_rng(12)
    alice, bob, middle = np.eye(8)[0], np.eye(8)[1], unit_rows(np.eye(8)[0] + np.eye(8)[1])
    rows, groups = [], {}
    for name, centre, count in [("alice", alice, 6), ("bob", bob, 6), ("both", middle, 3), ("none", np.eye(8)[5], 8)]:
        groups[name] = list(range(len(rows), len(rows) + count))
        rows.extend(unit_rows(centre + 0.1 * rng.normal(size=(count, 8))))
    catalog = np.stack(rows)
    profiles = {
        "alice": taste_profile(catalog[groups["alice"][:3]]),
        "bob": taste_profile(catalog[groups["bob"][:3]]),
    }
    return catalog, groups, profiles


def test_fair_ranking_prefers_places_for_both():
    catalog, groups, profiles = _clusters()

    ranked = rank_for_group(profiles, catalog, 5, strategy="fair")

    assert {c.position for c in ranked[:3]} == set(groups["both"])
    assert {c.position for c in ranked[3:]} <= set(groups["alice"] + groups["bob"])
    scores = [c.score for c in ranked]
    assert scores == sorted(scores, reverse=True)
    for candidate in ranked:
        assert candidate.score == pytest.approx((candidate.mean + candidate.least) / 2, abs=1e-5)
        assert candidate.least <= candidate.mean
    # Whoever a one-sided place suits, it fits that member only.
    for candidate in ranked[3:]:
        owner = "alice" if candidate.position in groups["alice"] else "bob"
        assert candidate.fits in ((), (owner,))
    best_for_alice = max(groups["alice"], key=lambda i: catalog[i] @ profiles["alice"])
    everyone = rank_for_group(profiles, catalog, len(catalog))
    assert next(c for c in everyone if c.position == best_for_alice).fits == ("alice",)
    assert all(c.fits == () for c in everyone if c.position in groups["none"])
    assert [c.position for c in everyone[-len(groups["none"]) :]] != []
    assert set(c.position for c in everyone[-8:]) == set(groups["none"])


def test_mean_and_least_misery_differ():
    # X pleases Alice a lot and Bob a little, X' the other way round; Y pleases both moderately.
    e = np.eye(6)
    x = unit_rows(0.98 * e[0] + 0.2 * e[1])
    x_mirror = unit_rows(0.2 * e[0] + 0.98 * e[1])
    y = unit_rows(0.55 * e[0] + 0.55 * e[1] + 0.63 * e[2])
    rng = np.random.default_rng(13)
    filler = unit_rows(np.abs(rng.normal(size=(20, 6))) * [0.15, 0.15, 0.2, 1, 1, 1])
    catalog = np.vstack([x, x_mirror, y, filler])
    profiles = {"alice": e[0].astype(np.float32), "bob": e[1].astype(np.float32)}

    mean = rank_for_group(profiles, catalog, 3, strategy="mean")
    least = rank_for_group(profiles, catalog, 3, strategy="least_misery")

    assert {c.position for c in mean[:2]} == {0, 1}
    assert least[0].position == 2
    assert mean[0].score == pytest.approx(mean[0].mean) and least[0].score == pytest.approx(least[0].least)
    fits = {c.position: c.fits for c in rank_for_group(profiles, catalog, 3, strategy="mean")}
    fits.update({c.position: c.fits for c in least})
    assert fits[0] == ("alice",)
    assert fits[1] == ("bob",)
    assert fits[2] == ("alice", "bob")


def test_group_ranking_exclude_and_limits():
    catalog, groups, profiles = _clusters()
    skip = groups["both"][:2]

    ranked = rank_for_group(profiles, catalog, 3, exclude=skip)
    assert ranked[0].position == groups["both"][2]
    assert not {c.position for c in ranked} & set(skip)

    everything = rank_for_group(profiles, catalog, 100, exclude=[*skip, skip[0]])
    assert len(everything) == len(catalog) - 2
    assert not {c.position for c in everything} & set(skip)
    assert all(np.isfinite(c.score) for c in everything)

    assert rank_for_group({}, catalog, 3) == []
    assert [c.position for c in rank_for_group({"solo": profiles["alice"]}, catalog, 6)] == sorted(
        groups["alice"], key=lambda i: -(catalog[i] @ profiles["alice"])
    )
    for strategy in GROUP_STRATEGIES:
        assert len(rank_for_group(profiles, catalog, 4, strategy=strategy)) == 4
    with pytest.raises(ValueError, match=r"strategy must be one of .* Received: strategy='median'"):
        rank_for_group(profiles, catalog, 3, strategy="median")


def test_merged_groups_join_rows_that_any_labelling_joins() -> None:
    from recommender.search import merge_groups

    places = np.array([0, 0, 2, 3, 4])  # rows 0 and 1: one destination
    duplicates = np.array([0, 1, 2, 2, 4])  # rows 2 and 3: the same photo twice
    assert merge_groups(places, duplicates).tolist() == [0, 0, 2, 2, 4]  # type: ignore[union-attr]
    assert merge_groups(np.array([0, 1, 1]), np.array([0, 0, 2])).tolist() == [0, 0, 0]  # type: ignore[union-attr]
    assert merge_groups(np.arange(5), None) is None  # every row apart
    assert merge_groups(None) is None

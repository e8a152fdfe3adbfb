"""The approximate index on small clustered data: recall against exact search, exclusion, filters, files, choice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recommender.ann import (
    ANN_FILE,
    ANN_META,
    EXACT_BELOW,
    AnnIndex,
    AnnUnavailable,
    allowed_positions,
    build_ann,
    choose_kind,
    default_params,
    load_ann,
    open_vector_index,
    save_ann,
)
from recommender.search import ExactIndex

ROWS, DIM, CLUSTERS, K = 20_000, 64, 200, 10


def clustered(rows: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around random centres, as fingerprints of many photos of fewer places are."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((CLUSTERS, dim)).astype(np.float32)
    points = centres[rng.integers(0, CLUSTERS, rows)] + 0.6 * rng.standard_normal((rows, dim)).astype(np.float32)
    return points / np.linalg.norm(points, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def matrix() -> np.ndarray:
    return clustered(ROWS, DIM, seed=1)


@pytest.fixture(scope="module")
def queries(matrix: np.ndarray) -> np.ndarray:
    """Held-out points: near some rows, none of them."""
    rng = np.random.default_rng(3)
    picked = matrix[rng.integers(0, len(matrix), 200)] + 0.3 * rng.standard_normal((200, DIM)).astype(np.float32)
    return picked / np.linalg.norm(picked, axis=1, keepdims=True)


@pytest.fixture(scope="module", params=["ivfpq", "hnsw"])
def ann(request: pytest.FixtureRequest, matrix: np.ndarray) -> AnnIndex:
    return build_ann(matrix, request.param, progress=False)


def recall(found: list[list], truth: list[list]) -> float:
    hits = sum(len({m.position for m in f} & {m.position for m in t}) for f, t in zip(found, truth, strict=True))
    return hits / sum(len(t) for t in truth)


def test_top10_mostly_matches_exact_search(ann: AnnIndex, matrix: np.ndarray, queries: np.ndarray) -> None:
    truth = ExactIndex(matrix, placement="host").search(queries, K)
    found = ann.search(queries, K)
    assert all(len(row) == K for row in found)
    assert recall(found, truth) >= 0.9
    # Re-ranked scores are the exact cosine of the rows returned, best first.
    for query, row in zip(queries, found, strict=True):
        scores = [m.score for m in row]
        assert scores == sorted(scores, reverse=True)
        np.testing.assert_allclose(scores, matrix[[m.position for m in row]] @ query, rtol=1e-5, atol=1e-6)


def test_exclusion_removes_rows_before_k_is_cut(ann: AnnIndex, queries: np.ndarray) -> None:
    plain = ann.search(queries[:20], K)
    excluded = [{m.position for m in row[:5]} for row in plain]
    found = ann.search(queries[:20], K, exclude=excluded)
    for row, skip, before in zip(found, excluded, plain, strict=True):
        assert len(row) == K
        assert not {m.position for m in row} & skip
        assert [m.position for m in row[:5]] == [m.position for m in before[5:]]


@pytest.mark.parametrize("share", [0.5, 0.01])  # through FAISS's selector, and the exact scan of few rows
def test_filtered_search_returns_only_allowed_rows_and_is_full(
    matrix: np.ndarray, queries: np.ndarray, share: float
) -> None:
    ann = build_ann(matrix, "ivfpq", progress=False)
    ann.exact_filter_below = 1_000  # 1% is 200 rows: exact scan; 50% goes through FAISS
    rng = np.random.default_rng(4)
    mask = rng.random(len(matrix)) < share
    found = ann.search(queries[:30], K, allowed=mask)
    truth = ExactIndex(matrix[mask], placement="host").search(queries[:30], K)
    allowed_rows = np.flatnonzero(mask)
    for row in found:
        assert len(row) == K
        assert all(mask[m.position] for m in row)
    mapped = [[type(m)(int(allowed_rows[m.position]), m.score) for m in t] for t in truth]
    assert recall(found, mapped) >= (0.9 if share > 0.1 else 1.0)


def test_filtered_search_is_full_when_probed_clusters_hold_too_few(matrix: np.ndarray, queries: np.ndarray) -> None:
    """One probed cluster and scattered allowed rows: FAISS finds too few, the exact fall-back fills the list."""
    ann = build_ann(matrix, "ivfpq", progress=False).with_params(nprobe=1, rerank=K)
    ann.exact_filter_below = 0
    allowed = np.arange(0, len(matrix), 97)
    exclude = [set(allowed[:3].tolist())] * 10
    found = ann.search(queries[:10], K, allowed=allowed, exclude=exclude)
    for row in found:
        assert len(row) == K
        assert {m.position for m in row} <= set(allowed.tolist()) - exclude[0]


def test_fewer_allowed_rows_than_k(ann: AnnIndex, queries: np.ndarray) -> None:
    found = ann.search(queries[:2], K, allowed=np.array([5, 7, 11]), exclude=[{7}, set()])
    assert [sorted(m.position for m in row) for row in found] == [[5, 11], [5, 7, 11]]


def test_save_load_round_trip_gives_identical_results(ann: AnnIndex, queries: np.ndarray, tmp_path: Path) -> None:
    save_ann(ann, tmp_path)
    assert (tmp_path / ANN_FILE).exists() and (tmp_path / ANN_META).exists()
    loaded = load_ann(tmp_path)
    assert loaded.params == ann.params
    assert loaded.rerank_matrix.dtype == np.float16
    # The saved re-rank copy is float16: the same index re-ranking on a float16 copy must give the very same lists.
    in_memory = AnnIndex(ann.faiss_index, ann.rerank_matrix.astype(np.float16), ann.params)
    exclude = [{int(i)} for i in range(len(queries))]
    assert loaded.search(queries, K, exclude=exclude) == in_memory.search(queries, K, exclude=exclude)


def test_round_trip_without_copy_is_exactly_identical(matrix: np.ndarray, queries: np.ndarray, tmp_path: Path) -> None:
    ann = build_ann(matrix, "ivfpq", progress=False)
    save_ann(ann, tmp_path, rerank_copy=False)
    loaded = load_ann(tmp_path, matrix)
    assert loaded.search(queries, K, exclude=[{1, 2}] * len(queries)) == ann.search(
        queries, K, exclude=[{1, 2}] * len(queries)
    )
    with pytest.raises(AnnUnavailable):
        load_ann(tmp_path)  # no copy saved and no matrix given


def test_auto_choice_is_exact_below_the_threshold() -> None:
    assert choose_kind(EXACT_BELOW - 1) == "exact"
    assert choose_kind(EXACT_BELOW) == "ivfpq"
    assert choose_kind(10, "hnsw") == "hnsw"
    assert choose_kind(10**7, "exact") == "exact"
    with pytest.raises(ValueError, match="Received: kind='flat'"):
        choose_kind(10, "flat")  # type: ignore[arg-type]


def test_default_params_follow_the_catalog_size() -> None:
    small, large = default_params(20_000, 64, "ivfpq"), default_params(1_000_000, 2688, "ivfpq")
    assert small.reduce_dim == 0 and large.reduce_dim == 256
    assert default_params(150, 2688, "ivfpq").reduce_dim == 0  # a PCA cannot keep 256 dimensions of 150 vectors
    assert large.nlist == 4000 and 100_000 <= large.train_size <= 256_000
    assert large.train_size >= 39 * large.nlist and small.train_size >= 39 * small.nlist
    assert (large.reduce_dim % large.pq_m, small.dim % small.pq_m) == (0, 0)
    assert 1 <= large.nprobe <= large.nlist


def test_open_vector_index_picks_by_setting(matrix: np.ndarray, queries: np.ndarray, tmp_path: Path) -> None:
    assert isinstance(open_vector_index(tmp_path, matrix, "auto"), ExactIndex)  # nothing saved: exact
    with pytest.raises(AnnUnavailable):
        open_vector_index(tmp_path, matrix, "ivfpq")
    save_ann(build_ann(matrix, "ivfpq", progress=False), tmp_path)
    assert isinstance(open_vector_index(tmp_path, matrix, "auto"), AnnIndex)
    assert isinstance(open_vector_index(tmp_path, matrix, "exact"), ExactIndex)
    with pytest.raises(AnnUnavailable):
        open_vector_index(tmp_path, matrix, "hnsw")


def test_allowed_positions_checks_its_input() -> None:
    assert allowed_positions(None, 5) is None
    assert allowed_positions(np.array([True, False, True, False, False]), 5).tolist() == [0, 2]
    assert allowed_positions(np.array([3, 1, 3]), 5).tolist() == [1, 3]
    with pytest.raises(ValueError, match="one entry per row"):
        allowed_positions(np.ones(4, dtype=bool), 5)
    with pytest.raises(ValueError, match="lie in"):
        allowed_positions(np.array([5]), 5)


# --- in build_index -------------------------------------------------------------------------------------------


def test_build_index_saves_the_chosen_index_in_the_version_folder(tmp_path: Path) -> None:
    from recommender.catalog import load_catalog
    from recommender.index import open_index
    from recommender.index_build import build_index
    from tests.worker.fakes import ColourExtractor, colour_catalog

    catalog = load_catalog(colour_catalog(tmp_path / "catalog", 12))
    out = tmp_path / "index"
    exact = build_index(catalog, ColourExtractor(), out, progress=False)
    assert not (exact.path / ANN_META).exists()  # 12 photos: "auto" searches exactly

    forced = build_index(catalog, ColourExtractor(), out, progress=False, ann="hnsw")
    assert forced.path != exact.path  # same photos, but the version now needs an approximate index
    assert (forced.path / ANN_FILE).exists()
    index = open_index(out, placement="host")
    searched = open_vector_index(forced.path, index.vectors, "auto")
    assert isinstance(searched, AnnIndex) and searched.params.kind == "hnsw"
    queries = np.asarray(index.vectors[:4])
    truth = ExactIndex(np.asarray(index.vectors), placement="host").search(queries, 5)
    found = searched.search(queries, 5)
    assert [[m.position for m in row] for row in found] == [[m.position for m in row] for row in truth]

    again = build_index(catalog, ColourExtractor(), out, progress=False, ann="hnsw")
    assert again.path == forced.path  # nothing changed: no new version

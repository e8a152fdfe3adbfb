"""Regions, distances, and how a shared location re-ranks: the map's arithmetic, without the bot."""

from __future__ import annotations

import numpy as np
import pytest

from recommender.catalog import Destination
from recommender.fingerprint import BackboneFingerprint
from recommender.geo import coordinates, destination_countries, distance_km, parse_region, region_mask, valid_location
from recommender.index import DestinationIndex
from recommender.ranking import Scope, rank_for_photo

FINGERPRINT = BackboneFingerprint("geo-test", "none", "vector", 8, "test", 4)
ROME, OSLO, SYDNEY = (41.9028, 12.4964), (59.9139, 10.7522), (-33.8688, 151.2093)


@pytest.mark.parametrize(
    ("typed", "label", "has"),
    [
        ("Italy", "Italy", "IT"),
        ("italien", "Italy", "IT"),
        ("  IT ", "Italy", "IT"),
        ("Италия", "Italy", "IT"),
        ("usa", "United States", "US"),
        ("Europe", "Europe", "NO"),
        ("south america", "South America", "BR"),
    ],
)
def test_regions_by_name_code_and_continent(typed: str, label: str, has: str) -> None:
    region = parse_region(typed)
    assert region is not None and region.label == label and has in region.countries


def test_radius_regions_and_what_is_not_a_region() -> None:
    assert parse_region("within 300 km").radius_km == 300  # type: ignore[union-attr]
    assert parse_region("50 miles").radius_km == pytest.approx(80.47, abs=0.01)  # type: ignore[union-attr]
    for nonsense in ("Atlantis", "", "within 0 km", "within 99999 km", "Europe!"):
        assert parse_region(nonsense) is None, nonsense


def test_distances_and_valid_locations() -> None:
    paris, london = (48.8566, 2.3522), (51.5074, -0.1278)
    assert distance_km(paris, np.array([london, paris])) == pytest.approx([343.6, 0.0], abs=1.0)
    assert valid_location(*ROME) and not valid_location(0.0, 0.0) and not valid_location(91, 0)
    assert not valid_location(10, 181)


def places(*rows: tuple[str, str, tuple[float, float] | None]) -> list[Destination]:
    return [
        Destination(name, f"{name}.jpg", name, country=country, lat=at[0] if at else None, lon=at[1] if at else None)
        for name, country, at in rows
    ]


def test_region_masks_match_country_names_in_the_catalog_and_radii_need_a_location() -> None:
    catalog = places(("rome", "Italy", ROME), ("oslo", "Norway", OSLO), ("sydney", "Australia", SYDNEY))
    codes, points = destination_countries(catalog), coordinates(catalog)
    assert list(region_mask(parse_region("Europe"), codes, points, None)) == [True, True, False]  # type: ignore[arg-type]
    radius = parse_region("within 2500 km")
    assert list(region_mask(radius, codes, points, ROME)) == [True, True, False]  # type: ignore[arg-type]
    assert not region_mask(radius, codes, points, None).any()  # type: ignore[arg-type]


def tiny_index(catalog: list[Destination], vectors: list[list[float]]) -> DestinationIndex:
    matrix = np.asarray(vectors, dtype=np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    return DestinationIndex(FINGERPRINT, tuple(catalog), matrix, tuple(d.id for d in catalog), placement="host")


def test_a_near_place_overtakes_a_slightly_more_similar_far_one() -> None:
    catalog = places(("far", "Australia", SYDNEY), ("near", "Italy", (41.0, 13.0)), ("odd", "Norway", OSLO))
    index = tiny_index(catalog, [[1.0, 0.05, 0, 0], [1.0, 0.12, 0, 0], [0, 0, 1.0, 0]])
    query = np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32)
    plain = rank_for_photo(index, query, 3)
    assert [r.destination.id for r in plain][:2] == ["far", "near"]  # "far" is the more similar one
    near_rome = rank_for_photo(index, query, 3, scope=Scope(near=(ROME,)))
    assert [r.destination.id for r in near_rome][:2] == ["near", "far"]
    assert near_rome[0].distance_km == pytest.approx(108.8, abs=1)
    # Distance does not make an unlike place win: "odd" (orthogonal) stays last though Oslo is nearer than Sydney.
    assert near_rome[-1].destination.id == "odd"


def test_a_region_filters_inside_the_search_and_keeps_the_page_full() -> None:
    rng = np.random.default_rng(3)
    catalog = places(*[(f"p{n}", "Italy" if n % 10 == 0 else "Japan", None) for n in range(200)])
    index = tiny_index(catalog, rng.normal(size=(200, 4)).tolist())
    ranked = rank_for_photo(index, rng.normal(size=4).astype(np.float32), 10, scope=Scope(parse_region("Italy")))
    assert len(ranked) == 10 and {r.destination.country for r in ranked} == {"Italy"}
    only = rank_for_photo(index, rng.normal(size=4).astype(np.float32), 50, scope=Scope(parse_region("IT")))
    assert len(only) == 20  # every Italian place, and nothing else
    assert rank_for_photo(index, np.ones(4, np.float32), 5, scope=Scope(parse_region("Peru"))) == []


def test_a_batch_of_photos_is_ranked_as_each_would_be_alone() -> None:
    from recommender.ranking import rank_for_photos
    from recommender.refine import RefineOptions

    rng = np.random.default_rng(11)
    catalog = places(*[(f"p{n}", "Italy", None) for n in range(300)])
    index = tiny_index(catalog, rng.normal(size=(300, 4)).tolist())
    index.refine = RefineOptions(whitening="none", query_expansion=3)  # the batch goes through the expansion too
    queries = rng.normal(size=(6, 4)).astype(np.float32)
    liked = [[], ["p3", "p7"], [], ["p100"], [], ["p0"]]
    together = rank_for_photos(index, queries, 20, liked_ids=liked)
    alone = [rank_for_photo(index, q, 20, liked_ids=ids) for q, ids in zip(queries, liked, strict=True)]
    assert [[r.destination.id for r in row] for row in together] == [[r.destination.id for r in row] for row in alone]
    for batched, single in zip(together, alone, strict=True):
        assert [r.similarity for r in batched] == pytest.approx([r.similarity for r in single])
    assert together[1] != together[0]  # the likes did steer

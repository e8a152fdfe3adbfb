"""The SPARQL query's text for each option, and parsing the SPARQL JSON results format into places."""

from __future__ import annotations

import pytest

from opendata.errors import ResponseError
from opendata.presets import PRESETS
from opendata.wikidata import PlaceQuery, build_query, fetch_places, file_name, parse_results
from tests.opendata.standin import StandIn


def literal(value: str, lang: str | None = None) -> dict[str, str]:
    cell = {"type": "literal", "value": value}
    if lang:
        cell["xml:lang"] = lang
    return cell


def uri(value: str) -> dict[str, str]:
    return {"type": "uri", "value": value}


def binding(qid: str, coord: str, image: str, **extra: dict[str, str]) -> dict[str, dict[str, str]]:
    return {
        "item": uri(f"http://www.wikidata.org/entity/{qid}"),
        "coord": {"datatype": "http://www.opengis.net/ont/geosparql#wktLiteral", "type": "literal", "value": coord},
        "image": uri(f"http://commons.wikimedia.org/wiki/Special:FilePath/{image}"),
        **extra,
    }


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_asks_for_coordinates_and_a_photo(name: str) -> None:
    text = build_query(PlaceQuery(preset=name, limit=50))
    assert PRESETS[name].pattern in text
    assert "wdt:P625" in text and "wdt:P18" in text
    assert "LIMIT 50" in text
    assert text.count("{") == text.count("}")


def test_world_heritage_is_the_heritage_designation() -> None:
    assert "wdt:P1435 wd:Q9259" in build_query(PlaceQuery(preset="world-heritage"))


def test_country_by_iso_code_or_item() -> None:
    by_code = build_query(PlaceQuery(country="it"))
    assert 'wdt:P297 "IT"' in by_code
    by_item = build_query(PlaceQuery(country="Q38"))
    assert "wdt:P17 wd:Q38" in by_item and 'P297 "' not in by_item
    assert "wdt:P17" not in build_query(PlaceQuery()).split("LIMIT")[0]  # no filter: any country


def test_continent_filter_goes_through_the_country() -> None:
    text = build_query(PlaceQuery(continent="europe"))
    assert "wdt:P30 ?continent" in text and "wd:Q46" in text
    assert "wd:Q46" not in build_query(PlaceQuery(continent="asia"))


def test_labels_descriptions_and_country_names_in_every_language() -> None:
    text = build_query(PlaceQuery(languages=("en", "de", "pt-br")))
    for lang, var in (("en", "en"), ("de", "de"), ("pt-br", "pt_br")):
        assert f'?label_{var} . FILTER(LANG(?label_{var}) = "{lang}")' in text
        assert f"schema:description ?description_{var}" in text
        assert f"?country rdfs:label ?country_{var}" in text
    assert "?iso" in text and "wdt:P297 ?iso" in text


@pytest.mark.parametrize(
    "bad",
    [
        {"preset": "volcanoes-on-mars"},
        {"country": "Italy"},
        {"country": 'IT" . } DROP'},
        {"continent": "atlantis"},
        {"limit": 0},
        {"languages": ()},
        {"languages": ("en", 'de") }')},
    ],
)
def test_bad_options_fail_before_any_request(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="Received:"):
        PlaceQuery(**bad)  # type: ignore[arg-type]


def test_results_become_places_with_labels_in_order_of_languages() -> None:
    data = {
        "head": {"vars": ["item", "coord", "image", "label_en", "label_de"]},
        "results": {
            "bindings": [
                binding(
                    "Q10285",
                    "Point(12.492222222 41.890277777)",
                    "Colosseo%202020.jpg",
                    label_de=literal("Kolosseum", "de"),
                    description_en=literal("amphitheatre in Rome", "en"),
                    country=uri("http://www.wikidata.org/entity/Q38"),
                    iso=literal("IT"),
                    country_en=literal("Italy", "en"),
                    city=literal("Rome", "en"),
                    links={"datatype": "http://www.w3.org/2001/XMLSchema#integer", "type": "literal", "value": "180"},
                )
            ]
        },
    }
    [place] = parse_results(data, ("en", "de"))
    assert place.qid == "Q10285"
    assert (place.lat, place.lon) == pytest.approx((41.890277777, 12.492222222))  # WKT is longitude first
    assert place.image_file == "Colosseo 2020.jpg"
    assert place.name(("en", "de")) == "Kolosseum"  # no English label: the next language's
    assert place.description(("en", "de")) == "amphitheatre in Rome"
    assert (place.country, place.country_code, place.city, place.sitelinks) == ("Italy", "IT", "Rome", 180)


def test_an_item_on_several_rows_is_one_place_and_other_globes_are_dropped() -> None:
    rows = [
        binding("Q1", "Point(10 45)", "A.jpg", label_en=literal("First", "en")),
        binding("Q1", "Point(10 45)", "B.jpg", label_en=literal("First", "en")),
        binding("Q2", "<http://www.wikidata.org/entity/Q405> Point(23.47 0.67)", "Moon.jpg"),
        binding("Q3", "Point(-73.98 40.75)", "C.jpg"),
        {"item": uri("http://www.wikidata.org/entity/Q4")},  # no coordinates, no photo
    ]
    places = parse_results({"results": {"bindings": rows}}, ("en",))
    assert [p.qid for p in places] == ["Q1", "Q3"]
    assert places[0].image_file == "A.jpg"
    assert places[1].name(("en",)) == "Q3"  # no label at all: the Q-id rather than nothing


def test_results_not_in_the_sparql_shape_are_a_clear_error() -> None:
    with pytest.raises(ResponseError, match=r"results\.bindings"):
        parse_results({"error": "query timeout"}, ("en",))


def test_file_names_from_special_filepath_urls() -> None:
    url = "http://commons.wikimedia.org/wiki/Special:FilePath/Caf%C3%A9%20de%20Flore_2.jpg"
    assert file_name(url) == "Café de Flore 2.jpg"
    assert file_name("http://example.org/elsewhere.jpg") == ""


def test_fetch_places_from_the_stand_in(standin: StandIn, client) -> None:
    standin.places[0].second_image = "Another view.jpg"
    places = fetch_places(client, standin.sparql_url, PlaceQuery(limit=5, languages=("en", "de")))
    assert [p.qid for p in places] == [p.qid for p in standin.places[:5]]  # deduplicated, best known first
    assert places[0].labels == {"en": "Colosseum", "de": "Kolosseum"}
    [request] = standin.requests("sparql")
    assert request.params["format"] == "json" and "LIMIT 5" in request.params["query"]

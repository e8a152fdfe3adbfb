"""The Wikidata side: a SPARQL query for places with coordinates (P625) and a photo (P18), and its JSON results.

Results arrive in the SPARQL 1.1 JSON results format (``application/sparql-results+json``): ``head.vars`` and
``results.bindings``, each binding ``{"type": "uri" | "literal", "value": ..., "xml:lang"?: ..., "datatype"?: ...}``.
Coordinates come as WKT, longitude first (``Point(12.49 41.89)``), prefixed by the globe's IRI when not on Earth;
P18 comes as a ``Special:FilePath`` URL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import unquote

from opendata.errors import ResponseError
from opendata.presets import DEFAULT_PRESET, continent, preset

if TYPE_CHECKING:  # the client pulls in httpx; the CLI's parser needs only the constants here
    from opendata.http import PoliteClient

WIKIDATA_SPARQL = "https://query.wikidata.org/sparql"
ENTITY_PREFIX = "http://www.wikidata.org/entity/"
FILE_PATH_MARKER = "Special:FilePath/"
DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "ru")
MAX_LIMIT = 100_000
_LANGUAGE = re.compile(r"^[a-z]{2,3}(?:-[a-z0-9]{2,8})*$")
_QID = re.compile(r"^Q[1-9][0-9]*$")
_ISO = re.compile(r"^[A-Za-z]{2}$")
_POINT = re.compile(r"^(?:<(?P<globe>[^>]+)>\s*)?Point\(\s*(?P<lon>[-+0-9.eE]+)\s+(?P<lat>[-+0-9.eE]+)\s*\)$")
EARTH = ENTITY_PREFIX + "Q2"


@dataclass(frozen=True)
class PlaceQuery:
    """What to ask for; checked on construction so a bad flag fails before any request."""

    preset: str = DEFAULT_PRESET
    country: str = ""  # ISO 3166-1 alpha-2 ("IT") or a Wikidata item ("Q38"); empty for all
    continent: str = ""  # a key of presets.CONTINENTS; empty for all
    limit: int = 1000
    languages: tuple[str, ...] = DEFAULT_LANGUAGES

    def __post_init__(self) -> None:
        preset(self.preset)
        if self.continent:
            continent(self.continent)
        if self.country and not (_ISO.match(self.country) or _QID.match(self.country.upper())):
            raise ValueError(
                f"country must be an ISO code such as IT or an item such as Q38. Received: {self.country!r}"
            )
        if not 1 <= self.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be between 1 and {MAX_LIMIT}. Received: {self.limit}")
        if not self.languages:
            raise ValueError("at least one language is needed. Received: languages=()")
        for language in self.languages:
            if not _LANGUAGE.match(language):
                raise ValueError(f"language codes look like en, de or pt-br. Received: {language!r}")


@dataclass(frozen=True)
class Place:
    """One destination as Wikidata describes it."""

    qid: str
    lat: float
    lon: float
    image_file: str  # the Commons file name, without "File:"
    labels: Mapping[str, str] = field(default_factory=dict)  # language -> name
    descriptions: Mapping[str, str] = field(default_factory=dict)
    country: str = ""  # in the first language
    country_labels: Mapping[str, str] = field(default_factory=dict)
    country_code: str = ""  # ISO 3166-1 alpha-2
    city: str = ""  # the administrative unit it lies in (P131), in the first language
    sitelinks: int = 0

    def name(self, languages: Sequence[str]) -> str:
        """The label in the first language that has one; the Q-id when none does."""
        return next((self.labels[lang] for lang in languages if self.labels.get(lang)), self.qid)

    def description(self, languages: Sequence[str]) -> str:
        return next((self.descriptions[lang] for lang in languages if self.descriptions.get(lang)), "")


def _var(prefix: str, language: str) -> str:
    return f"?{prefix}_{language.replace('-', '_')}"


def _optional_text(subject: str, predicate: str, prefix: str, language: str) -> str:
    variable = _var(prefix, language)
    return f'OPTIONAL {{ {subject} {predicate} {variable} . FILTER(LANG({variable}) = "{language}") }}'


def build_query(query: PlaceQuery) -> str:
    """The SPARQL text. An inner query picks ``limit`` distinct items, best known first (most Wikipedia articles,
    then Q-id, so that runs are repeatable); the outer one fetches their details and labels."""
    filters = []
    if query.country:
        if _QID.match(query.country.upper()):
            filters.append(f"?item wdt:P17 wd:{query.country.upper()} .")
        else:
            filters.append(f'?item wdt:P17 ?inCountry . ?inCountry wdt:P297 "{query.country.upper()}" .')
    if query.continent:
        values = " ".join(f"wd:{qid}" for qid in continent(query.continent))
        filters.append(
            f"?item wdt:P17 ?onContinent . ?onContinent wdt:P30 ?continent . VALUES ?continent {{ {values} }}"
        )
    first = query.languages[0]
    labels = [
        _optional_text(subject, predicate, prefix, language)
        for language in query.languages
        for subject, predicate, prefix in (
            ("?item", "rdfs:label", "label"),
            ("?item", "schema:description", "description"),
            ("?country", "rdfs:label", "country"),
        )
    ]
    selected = " ".join(
        _var(prefix, language) for language in query.languages for prefix in ("label", "description", "country")
    )
    inner = "\n      ".join([preset(query.preset).pattern, "?item wdt:P625 [] ; wdt:P18 [] .", *filters])
    label_lines = "\n  ".join(labels)
    return f"""SELECT ?item ?coord ?image ?country ?iso ?links ?city {selected} WHERE {{
  {{
    SELECT DISTINCT ?item ?links WHERE {{
      {inner}
      ?item wikibase:sitelinks ?links .
    }}
    ORDER BY DESC(?links) ?item
    LIMIT {query.limit}
  }}
  ?item wdt:P625 ?coord ; wdt:P18 ?image .
  OPTIONAL {{ ?item wdt:P17 ?country . OPTIONAL {{ ?country wdt:P297 ?iso . }} }}
  OPTIONAL {{ ?item wdt:P131 ?admin . ?admin rdfs:label ?city . FILTER(LANG(?city) = "{first}") }}
  {label_lines}
}}"""


def fetch_places(client: PoliteClient, endpoint: str, query: PlaceQuery) -> list[Place]:
    data = client.get_json(
        endpoint, {"query": build_query(query), "format": "json"}, accept="application/sparql-results+json"
    )
    return parse_results(data, query.languages)


def parse_results(data: object, languages: Sequence[str]) -> list[Place]:
    """Places in result order, one per item: an item with two photos, countries or places comes back as several
    rows, and the first row's values are kept (the query orders items, not rows, so any row is as good)."""
    try:
        bindings = data["results"]["bindings"]  # type: ignore[index]
    except (KeyError, TypeError):
        raise ResponseError(
            f"the query service answered without results.bindings: not SPARQL JSON results. Received: {str(data)[:200]}"
        ) from None
    if not isinstance(bindings, list):
        raise ResponseError(f"results.bindings is not a list. Received: {type(bindings).__name__}")
    places: dict[str, Place] = {}
    for row in bindings:
        place = _place(row, languages)
        if place is not None and place.qid not in places:
            places[place.qid] = place
    return list(places.values())


def _value(row: Mapping[str, object], name: str) -> str:
    cell = row.get(name)
    if isinstance(cell, dict):
        return str(cell.get("value", ""))
    return ""


def _place(row: Mapping[str, object], languages: Sequence[str]) -> Place | None:
    item = _value(row, "item")
    if not item.startswith(ENTITY_PREFIX):
        return None
    point = _POINT.match(_value(row, "coord").strip())
    if point is None or (point.group("globe") and point.group("globe") != EARTH):
        return None  # no coordinates we understand, or a crater on the Moon
    lat, lon = float(point.group("lat")), float(point.group("lon"))
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    image_file = file_name(_value(row, "image"))
    if not image_file:
        return None

    def per_language(prefix: str) -> dict[str, str]:
        found = {lang: _value(row, _var(prefix, lang)[1:]) for lang in languages}
        return {lang: text for lang, text in found.items() if text}

    country_labels = per_language("country")
    links = _value(row, "links")
    return Place(
        qid=item[len(ENTITY_PREFIX) :],
        lat=lat,
        lon=lon,
        image_file=image_file,
        labels=per_language("label"),
        descriptions=per_language("description"),
        country=next((country_labels[lang] for lang in languages if lang in country_labels), ""),
        country_labels=country_labels,
        country_code=_value(row, "iso"),
        city=_value(row, "city"),
        sitelinks=int(links) if links.isdigit() else 0,
    )


def file_name(url: str) -> str:
    """``http://commons.wikimedia.org/wiki/Special:FilePath/Lake%20Bled.jpg`` -> ``Lake Bled.jpg``."""
    if FILE_PATH_MARKER not in url:
        return ""
    return unquote(url.split(FILE_PATH_MARKER, 1)[1]).replace("_", " ").strip()

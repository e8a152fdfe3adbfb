"""What a catalog can be made of: named kinds of destination and the continents to filter by, as Wikidata terms."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A kind of destination, as a SPARQL graph pattern that binds ``?item``."""

    name: str
    title: str
    pattern: str


# Direct P31 for the big classes (islands, mountains, beaches): P279* under them reaches hundreds of thousands of
# items and would push the query past the service's 60 s. Small, well-kept hierarchies (national parks, old towns)
# include their subclasses.
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset("world-heritage", "UNESCO World Heritage sites", "?item wdt:P1435 wd:Q9259 ."),
        Preset("national-parks", "national parks", "?item wdt:P31/wdt:P279* wd:Q46169 ."),
        Preset("beaches", "beaches", "?item wdt:P31 wd:Q40080 ."),
        Preset("islands", "islands", "?item wdt:P31 wd:Q23442 ."),
        Preset("old-towns", "old towns and historic centres", "?item wdt:P31/wdt:P279* wd:Q676050 ."),
        Preset("mountains", "mountains and volcanoes", "VALUES ?kind { wd:Q8502 wd:Q8072 } ?item wdt:P31 ?kind ."),
    )
}
DEFAULT_PRESET = "world-heritage"

# Matched against the country's "continent" (P30). Oceania is spelled three ways on Wikidata (Oceania, insular
# Oceania, the Australian continent), so all three count.
CONTINENTS: dict[str, tuple[str, ...]] = {
    "africa": ("Q15",),
    "antarctica": ("Q51",),
    "asia": ("Q48",),
    "europe": ("Q46",),
    "north-america": ("Q49",),
    "oceania": ("Q55643", "Q538", "Q3960"),
    "south-america": ("Q18",),
}


def preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset: choose one of {', '.join(PRESETS)}. Received: {name!r}") from None


def continent(name: str) -> tuple[str, ...]:
    key = name.strip().lower().replace(" ", "-").replace("_", "-")
    try:
        return CONTINENTS[key]
    except KeyError:
        raise ValueError(f"unknown continent: choose one of {', '.join(CONTINENTS)}. Received: {name!r}") from None

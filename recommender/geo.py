"""Where places are: distances, regions ("Italy", "Europe", "within 300 km") and how distance weighs in a ranking.

Country names and codes in seven languages and each country's continent come from ``data/countries.csv`` (Unicode
CLDR, through Babel, once). A region becomes a boolean per catalog row, which the search applies inside itself.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources

import numpy as np

from recommender.catalog import Destination

EARTH_RADIUS_KM = 6371.0088
CONTINENTS = {
    "europe": "Europe",
    "asia": "Asia",
    "africa": "Africa",
    "north-america": "North America",
    "south-america": "South America",
    "oceania": "Oceania",
    "antarctica": "Antarctica",
}
_CONTINENT_WORDS = {
    **{name.lower(): (key,) for key, name in CONTINENTS.items()},
    **{key: (key,) for key in CONTINENTS},
    "america": ("north-america", "south-america"),
    "americas": ("north-america", "south-america"),
    "latin america": ("south-america",),
    "australia and oceania": ("oceania",),
}
# Names people use that CLDR does not list.
_COUNTRY_ALIASES = {
    "usa": "US",
    "us": "US",
    "u.s.": "US",
    "u.s.a.": "US",
    "united states of america": "US",
    "america (usa)": "US",
    "uk": "GB",
    "great britain": "GB",
    "britain": "GB",
    "england": "GB",
    "scotland": "GB",
    "wales": "GB",
    "northern ireland": "GB",
    "holland": "NL",
    "czech republic": "CZ",
    "turkey": "TR",
    "türkiye": "TR",
    "south korea": "KR",
    "north korea": "KP",
    "vatican city": "VA",
    "ivory coast": "CI",
    "burma": "MM",
    "swaziland": "SZ",
    "macedonia": "MK",
}
_WITHIN = re.compile(r"^(?:within\s+)?(\d+(?:[.,]\d+)?)\s*(km|kilometers|kilometres|mi|miles)$", re.IGNORECASE)
MAX_RADIUS_KM = 20_000.0


@dataclass(frozen=True)
class Country:
    code: str
    continent: str
    names: tuple[str, ...]  # English first


@dataclass(frozen=True)
class Region:
    """What ``/where`` asked for: countries (by code), or a radius around the person's own location."""

    label: str  # as people read it: "Italy", "Europe", "300 km"
    countries: frozenset[str] = frozenset()
    radius_km: float | None = None


@cache
def countries() -> dict[str, Country]:
    """ISO code -> country, from the table shipped with the package."""
    text = resources.files("recommender").joinpath("data/countries.csv").read_text("utf-8")
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    return {row["code"]: Country(row["code"], row["continent"], tuple(row["names"].split("|"))) for row in rows}


@cache
def _code_of_name() -> dict[str, str]:
    names = {alias: code for alias, code in _COUNTRY_ALIASES.items()}
    for country in countries().values():
        names[country.code.lower()] = country.code
        for name in country.names:
            names.setdefault(name.lower(), country.code)
    return names


def country_code(name: str) -> str | None:
    """The ISO code of a country written as a name (any of seven languages) or a code; None if unknown."""
    return _code_of_name().get(" ".join(name.split()).lower())


def parse_region(text: str) -> Region | None:
    """A region from what a person typed after /where; None when it names nothing we know."""
    words = " ".join(text.split()).strip()
    within = _WITHIN.match(words)
    if within:
        amount = float(within.group(1).replace(",", "."))
        km = amount * 1.609344 if within.group(2).lower().startswith("mi") else amount
        if not 0 < km <= MAX_RADIUS_KM:
            return None
        return Region(label=f"{km:.0f} km", radius_km=km)
    key = words.lower()
    if key in _CONTINENT_WORDS:
        continents = _CONTINENT_WORDS[key]
        codes = frozenset(c.code for c in countries().values() if c.continent in continents)
        label = " & ".join(CONTINENTS[c] for c in continents) if len(continents) > 1 else CONTINENTS[continents[0]]
        return Region(label=label, countries=codes)
    code = country_code(words)
    if code is None:
        return None
    return Region(label=countries()[code].names[0] if code in countries() else code, countries=frozenset({code}))


def destination_countries(destinations: Sequence[Destination]) -> np.ndarray:
    """Each row's ISO country code ("" when its country is not recognised), looked up once per distinct name."""
    codes = {name: country_code(name) or "" for name in {d.country for d in destinations}}
    return np.array([codes[d.country] for d in destinations], dtype="<U2")


def coordinates(destinations: Sequence[Destination]) -> np.ndarray:
    """(rows, 2) latitude and longitude in degrees; NaN where a row has none."""
    return np.array(
        [(d.lat, d.lon) if d.lat is not None and d.lon is not None else (np.nan, np.nan) for d in destinations],
        dtype=np.float64,
    ).reshape(-1, 2)


def distance_km(origin: tuple[float, float], points: np.ndarray) -> np.ndarray:
    """Great-circle distance from one point to each row of ``points`` (haversine); NaN stays NaN."""
    lat1, lon1 = np.radians(origin[0]), np.radians(origin[1])
    lat2, lon2 = np.radians(points[:, 0]), np.radians(points[:, 1])
    a = np.sin((lat2 - lat1) / 2) ** 2 + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def region_mask(
    region: Region, country_codes: np.ndarray, points: np.ndarray, origin: tuple[float, float] | None
) -> np.ndarray:
    """Which rows lie in the region. A radius needs the person's location: without one, nothing matches."""
    if region.radius_km is not None:
        if origin is None:
            return np.zeros(len(points), dtype=bool)
        with np.errstate(invalid="ignore"):
            return np.asarray(distance_km(origin, points) <= region.radius_km)
    return np.isin(country_codes, sorted(region.countries))


def valid_location(lat: float, lon: float) -> bool:
    """A place on Earth, and not (0, 0): that is where a missing location lands, not where anyone is."""
    on_earth = -90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0
    return on_earth and not (abs(lat) < 1e-6 and abs(lon) < 1e-6)

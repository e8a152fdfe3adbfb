"""catalog.csv as ``recommender.catalog`` reads it, plus the columns open data adds (languages, links, Q-id)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from opendata.commons import FileInfo
from opendata.files import write_atomically
from opendata.wikidata import Place

CATALOG_CSV = "catalog.csv"  # the name recommender.catalog looks for
# The columns recommender.catalog knows, in its order; it ignores the rest, which are for people and later tools.
BASE_COLUMNS = ("id", "image", "name", "city", "country", "lat", "lon", "description", "tags", "credit", "licence")
LINK_COLUMNS = ("licence_url", "source_url", "wikidata")


@dataclass(frozen=True)
class Entry:
    """One destination with its photo on disk."""

    place: Place
    info: FileInfo
    image: str  # catalog-relative path


def credit(info: FileInfo) -> str:
    """``Jane Doe, CC BY-SA 4.0``: the author and the licence, which is what BY and BY-SA ask to be shown next
    to the photo (the bot shows this line under it; the link is in ``source_url``)."""
    author = info.artist or "Wikimedia Commons"
    return f"{author}, {info.licence}" if info.licence else author


def columns(languages: Sequence[str]) -> list[str]:
    return [
        *BASE_COLUMNS,
        *LINK_COLUMNS,
        *(f"name:{lang}" for lang in languages),
        *(f"description:{lang}" for lang in languages),
        *(f"country:{lang}" for lang in languages),
    ]


def row(entry: Entry, languages: Sequence[str], tags: Sequence[str]) -> list[str]:
    place, info = entry.place, entry.info
    return [
        place.qid,
        entry.image,
        place.name(languages),
        place.city,
        place.country,
        f"{place.lat:.6f}",
        f"{place.lon:.6f}",
        place.description(languages),
        ";".join(tags),
        credit(info),
        info.licence,
        info.licence_url,
        info.page_url,
        f"https://www.wikidata.org/wiki/{place.qid}",
        *(place.labels.get(lang, "") for lang in languages),
        *(place.descriptions.get(lang, "") for lang in languages),
        *(place.country_labels.get(lang, "") for lang in languages),
    ]


def write_catalog(folder: Path, entries: Sequence[Entry], languages: Sequence[str], tags: Sequence[str]) -> Path:
    """Write catalog.csv in one step: a worker reading it mid-build sees the old catalog or the new one."""
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns(languages))
    for entry in entries:
        writer.writerow(row(entry, languages, tags))
    path = folder / CATALOG_CSV
    write_atomically(path, buffer.getvalue().encode("utf-8"))
    return path

"""A catalog of destinations: a folder of photos plus an optional CSV describing them.

The CSV is ``catalog.csv`` or ``manifest.csv`` in the folder, or any file named by the caller. Its columns (only
``image`` is required; a header row names them, in any order; common spellings such as ``path``, ``title``,
``latitude`` and ``creator`` are understood, and ``columns`` maps any other)::

    id, image, name, city, country, lat, lon, description, tags, credit, licence, destination

``image`` is a path relative to the folder. Each row is one photo; rows that share a ``destination`` are photos of
one place (a beach at noon and at sunset), shown as one result. Columns such as ``name:de`` are kept for the
languages that have them. Without a CSV every photo in the folder is a destination named after
its file ("lake_bled.jpg" -> "Lake bled"). Problems are collected with their line numbers and reported together;
a row with a problem is left out of the catalog, but never silently.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recommender.errors import UserError

CATALOG_CSV = "catalog.csv"
METADATA_FILES = (CATALOG_CSV, "manifest.csv")  # looked for in this order when no file is named
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
KNOWN_COLUMNS = (
    "id",
    "image",
    "name",
    "city",
    "country",
    "lat",
    "lon",
    "description",
    "tags",
    "credit",
    "licence",
    "destination",
)
# Accepted spellings of the same column, so that exported spreadsheets work as they are.
COLUMN_ALIASES = {
    "path": "image",
    "file": "image",
    "filename": "image",
    "photo": "image",
    "place": "city",
    "town": "city",
    "latitude": "lat",
    "longitude": "lon",
    "lng": "lon",
    "long": "lon",
    "creator": "credit",
    "author": "credit",
    "artist": "credit",
    "photographer": "credit",
    "attribution": "credit",
    "license": "licence",
    "title": "name",
    "destination_id": "destination",
    "place_id": "destination",
}
_LANGUAGE_COLUMN = re.compile(r"^(name|description):[a-z]{2,3}([_-][a-z0-9]+)?$")
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


@dataclass(frozen=True)
class Destination:
    """One catalog entry: a photo of a place and what to tell people about it."""

    id: str
    image: str  # relative to the catalog folder, with forward slashes
    name: str
    city: str = ""
    country: str = ""
    lat: float | None = None
    lon: float | None = None
    description: str = ""
    tags: tuple[str, ...] = ()
    credit: str = ""
    licence: str = ""
    destination: str = ""  # rows sharing it are photos of one place; empty: this row is a place of its own
    names: tuple[tuple[str, str], ...] = ()  # (language, name) from columns such as name:de, for other languages

    @property
    def place_key(self) -> str:
        """What makes two rows the same destination."""
        return self.destination or self.id

    @property
    def place(self) -> str:
        return ", ".join(part for part in (self.city, self.country) if part)

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "image": self.image,
            "name": self.name,
            "city": self.city,
            "country": self.country,
            "lat": self.lat,
            "lon": self.lon,
            "description": self.description,
            "tags": list(self.tags),
            "credit": self.credit,
            "licence": self.licence,
            "destination": self.destination,
            "names": dict(self.names),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> Destination:
        lat, lon = data.get("lat"), data.get("lon")
        return cls(
            id=str(data["id"]),
            image=str(data["image"]),
            name=str(data["name"]),
            city=str(data.get("city") or ""),
            country=str(data.get("country") or ""),
            lat=float(lat) if lat is not None else None,  # type: ignore[arg-type]
            lon=float(lon) if lon is not None else None,  # type: ignore[arg-type]
            description=str(data.get("description") or ""),
            tags=tuple(str(t) for t in data.get("tags") or ()),  # type: ignore[union-attr]
            credit=str(data.get("credit") or ""),
            licence=str(data.get("licence") or ""),
            destination=str(data.get("destination") or ""),
            names=tuple((str(k), str(v)) for k, v in dict(data.get("names") or {}).items()),  # type: ignore[call-overload]
        )


_STORED_DEFAULTS: dict[str, object] = {
    "city": "",
    "country": "",
    "lat": None,
    "lon": None,
    "description": "",
    "tags": (),
    "credit": "",
    "licence": "",
    "destination": "",
    "names": (),
}


def destination_from_stored(row: dict[str, object]) -> Destination:
    """A destination from a row the index wrote itself (``to_dict``): no checks, for a million rows at start-up.

    A frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``, which made opening a
    1M-row index take 15 s; filling ``__dict__`` at once takes a quarter of that. Rows from anywhere else go
    through ``from_dict``.
    """
    values = {**_STORED_DEFAULTS, **row}
    values.pop("content_hash", None)
    values["tags"] = tuple(values["tags"])  # type: ignore[arg-type]
    names = values["names"]
    values["names"] = tuple(names.items()) if isinstance(names, dict) else tuple(map(tuple, names))  # type: ignore[arg-type]
    destination = object.__new__(Destination)
    destination.__dict__.update(values)
    return destination


@dataclass(frozen=True)
class CatalogProblem:
    line: int | None  # 1-based line in the CSV (the header is line 1); None for a bare folder
    item: str  # the row's id or image path
    message: str
    file: str = CATALOG_CSV

    def __str__(self) -> str:
        where = f"{self.file} line {self.line}" if self.line is not None else "folder"
        return f"{where}: {self.item}: {self.message}"


@dataclass(frozen=True)
class Catalog:
    root: Path
    destinations: tuple[Destination, ...]
    problems: tuple[CatalogProblem, ...] = field(default=())
    lines: dict[str, int] = field(default_factory=dict)  # id -> CSV line, for later problem reports
    source: str = CATALOG_CSV  # the CSV's file name, for those reports

    def problem(self, destination: Destination, message: str) -> CatalogProblem:
        return CatalogProblem(self.lines.get(destination.id), destination.id, message, self.source)

    def image_path(self, destination: Destination) -> Path:
        return self.root / destination.image

    def __len__(self) -> int:
        return len(self.destinations)


class CatalogError(UserError, ValueError):
    """The catalog folder cannot be used at all (missing, empty, or its CSV has no usable header)."""


def is_inside(relative: str) -> bool:
    """Whether a catalog-relative path stays in the folder, judged on the text: photos may be symlinks."""
    normal = os.path.normpath(relative)
    return not (os.path.isabs(normal) or normal == ".." or normal.startswith("../"))


def name_from_filename(path: str) -> str:
    stem = Path(path).stem
    words = re.sub(r"[_\-]+", " ", stem).strip()
    return words[:1].upper() + words[1:] if words else stem


def id_from_path(path: str) -> str:
    """A readable id from a file path; names with no usable letters (e.g. 日本.jpg) get a stable hashed id."""
    readable = re.sub(r"[^A-Za-z0-9_.:-]+", "-", str(Path(path).with_suffix("")).replace("\\", "/")).strip("-_.:")
    if _ID_PATTERN.match(readable[:128]) and any(c.isalnum() for c in readable):
        return readable[:128]
    return "photo-" + hashlib.sha1(path.encode("utf-8")).hexdigest()[:12]


def load_catalog(
    root: str | Path, *, metadata: str | Path | None = None, columns: Mapping[str, str] | None = None
) -> Catalog:
    """Read a catalog folder. Row problems are returned in ``Catalog.problems``; folder problems raise.

    ``metadata`` names the CSV (else the first of ``METADATA_FILES`` in the folder, else none: every photo is a
    destination); ``columns`` maps our column names to the file's (``{"name": "title"}``).
    """
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"catalog folder not found: pass a folder of photos. Received: {root}")
    csv_path = _metadata_file(root, metadata)
    renames = _column_renames(columns or {})
    catalog = _from_csv(root, csv_path, renames) if csv_path is not None else _from_folder(root)
    if not catalog.destinations:
        detail = "; ".join(str(p) for p in catalog.problems[:5]) or "no photos found"
        raise CatalogError(f"the catalog has no usable destinations ({detail}). Received: {root}")
    return catalog


def parse_columns(text: str) -> dict[str, str]:
    """``name=title,city=town`` (as typed after ``--columns``) -> {"name": "title", "city": "town"}."""
    mapping = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        ours, sep, theirs = pair.partition("=")
        if not sep or not ours.strip() or not theirs.strip():
            raise CatalogError(f"--columns takes OURS=THEIRS pairs separated by commas. Received: {pair!r}")
        mapping[ours.strip().lower()] = theirs.strip()
    return mapping


def _metadata_file(root: Path, metadata: str | Path | None) -> Path | None:
    if metadata is not None:
        path = Path(metadata)
        path = path if path.is_absolute() or path.exists() else root / path
        if not path.is_file():
            raise CatalogError(f"metadata file not found. Received: {metadata}")
        return path
    return next((root / name for name in METADATA_FILES if (root / name).is_file()), None)


def _column_renames(columns: Mapping[str, str]) -> dict[str, str]:
    """Their header (lower-cased) -> our column, checked against the columns we know."""
    renames = {}
    for ours, theirs in columns.items():
        if ours not in KNOWN_COLUMNS and not _LANGUAGE_COLUMN.match(ours):
            raise CatalogError(
                f"--columns names an unknown column; ours are {', '.join(KNOWN_COLUMNS)} (and name:LANG, "
                f"description:LANG). Received: {ours}"
            )
        renames[theirs.strip().lower()] = ours
    return renames


def _from_folder(root: Path) -> Catalog:
    images = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not _hidden(p, root)
    )
    destinations = []
    for path in images:
        relative = path.relative_to(root).as_posix()
        destinations.append(Destination(id=id_from_path(relative), image=relative, name=name_from_filename(relative)))
    kept, problems = _drop_duplicate_ids([(None, d) for d in destinations])
    return Catalog(root, kept, tuple(problems))


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _normalise_header(header: Iterable[str], renames: Mapping[str, str]) -> list[str]:
    """Our column names for the file's: what the caller mapped, else a known spelling, else as it is."""
    names = []
    for raw in header:
        name = raw.strip().lower().lstrip("\ufeff")
        names.append(renames.get(name) or COLUMN_ALIASES.get(name, name))
    return names


def _from_csv(root: Path, csv_path: Path, renames: Mapping[str, str]) -> Catalog:
    problems: list[CatalogProblem] = []
    rows: list[tuple[int | None, Destination]] = []
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        try:
            header = _normalise_header(next(reader), renames)
        except StopIteration as error:
            raise CatalogError(f"{csv_path.name} is empty. Received: {csv_path}") from error
        if "image" not in header:
            raise CatalogError(
                f"{csv_path.name} needs an 'image' column (and optionally {', '.join(KNOWN_COLUMNS)}); name yours "
                f"with --columns image=YOURS. Received: columns={header}"
            )
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(
                    CatalogProblem(
                        line, row[0] if row else "", f"expected {len(header)} columns, found {len(row)}", csv_path.name
                    )
                )
                continue
            values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
            destination, problem = _parse_row(root, line, values, csv_path.name)
            if problem:
                problems.append(problem)
            else:
                rows.append((line, destination))  # type: ignore[arg-type]
    kept, duplicates = _drop_duplicate_ids(rows, csv_path.name)
    problems.extend(duplicates)
    first_lines = {d.id: line for line, d in reversed(rows) if line is not None}
    return Catalog(root, kept, tuple(sorted(problems, key=lambda p: p.line or 0)), first_lines, csv_path.name)


def _parse_row(
    root: Path, line: int, values: dict[str, str], file: str
) -> tuple[Destination | None, CatalogProblem | None]:
    image = values.get("image", "").replace("\\", "/")
    item = values.get("id") or image
    if not image:
        return None, CatalogProblem(line, item, "the image column is empty", file)
    if not is_inside(image):
        return None, CatalogProblem(line, item, "the image path leaves the catalog folder", file)
    path = root / image
    if not path.is_file():
        return None, CatalogProblem(line, item, f"image file not found: {image}", file)
    destination_id = values.get("id") or id_from_path(image)
    if not _ID_PATTERN.match(destination_id):
        return None, CatalogProblem(line, item, "id must be 1-128 letters, digits, '_', '.', ':' or '-'", file)
    try:
        lat = _coordinate(values.get("lat"), 90.0, "lat")
        lon = _coordinate(values.get("lon"), 180.0, "lon")
    except ValueError as error:
        return None, CatalogProblem(line, item, str(error), file)
    tags = tuple(t.strip() for t in re.split(r"[;,|]", values.get("tags", "")) if t.strip())
    return Destination(
        id=destination_id,
        image=image,
        name=values.get("name") or name_from_filename(image),
        city=values.get("city", ""),
        country=values.get("country", ""),
        lat=lat,
        lon=lon,
        description=values.get("description", ""),
        tags=tags,
        credit=values.get("credit", ""),
        licence=values.get("licence", ""),
        destination=values.get("destination", ""),
        names=tuple(
            (column.split(":", 1)[1].replace("-", "_"), value)
            for column, value in values.items()
            if column.startswith("name:") and value
        ),
    ), None


def _coordinate(text: str | None, limit: float, column: str) -> float | None:
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{column} is not a number: {text!r}") from None
    if not -limit <= value <= limit:
        raise ValueError(f"{column} must be between -{limit:g} and {limit:g}: {text}")
    return value


def _drop_duplicate_ids(
    rows: list[tuple[int | None, Destination]], file: str = CATALOG_CSV
) -> tuple[tuple[Destination, ...], list[CatalogProblem]]:
    """Keep the first row of each id; every later row with the same id is a problem."""
    first_line: dict[str, int | None] = {}
    kept: list[Destination] = []
    problems: list[CatalogProblem] = []
    for line, destination in rows:
        if destination.id in first_line:
            earlier = first_line[destination.id]
            where = f" (first used on line {earlier})" if earlier is not None else ""
            problems.append(CatalogProblem(line, destination.id, f"duplicate id{where}", file))
            continue
        first_line[destination.id] = line
        kept.append(destination)
    return tuple(kept), problems

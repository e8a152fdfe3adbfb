"""A catalog of destinations: a folder of photos plus an optional ``catalog.csv`` describing them.

``catalog.csv`` columns (only ``image`` is required; a header row names them, in any order)::

    id, image, name, city, country, lat, lon, description, tags, credit, licence

``image`` is a path relative to the folder. Without a CSV every photo in the folder is a destination named after
its file ("lake_bled.jpg" -> "Lake bled"). Problems are collected with their line numbers and reported together;
a row with a problem is left out of the catalog, but never silently.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from recommender.errors import UserError

CATALOG_CSV = "catalog.csv"
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
)
# Accepted spellings of the same column, so that exported spreadsheets work as they are.
COLUMN_ALIASES = {
    "path": "image",
    "file": "image",
    "photo": "image",
    "place": "city",
    "latitude": "lat",
    "longitude": "lon",
    "lng": "lon",
    "creator": "credit",
    "license": "licence",
    "title": "name",
}
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
        )


@dataclass(frozen=True)
class CatalogProblem:
    line: int | None  # 1-based line in catalog.csv (the header is line 1); None for a bare folder
    item: str  # the row's id or image path
    message: str

    def __str__(self) -> str:
        where = f"{CATALOG_CSV} line {self.line}" if self.line is not None else "folder"
        return f"{where}: {self.item}: {self.message}"


@dataclass(frozen=True)
class Catalog:
    root: Path
    destinations: tuple[Destination, ...]
    problems: tuple[CatalogProblem, ...] = field(default=())
    lines: dict[str, int] = field(default_factory=dict)  # id -> catalog.csv line, for later problem reports

    def problem(self, destination: Destination, message: str) -> CatalogProblem:
        return CatalogProblem(self.lines.get(destination.id), destination.id, message)

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


def load_catalog(root: str | Path) -> Catalog:
    """Read a catalog folder. Row problems are returned in ``Catalog.problems``; folder problems raise."""
    root = Path(root)
    if not root.is_dir():
        raise CatalogError(f"catalog folder not found: pass a folder of photos. Received: {root}")
    csv_path = root / CATALOG_CSV
    catalog = _from_csv(root, csv_path) if csv_path.exists() else _from_folder(root)
    if not catalog.destinations:
        detail = "; ".join(str(p) for p in catalog.problems[:5]) or "no photos found"
        raise CatalogError(f"the catalog has no usable destinations ({detail}). Received: {root}")
    return catalog


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


def _normalise_header(header: Iterable[str]) -> list[str]:
    names = []
    for raw in header:
        name = raw.strip().lower().lstrip("\ufeff")
        names.append(COLUMN_ALIASES.get(name, name))
    return names


def _from_csv(root: Path, csv_path: Path) -> Catalog:
    problems: list[CatalogProblem] = []
    rows: list[tuple[int | None, Destination]] = []
    with csv_path.open(newline="", encoding="utf-8-sig") as file:
        reader = csv.reader(file)
        try:
            header = _normalise_header(next(reader))
        except StopIteration as error:
            raise CatalogError(f"{CATALOG_CSV} is empty. Received: {csv_path}") from error
        if "image" not in header:
            raise CatalogError(
                f"{CATALOG_CSV} needs an 'image' column (and optionally {', '.join(KNOWN_COLUMNS)}). "
                f"Received: columns={header}"
            )
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                problems.append(
                    CatalogProblem(line, row[0] if row else "", f"expected {len(header)} columns, found {len(row)}")
                )
                continue
            values = {name: cell.strip() for name, cell in zip(header, row, strict=True)}
            destination, problem = _parse_row(root, line, values)
            if problem:
                problems.append(problem)
            else:
                rows.append((line, destination))  # type: ignore[arg-type]
    kept, duplicates = _drop_duplicate_ids(rows)
    problems.extend(duplicates)
    first_lines = {d.id: line for line, d in reversed(rows) if line is not None}
    return Catalog(root, kept, tuple(sorted(problems, key=lambda p: p.line or 0)), first_lines)


def _parse_row(root: Path, line: int, values: dict[str, str]) -> tuple[Destination | None, CatalogProblem | None]:
    image = values.get("image", "").replace("\\", "/")
    item = values.get("id") or image
    if not image:
        return None, CatalogProblem(line, item, "the image column is empty")
    if not is_inside(image):
        return None, CatalogProblem(line, item, "the image path leaves the catalog folder")
    path = root / image
    if not path.is_file():
        return None, CatalogProblem(line, item, f"image file not found: {image}")
    destination_id = values.get("id") or id_from_path(image)
    if not _ID_PATTERN.match(destination_id):
        return None, CatalogProblem(line, item, "id must be 1-128 letters, digits, '_', '.', ':' or '-'")
    try:
        lat = _coordinate(values.get("lat"), 90.0, "lat")
        lon = _coordinate(values.get("lon"), 180.0, "lon")
    except ValueError as error:
        return None, CatalogProblem(line, item, str(error))
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
    rows: list[tuple[int | None, Destination]],
) -> tuple[tuple[Destination, ...], list[CatalogProblem]]:
    """Keep the first row of each id; every later row with the same id is a problem."""
    first_line: dict[str, int | None] = {}
    kept: list[Destination] = []
    problems: list[CatalogProblem] = []
    for line, destination in rows:
        if destination.id in first_line:
            earlier = first_line[destination.id]
            where = f" (first used on line {earlier})" if earlier is not None else ""
            problems.append(CatalogProblem(line, destination.id, f"duplicate id{where}"))
            continue
        first_line[destination.id] = line
        kept.append(destination)
    return tuple(kept), problems

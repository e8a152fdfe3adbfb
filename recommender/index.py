"""The catalog's fingerprints on disk and in memory: build (incremental, atomic), open (memory-mapped), search.

Layout of an index folder::

    INDEX_DIR/CURRENT                     the name of the version in use (replaced atomically)
    INDEX_DIR/versions/<version>/manifest.json    fingerprint, counts, build time, problems
    INDEX_DIR/versions/<version>/vectors.npy      float32 (n, dim), unit rows, memory-mapped on open
    INDEX_DIR/versions/<version>/destinations.jsonl   one destination per row, with its photo's content hash

A new build is written beside the current one and published by replacing CURRENT, so a reader (the worker)
never sees half an index, and can notice a new version by reading one small file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.ann import IndexKind, open_vector_index
from recommender.catalog import Destination, destination_from_stored
from recommender.errors import UserError
from recommender.fingerprint import BackboneFingerprint, ExtractionOptions, FingerprintMismatch
from recommender.geo import coordinates, destination_countries
from recommender.refine import NO_REFINE, RefineOptions, Whitening, unit
from recommender.search import (
    ExactIndex,
    Match,
    Placement,
    VectorIndex,
    collapse_duplicates,
    has_accelerator,
    merge_groups,
    top_k,
)

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
KEEP_VERSIONS = 3  # the worker may still be reading the previous one while it swaps


class IndexUnavailable(UserError, ValueError):
    """An index folder that cannot be opened: missing, unfinished, or of another format."""


@dataclass(frozen=True)
class IndexManifest:
    format: int
    version: str
    fingerprint: BackboneFingerprint
    count: int
    built_at: str
    build_seconds: float
    catalog: str
    extracted: int
    reused: int
    problems: tuple[str, ...] = ()
    refine: RefineOptions = NO_REFINE
    extraction: ExtractionOptions = field(default_factory=ExtractionOptions)

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["fingerprint"] = self.fingerprint.to_dict()
        data["problems"] = list(self.problems)
        data["refine"] = self.refine.to_dict()
        data["extraction"] = self.extraction.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> IndexManifest:
        return cls(
            format=int(data["format"]),  # type: ignore[arg-type]
            version=str(data["version"]),
            fingerprint=BackboneFingerprint.from_dict(data["fingerprint"]),  # type: ignore[arg-type]
            count=int(data["count"]),  # type: ignore[arg-type]
            built_at=str(data["built_at"]),
            build_seconds=float(data["build_seconds"]),  # type: ignore[arg-type]
            catalog=str(data["catalog"]),
            extracted=int(data["extracted"]),  # type: ignore[arg-type]
            reused=int(data["reused"]),  # type: ignore[arg-type]
            problems=tuple(str(p) for p in data.get("problems", ())),  # type: ignore[union-attr]
            refine=RefineOptions.from_dict(data.get("refine") or {}),  # type: ignore[arg-type]
            extraction=ExtractionOptions.from_dict(data.get("extraction") or {}),  # type: ignore[arg-type]
        )


@dataclass
class DestinationIndex:
    """Destinations with their unit fingerprints, searchable by cosine similarity.

    ``vectors`` are the refined vectors that are searched (see ``recommender.refine``); ``raw_vectors`` the
    extractor's own output, kept so that a rebuild can reuse them. Queries go through ``prepare_queries``.
    """

    fingerprint: BackboneFingerprint
    destinations: tuple[Destination, ...]
    vectors: np.ndarray
    content_hashes: tuple[str, ...]
    duplicate_groups: np.ndarray | None = None
    version: str = "in-memory"
    path: Path | None = None
    placement: Placement = "auto"
    raw_vectors: np.ndarray | None = None
    whitening: Whitening | None = None
    refine: RefineOptions = NO_REFINE
    searcher: VectorIndex | None = field(default=None, repr=False)  # None: exact search over ``vectors``
    _search: VectorIndex = field(init=False, repr=False)
    _exact: ExactIndex = field(init=False, repr=False)
    _positions: dict[str, int] = field(init=False, repr=False)
    _groups: np.ndarray | None = field(init=False, repr=False)  # rows shown as one result (see ``group_of``)
    _largest_group: int = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.destinations) != len(self.vectors):
            raise ValueError(
                f"one vector per destination expected. Received: {len(self.destinations)} destinations, "
                f"{len(self.vectors)} vectors"
            )
        self._exact = ExactIndex(self.vectors, placement=self.placement)
        # Scores of every row (several views of one photo, evaluation) always come from the exact index.
        self._search = self.searcher or self._exact
        self._positions = {d.id: i for i, d in enumerate(self.destinations)}
        first_of_place: dict[str, int] = {}
        places = np.array([first_of_place.setdefault(d.place_key, i) for i, d in enumerate(self.destinations)])
        # One result per destination: its photos, and near-identical photos of different rows, are one group.
        self._groups = merge_groups(places if len(places) else None, self.duplicate_groups)
        self._largest_group = int(np.bincount(self._groups).max()) if self._groups is not None else 1

    def __len__(self) -> int:
        return len(self.destinations)

    @property
    def on_accelerator(self) -> bool:
        return self.searcher is None and self._exact.on_accelerator

    def position(self, destination_id: str) -> int | None:
        return self._positions.get(destination_id)

    @cached_property
    def country_codes(self) -> np.ndarray:
        """Each row's ISO country code ("" where the catalog's country is not recognised)."""
        return destination_countries(self.destinations)

    @cached_property
    def coordinates(self) -> np.ndarray:
        """(rows, 2) latitude and longitude; NaN where a row has none."""
        return coordinates(self.destinations)

    def group_of(self, position: int) -> int:
        """Rows with the same group are one result: photos of one destination, or the same photo twice."""
        return int(self._groups[position]) if self._groups is not None else position

    def rows_in_groups(self, groups: Collection[int]) -> list[int]:
        """Every row of these groups."""
        if self._groups is None:
            return sorted(groups)
        return np.flatnonzero(np.isin(self._groups, np.fromiter(groups, np.int64))).tolist()

    def collapse(self, matches: list[Match], limit: int | None = None) -> list[Match]:
        """The best row of each group, in order (the first ``limit`` of them)."""
        return collapse_duplicates(matches, self._groups, limit)

    def overfetch(self, wanted: int) -> int:
        """How many rows to ask for so that ``wanted`` groups survive collapsing (capped at the catalog)."""
        return min(len(self), wanted * 2 * self._largest_group)

    def get(self, destination_id: str) -> Destination | None:
        position = self._positions.get(destination_id)
        return self.destinations[position] if position is not None else None

    def prepare_queries(self, raw: np.ndarray) -> np.ndarray:
        """Extractor output -> the space the catalog is searched in (the catalog's whitening, if any)."""
        raw = np.atleast_2d(np.asarray(raw, dtype=np.float32))
        return self.whitening.apply(raw) if self.whitening is not None else unit(raw)

    def photo_similarity(self, raw_query: np.ndarray, positions: Sequence[int]) -> np.ndarray:
        """Cosine of the extractor's own fingerprints (before any whitening): how alike two photos look."""
        catalog = self.raw_vectors if self.raw_vectors is not None else self.vectors
        rows = np.asarray(catalog[np.asarray(positions, dtype=np.int64)], dtype=np.float32)
        return rows @ unit(np.asarray(raw_query, dtype=np.float32).reshape(-1))

    def _expanded(self, queries: np.ndarray) -> np.ndarray:
        """alpha-QE: each query pulled toward its best results, before the search that counts."""
        k = self.refine.query_expansion
        if k <= 0 or len(self) == 0:
            return queries
        expanded = []
        for query, matches in zip(queries, self._search.search(queries, min(k, len(self))), strict=True):
            neighbours = self._search.vectors([m.position for m in matches])
            weights = np.power(np.maximum([m.score for m in matches], 0.0), self.refine.alpha)[:, None]
            expanded.append(query + (weights * neighbours).sum(axis=0))
        return unit(np.stack(expanded))

    def vectors_of(self, destination_ids: Sequence[str]) -> np.ndarray:
        positions = [p for i in destination_ids if (p := self._positions.get(i)) is not None]
        return self._search.vectors(positions) if positions else np.zeros((0, self._search.dim), np.float32)

    def rank_positions(
        self, query: np.ndarray, limit: int, *, exclude: Collection[str] = (), allowed: np.ndarray | None = None
    ) -> list[Match]:
        """The best ``limit`` rows for one query, one per destination: what a result list pages through.

        ``allowed`` (a boolean per row, e.g. a region) filters inside the search.

        Several rows in ``query`` are views of one photo (turned sideways, say): each catalog photo then
        counts with its best similarity to any of them.
        """
        excluded = {p for i in exclude if (p := self._positions.get(i)) is not None}
        views = self._expanded(np.atleast_2d(query))
        if len(views) == 1:
            matches = self._search.search(views, self.overfetch(limit), exclude=[excluded], allowed=allowed)[0]
        else:
            best = self._exact.scores(views).max(axis=0)
            if allowed is not None:
                best[~np.asarray(allowed, dtype=bool)] = -np.inf
            matches = [m for m in top_k(best, self.overfetch(limit), exclude=excluded) if np.isfinite(m.score)]
        return self.collapse(matches, limit)

    def rank_many(self, queries: np.ndarray, limit: int) -> list[list[Match]]:
        """``rank_positions`` for many photos at once (one row each): one pass over the matrix serves them all.

        A single query reads the whole matrix (and the query expansion reads it again): for a batch of photos,
        reading it once per batch instead of once per photo is most of the ranking's cost.
        """
        rows = self._search.search(self._expanded(np.atleast_2d(queries)), self.overfetch(limit))
        return [self.collapse(matches, limit) for matches in rows]

    def scores(self, queries: np.ndarray) -> np.ndarray:
        return self._exact.scores(np.atleast_2d(queries))


# ---------------------------------------------------------------------------------------------------- open


def current_version(index_dir: Path) -> str | None:
    try:
        return (index_dir / CURRENT_FILE).read_text().strip() or None
    except FileNotFoundError:
        return None


def open_index(
    index_dir: str | Path,
    *,
    expected: BackboneFingerprint | None = None,
    placement: Placement = "auto",
    search: IndexKind = "auto",
) -> DestinationIndex:
    """Open the current version, memory-mapped; refuse it if it was built by another backbone than ``expected``.

    ``search`` picks exact or approximate search (``recommender.ann.open_vector_index``); "auto" uses the
    version's approximate index when it has one, except on an accelerator, where exact search is fast enough.
    """
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        raise IndexUnavailable(
            f"no index found in {index_dir}: build one with `wanderlens index CATALOG_DIR --out {index_dir}`. "
            f"Received: {index_dir}"
        )
    folder = index_dir / VERSIONS_DIR / version
    try:
        manifest = IndexManifest.from_dict(json.loads((folder / "manifest.json").read_text()))
    except (OSError, ValueError, KeyError) as error:
        raise IndexUnavailable(f"index version {version} is unreadable; rebuild it. Received: {error}") from error
    if manifest.format != INDEX_FORMAT:
        raise IndexUnavailable(f"index format {manifest.format} is not supported; rebuild it. Received: {folder}")
    if expected is not None and manifest.fingerprint != expected:
        raise FingerprintMismatch(manifest.fingerprint, expected)
    try:
        # One parse of the whole file as a JSON array: a million json.loads calls cost three times as much.
        lines = (folder / "destinations.jsonl").read_text("utf-8").splitlines()
        rows = json.loads("[" + ",".join(line for line in lines if line) + "]")
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        raw_path, whitening_path = folder / "raw.npy", folder / "whitening.npz"
        raw = np.load(raw_path, mmap_mode="r") if raw_path.exists() else vectors
        whitening = Whitening.load(whitening_path) if whitening_path.exists() else None
        groups_path = folder / "duplicates.npy"
        groups = np.load(groups_path) if groups_path.exists() else None
        destinations = tuple(destination_from_stored(row) for row in rows)
        hashes = tuple(str(row["content_hash"]) for row in rows)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexUnavailable(f"index version {version} is damaged; rebuild it. Received: {error}") from error
    if (
        not (len(rows) == len(vectors) == manifest.count)
        or vectors.ndim != 2
        or vectors.shape[1] != (whitening.dim if whitening is not None else manifest.fingerprint.dim)
    ):
        raise IndexUnavailable(
            f"index version {version} is incomplete; rebuild it. Received: {len(rows)} destinations, "
            f"vectors {vectors.shape}, manifest count {manifest.count}"
        )
    on_device = search == "auto" and placement != "host" and has_accelerator()
    searcher = None if on_device else open_vector_index(folder, vectors, search, placement=placement)
    return DestinationIndex(
        fingerprint=manifest.fingerprint,
        destinations=destinations,
        vectors=vectors,
        content_hashes=hashes,
        duplicate_groups=groups,
        version=version,
        path=folder,
        placement=placement,
        raw_vectors=raw,
        whitening=whitening,
        refine=manifest.refine,
        searcher=None if isinstance(searcher, ExactIndex) else searcher,
    )


def read_manifest(index_dir: str | Path) -> IndexManifest | None:
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        return None
    return IndexManifest.from_dict(json.loads((index_dir / VERSIONS_DIR / version / "manifest.json").read_text()))

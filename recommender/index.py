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
import os
import shutil
import tempfile
import time
from collections.abc import Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.ann import IndexKind, build_ann, save_ann, saved_kind, wanted_ann
from recommender.catalog import Catalog, CatalogProblem, Destination
from recommender.fingerprint import BackboneFingerprint, ExtractionOptions, FingerprintMismatch
from recommender.images import content_hash
from recommender.pipeline import embed_paths
from recommender.refine import DEFAULT_REFINE, NO_REFINE, RefineOptions, Whitening, refine_catalog, unit
from recommender.search import ExactIndex, Match, Placement, collapse_duplicates, near_duplicate_groups, top_k

if TYPE_CHECKING:
    from recommender.extractor import Extractor

logger = logging.getLogger(__name__)

INDEX_FORMAT = 1
CURRENT_FILE = "CURRENT"
VERSIONS_DIR = "versions"
KEEP_VERSIONS = 3  # the worker may still be reading the previous one while it swaps


class IndexUnavailable(ValueError):
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


@dataclass(frozen=True)
class Result:
    destination: Destination
    score: float


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
    _search: ExactIndex = field(init=False, repr=False)
    _positions: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.destinations) != len(self.vectors):
            raise ValueError(
                f"one vector per destination expected. Received: {len(self.destinations)} destinations, "
                f"{len(self.vectors)} vectors"
            )
        self._search = ExactIndex(self.vectors, placement=self.placement)
        self._positions = {d.id: i for i, d in enumerate(self.destinations)}

    def __len__(self) -> int:
        return len(self.destinations)

    @property
    def on_accelerator(self) -> bool:
        return self._search.on_accelerator

    def position(self, destination_id: str) -> int | None:
        return self._positions.get(destination_id)

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

    def search(
        self,
        queries: np.ndarray,
        k: int,
        *,
        exclude: Sequence[Collection[str]] | None = None,
        offset: int = 0,
        collapse: bool = True,
    ) -> list[list[Result]]:
        """For each query, results ``offset .. offset+k`` of its ranking, best first.

        ``exclude`` holds destination ids per query (already shown, or the query photo itself); near-duplicate
        catalog photos are collapsed to their best one unless ``collapse`` is off.
        """
        queries = self._expanded(np.atleast_2d(queries))
        excluded_positions = [
            {p for i in ids if (p := self._positions.get(i)) is not None} for ids in (exclude or [()] * len(queries))
        ]
        groups = self.duplicate_groups if collapse else None
        # Collapsing can drop matches, so ask for more than needed; duplicates are rare, 2x is plenty.
        want = (offset + k) * (2 if groups is not None else 1)
        rows = self._search.search(queries, min(want, len(self)), exclude=excluded_positions)
        results = []
        for matches in rows:
            kept: list[Match] = collapse_duplicates(matches, groups)[offset : offset + k]
            results.append([Result(self.destinations[m.position], m.score) for m in kept])
        return results

    def rank_positions(self, query: np.ndarray, limit: int, *, exclude: Collection[str] = ()) -> list[Match]:
        """The best ``limit`` rows for one query, duplicates collapsed: what a result list pages through.

        Several rows in ``query`` are views of one photo (turned sideways, say): each catalog photo then
        counts with its best similarity to any of them.
        """
        excluded = {p for i in exclude if (p := self._positions.get(i)) is not None}
        views = self._expanded(np.atleast_2d(query))
        if len(views) == 1:
            matches = self._search.search(views, min(len(self), limit * 2), exclude=[excluded])[0]
        else:
            matches = top_k(self._search.scores(views).max(axis=0), min(len(self), limit * 2), exclude=excluded)
        return collapse_duplicates(matches, self.duplicate_groups)[:limit]

    def scores(self, queries: np.ndarray) -> np.ndarray:
        return self._search.scores(np.atleast_2d(queries))


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
) -> DestinationIndex:
    """Open the current version, memory-mapped; refuse it if it was built by another backbone than ``expected``."""
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
        rows = [json.loads(line) for line in (folder / "destinations.jsonl").read_text("utf-8").splitlines() if line]
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        raw_path, whitening_path = folder / "raw.npy", folder / "whitening.npz"
        raw = np.load(raw_path, mmap_mode="r") if raw_path.exists() else vectors
        whitening = Whitening.load(whitening_path) if whitening_path.exists() else None
        groups_path = folder / "duplicates.npy"
        groups = np.load(groups_path) if groups_path.exists() else None
        destinations = tuple(Destination.from_dict(row) for row in rows)
        hashes = tuple(str(row["content_hash"]) for row in rows)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise IndexUnavailable(f"index version {version} is damaged; rebuild it. Received: {error}") from error
    if (
        not (len(rows) == len(vectors) == manifest.count)
        or vectors.ndim != 2
        or vectors.shape[1] != manifest.fingerprint.dim
    ):
        raise IndexUnavailable(
            f"index version {version} is incomplete; rebuild it. Received: {len(rows)} destinations, "
            f"vectors {vectors.shape}, manifest count {manifest.count}"
        )
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
    )


def read_manifest(index_dir: str | Path) -> IndexManifest | None:
    index_dir = Path(index_dir)
    version = current_version(index_dir)
    if version is None:
        return None
    return IndexManifest.from_dict(json.loads((index_dir / VERSIONS_DIR / version / "manifest.json").read_text()))


# ---------------------------------------------------------------------------------------------------- build


@dataclass(frozen=True)
class BuildReport:
    manifest: IndexManifest
    path: Path
    problems: tuple[CatalogProblem, ...]


def _file_hash(path: Path) -> str:
    return content_hash(path.read_bytes())


def _previous_index(out_dir: Path, fingerprint: BackboneFingerprint) -> DestinationIndex | None:
    """The current version, when it was built by the same backbone (its vectors can then be reused)."""
    try:
        return open_index(out_dir, expected=fingerprint, placement="host")
    except (IndexUnavailable, FingerprintMismatch, OSError) as error:
        if current_version(out_dir) is not None:
            logger.info("not reusing the existing index: %s", error)
        return None


def build_index(
    catalog: Catalog,
    extractor: Extractor,
    out_dir: str | Path,
    *,
    batch_size: int = 32,
    decode_workers: int = 2,
    progress: bool = True,
    refine: RefineOptions = DEFAULT_REFINE,
    ann: IndexKind = "auto",
) -> BuildReport:
    """Fingerprint every destination's photo (reusing vectors of unchanged photos) and publish a new version.

    When nothing changed (same destinations, same photos) the current version stays as it is: publishing an
    identical one would only make every worker reload. ``ann``: the approximate index the version carries
    (`recommender.ann.choose_kind`: "auto" builds one from 200,000 photos up).
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    fingerprint = extractor.fingerprint
    previous = _previous_index(out_dir, fingerprint)
    reusable = {h: i for i, h in enumerate(previous.content_hashes)} if previous is not None else {}
    problems = list(catalog.problems)

    hashes: dict[str, str] = {}
    vectors: dict[str, np.ndarray] = {}
    todo: list[Destination] = []
    for destination in catalog.destinations:
        try:
            digest = _file_hash(catalog.image_path(destination))
        except OSError as error:
            problems.append(catalog.problem(destination, f"cannot read file: {error.strerror or error}"))
            continue
        hashes[destination.id] = digest
        if previous is not None and digest in reusable:
            vectors[destination.id] = np.asarray(previous.raw_vectors[reusable[digest]])  # type: ignore[index]
        else:
            todo.append(destination)
    reused = len(vectors)

    embedded = embed_paths(
        [catalog.image_path(d) for d in todo],
        extractor,
        batch_size=batch_size,
        decode_workers=decode_workers,
        progress=progress,
    )
    for position, vector in embedded.vectors.items():
        vectors[todo[position].id] = vector
    for position, reason in embedded.failures.items():
        problems.append(catalog.problem(todo[position], reason))

    kept = [d for d in catalog.destinations if d.id in vectors]
    if not kept:
        raise ValueError(f"no photo of the catalog could be fingerprinted. Received: {len(problems)} problems")
    if (
        previous is not None
        and previous.path is not None
        and tuple(kept) == previous.destinations
        and tuple(hashes[d.id] for d in kept) == previous.content_hashes
        and previous.refine == refine
        and saved_kind(previous.path) == wanted_ann(len(kept), ann)
    ):
        current = read_manifest(out_dir)
        assert current is not None
        unchanged = replace(
            current,
            extracted=0,
            reused=len(kept),
            build_seconds=round(time.perf_counter() - started, 3),
            problems=tuple(str(p) for p in problems),
        )
        return BuildReport(unchanged, previous.path, tuple(problems))
    matrix = np.stack([vectors[d.id] for d in kept]).astype(np.float32)
    version = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    manifest = IndexManifest(
        format=INDEX_FORMAT,
        version=version,
        fingerprint=fingerprint,
        count=len(kept),
        built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        build_seconds=round(time.perf_counter() - started, 3),
        catalog=str(catalog.root),
        extracted=len(kept) - min(reused, len(kept)),
        reused=reused,
        problems=tuple(str(p) for p in problems),
        refine=refine,
        extraction=extractor.options,
    )
    path = _publish(out_dir, manifest, kept, [hashes[d.id] for d in kept], matrix, ann=ann, progress=progress)
    return BuildReport(manifest, path, tuple(problems))


def _publish(
    out_dir: Path,
    manifest: IndexManifest,
    destinations: list[Destination],
    hashes: list[str],
    matrix: np.ndarray,
    *,
    ann: IndexKind = "auto",
    progress: bool = True,
) -> Path:
    versions = out_dir / VERSIONS_DIR
    versions.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{manifest.version}-", dir=versions))
    try:
        searched, whitening = refine_catalog(
            matrix, manifest.refine, unwhitened_tail=manifest.extraction.unwhitened_tail
        )
        np.save(staging / "raw.npy", matrix)
        np.save(staging / "vectors.npy", searched)
        if (kind := wanted_ann(len(searched), ann)) is not None:
            # In the version folder, so that a worker never pairs one version's vectors with another's index.
            save_ann(build_ann(searched, kind, progress=progress), staging)
        if whitening is not None:
            whitening.save(staging / "whitening.npz")
        # Near-duplicates are judged on the raw fingerprints: whitening exaggerates small differences.
        np.save(staging / "duplicates.npy", near_duplicate_groups(matrix))
        with (staging / "destinations.jsonl").open("w", encoding="utf-8") as file:
            for destination, digest in zip(destinations, hashes, strict=True):
                file.write(json.dumps({**destination.to_dict(), "content_hash": digest}, ensure_ascii=False) + "\n")
        (staging / "manifest.json").write_text(json.dumps(manifest.to_dict(), indent=2, ensure_ascii=False))
        for item in staging.iterdir():
            with item.open("rb") as handle:
                os.fsync(handle.fileno())
        final = versions / manifest.version
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    pointer = out_dir / f".{CURRENT_FILE}.tmp"
    pointer.write_text(manifest.version + "\n")
    os.replace(pointer, out_dir / CURRENT_FILE)
    _prune(versions, keep=manifest.version)
    return final


def _prune(versions: Path, *, keep: str) -> None:
    published = sorted(p for p in versions.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in published[:-KEEP_VERSIONS]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)
    for stale in versions.glob(".*"):
        # Leftovers of a build that was killed; a live build's staging folder is younger than an hour.
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)

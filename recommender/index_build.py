"""Building an index folder: fingerprint a catalog (only new or changed photos), refine, publish atomically.

The layout it writes is described in ``recommender.index``, which opens and searches what this module publishes.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from recommender.catalog import Catalog, CatalogProblem, Destination
from recommender.download import sha256_file
from recommender.fingerprint import BackboneFingerprint, FingerprintMismatch
from recommender.index import (
    CURRENT_FILE,
    INDEX_FORMAT,
    KEEP_VERSIONS,
    VERSIONS_DIR,
    DestinationIndex,
    IndexManifest,
    IndexUnavailable,
    current_version,
    open_index,
    read_manifest,
)
from recommender.pipeline import embed_paths
from recommender.refine import DEFAULT_REFINE, RefineOptions, refine_catalog
from recommender.search import near_duplicate_groups

if TYPE_CHECKING:
    from recommender.extractor import Extractor

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildReport:
    manifest: IndexManifest
    path: Path
    problems: tuple[CatalogProblem, ...]
    near_duplicates: tuple[tuple[str, ...], ...] = ()  # ids of photos that look identical (the same one twice?)


def near_duplicate_ids(destinations: Sequence[Destination], groups: np.ndarray | None) -> tuple[tuple[str, ...], ...]:
    """The groups of more than one near-identical photo, as ids: worth telling whoever curates the catalog."""
    if groups is None:
        return ()
    members: dict[int, list[str]] = {}
    for destination, group in zip(destinations, groups, strict=True):
        members.setdefault(int(group), []).append(destination.id)
    return tuple(tuple(ids) for ids in members.values() if len(ids) > 1)


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
) -> BuildReport:
    """Fingerprint every destination's photo (reusing vectors of unchanged photos) and publish a new version.

    When nothing changed (same destinations, same photos) the current version stays as it is: publishing an
    identical one would only make every worker reload.
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
            digest = sha256_file(catalog.image_path(destination))
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
        return BuildReport(
            unchanged, previous.path, tuple(problems), near_duplicate_ids(kept, previous.duplicate_groups)
        )
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
    # Judged on the raw fingerprints: whitening exaggerates small differences.
    duplicates = near_duplicate_groups(matrix)
    path = _publish(out_dir, manifest, kept, [hashes[d.id] for d in kept], matrix, duplicates)
    return BuildReport(manifest, path, tuple(problems), near_duplicate_ids(kept, duplicates))


def _publish(
    out_dir: Path,
    manifest: IndexManifest,
    destinations: list[Destination],
    hashes: list[str],
    matrix: np.ndarray,
    duplicates: np.ndarray,
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
        if whitening is not None:
            whitening.save(staging / "whitening.npz")
        np.save(staging / "duplicates.npy", duplicates)
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

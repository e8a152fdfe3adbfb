"""Many image files to fingerprints: decoding in background threads overlaps the network's forward passes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from recommender.images import UnsupportedImage

if TYPE_CHECKING:
    from recommender.extractor import Extractor, SceneHint


@dataclass(frozen=True)
class EmbeddedFiles:
    vectors: dict[int, np.ndarray]  # input position -> unit vector, for the files that decoded
    hints: dict[int, list[SceneHint]]
    failures: dict[int, str]  # input position -> why it was left out


def _decode(path: Path, extractor: Extractor) -> np.ndarray | str:
    try:
        return extractor.preprocess(path)
    except UnsupportedImage as error:
        return f"unreadable image: {error}"
    except OSError as error:
        return f"cannot read file: {error.strerror or error}"


def _decoded(paths: Sequence[Path], extractor: Extractor, workers: int, prefetch: int) -> Iterator[np.ndarray | str]:
    """Decoded pixels (or a failure message) in input order, at most ``prefetch`` files ahead of the consumer."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode") as pool:
        pending: list[Future[np.ndarray | str]] = []
        upcoming = iter(paths)
        for path in upcoming:
            pending.append(pool.submit(_decode, path, extractor))
            if len(pending) >= prefetch:
                break
        while pending:
            yield pending.pop(0).result()
            following = next(upcoming, None)
            if following is not None:
                pending.append(pool.submit(_decode, following, extractor))


def embed_paths(
    paths: Sequence[Path],
    extractor: Extractor,
    *,
    batch_size: int = 32,
    decode_workers: int = 2,
    progress: bool = True,
    description: str = "Fingerprinting photos",
) -> EmbeddedFiles:
    """Fingerprint every file, in batches, with a progress bar showing images/s."""
    vectors: dict[int, np.ndarray] = {}
    hints: dict[int, list[SceneHint]] = {}
    failures: dict[int, str] = {}
    batch: list[tuple[int, np.ndarray]] = []
    bar = tqdm(total=len(paths), unit="img", desc=description, disable=not progress or not paths)

    def flush() -> None:
        if batch:
            embedded = extractor.embed(np.stack([pixels for _, pixels in batch]))
            for (position, _), vector, hint in zip(batch, embedded.vectors, embedded.hints, strict=True):
                vectors[position] = vector
                hints[position] = hint
            bar.update(len(batch))
            batch.clear()

    for position, decoded in enumerate(_decoded(paths, extractor, decode_workers, 2 * batch_size)):
        if isinstance(decoded, str):
            failures[position] = decoded
            bar.update(1)
            continue
        batch.append((position, decoded))
        if len(batch) == batch_size:
            flush()
    flush()
    bar.close()
    return EmbeddedFiles(vectors, hints, failures)

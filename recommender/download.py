"""Weights files fetched once over HTTP(S), verified against a pinned checksum, and kept in a cache folder.

A file in the cache is trusted only while its checksum matches: anything else is downloaded again. A download
streams into a temporary file in the cache folder itself, so the final `os.replace` is atomic and a failed or
interrupted download never leaves a partial file behind under the final name (or at all).
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from recommender.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0
DEFAULT_KEYWORD = "default"
CHUNK_SIZE = 1 << 20
ALLOWED_SCHEMES = ("http", "https")

_HEX_LENGTHS = {"sha256": 64, "md5": 32}
# `mkstemp` creates files readable by their owner only; a cached download should read like any other file.
_CACHED_FILE_MODE = 0o644


class WeightsError(UserError, RuntimeError):
    """Weights could not be found, downloaded or verified; the message says how to supply them by hand."""


@dataclass(frozen=True, kw_only=True)
class RemoteWeights:
    """Where a weights file lives and what it must hash to.

    ``sha256`` is the checksum to pin. ``md5`` exists because some releases only ever published an md5
    (weaker, but it still catches truncation and a swapped file); when both are given, both must match.
    """

    url: str
    filename: str  # the name inside the cache folder
    sha256: str | None = None  # lowercase hex
    md5: str | None = None  # lowercase hex; only for releases that publish nothing stronger
    size: int | None = None  # expected bytes, if known: sizes the progress bar before headers arrive

    def __post_init__(self) -> None:
        if self.sha256 is None and self.md5 is None:
            raise ValueError(f"pin at least one checksum (sha256 or md5). Received: url={self.url!r}")
        for algorithm, value in self.digests.items():
            if not re.fullmatch(f"[0-9a-f]{{{_HEX_LENGTHS[algorithm]}}}", value):
                raise ValueError(
                    f"{algorithm} must be {_HEX_LENGTHS[algorithm]} lowercase hex digits. "
                    f"Received: {algorithm}={value!r}"
                )
        # The name is joined to the cache folder, so it must not be able to point anywhere else.
        if not self.filename or Path(self.filename).name != self.filename or self.filename in (".", ".."):
            raise ValueError(f"filename must be a plain file name. Received: filename={self.filename!r}")
        if self.size is not None and self.size < 0:
            raise ValueError(f"size must be a byte count. Received: size={self.size!r}")

    @property
    def digests(self) -> dict[str, str]:
        """The pinned checksums by hashlib algorithm name."""
        pinned = {"sha256": self.sha256, "md5": self.md5}
        return {algorithm: value for algorithm, value in pinned.items() if value is not None}


def default_cache_dir() -> Path:
    """``~/.cache/wanderlens/weights``: the fallback when a caller has no cache folder configured.

    Only the home directory is looked up (``Path.home()``, i.e. ``$HOME``); processes pass ``cache_dir``
    from their settings instead of relying on this.
    """
    return Path.home() / ".cache" / "wanderlens" / "weights"


def sha256_file(path: Path, *, chunk: int = CHUNK_SIZE) -> str:
    """Hex sha256 of a file, read in chunks so that a 500 MB file costs no memory."""
    return _hash_file(path, ("sha256",), chunk=chunk)["sha256"]


def _hash_file(path: Path, algorithms: Iterable[str], *, chunk: int = CHUNK_SIZE) -> dict[str, str]:
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in algorithms}
    with open(path, "rb") as f:
        while block := f.read(chunk):
            for hasher in hashers.values():
                hasher.update(block)
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _mismatches(expected: dict[str, str], received: dict[str, str]) -> list[str]:
    return [
        f"expected {algorithm} {value}, received {algorithm} {received[algorithm]}"
        for algorithm, value in expected.items()
        if received[algorithm] != value
    ]


def _manual_hint(remote: RemoteWeights, target: Path) -> str:
    return (
        f"Download {remote.url} on a machine with internet access, check its checksum "
        f"({', '.join(f'{a} {v}' for a, v in remote.digests.items())}), then either pass --weights PATH "
        f"or copy it to {target}"
    )


def _check_url(url: str) -> None:
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise ValueError(f"weights are only downloaded over http(s). Received: url={url!r}")


def fetch(
    remote: RemoteWeights,
    *,
    cache_dir: Path,
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
    opener: Callable[..., Any] = urllib.request.urlopen,
) -> Path:
    """Return the path of ``remote`` in ``cache_dir``, downloading and verifying it unless already there.

    ``timeout`` applies to connecting and to each read, not to the whole download. ``opener`` is called like
    ``urllib.request.urlopen(request, timeout=...)``. Raises WeightsError when the file cannot be fetched
    or does not match its pinned checksum; nothing partial is left in ``cache_dir`` either way.
    """
    _check_url(remote.url)
    cache_dir = Path(cache_dir)
    target = cache_dir / remote.filename
    if target.is_file():
        received = _hash_file(target, remote.digests)
        if not _mismatches(remote.digests, received):
            return target
        logger.warning("cached %s does not match its checksum; downloading it again", target)

    cache_dir.mkdir(parents=True, exist_ok=True)
    part = tempfile.NamedTemporaryFile(dir=cache_dir, delete=False, prefix=".part-")  # noqa: SIM115
    part_path = Path(part.name)
    # BaseException: Ctrl-C in the middle of 500 MB must not leave the .part file behind either.
    try:
        with part:
            received = _download(
                remote,
                part,
                timeout=timeout,
                progress=progress,
                opener=opener,
                hint=_manual_hint(remote, target),
            )
            mismatches = _mismatches(remote.digests, received)
            if mismatches:
                raise WeightsError(
                    f"checksum mismatch for {remote.filename} downloaded from {remote.url}: "
                    f"{'; '.join(mismatches)}. The file was discarded. {_manual_hint(remote, target)}."
                )
            part.flush()
            os.fsync(part.fileno())
        os.chmod(part_path, _CACHED_FILE_MODE)
        os.replace(part_path, target)
    except BaseException:
        part_path.unlink(missing_ok=True)
        raise
    _fsync_dir(cache_dir)
    logger.info("downloaded %s to %s", remote.url, target)
    return target


def _download(
    remote: RemoteWeights,
    sink: IO[bytes],
    *,
    timeout: float,
    progress: bool,
    opener: Callable[..., Any],
    hint: str,
) -> dict[str, str]:
    """Stream ``remote.url`` into ``sink`` and return the checksums of what was received."""
    hashers = {algorithm: hashlib.new(algorithm) for algorithm in remote.digests}
    request = urllib.request.Request(remote.url, headers={"User-Agent": "wanderlens"})
    received = 0
    expected: int | None = None
    try:
        with opener(request, timeout=timeout) as response:
            # urlopen follows redirects (GitHub releases go to a CDN); the scheme rule holds for them too.
            final_url = response.geturl() if hasattr(response, "geturl") else remote.url
            if urllib.parse.urlsplit(final_url).scheme.lower() not in ALLOWED_SCHEMES:
                raise WeightsError(f"{remote.url} redirected to a non-http(s) address. Received: url={final_url!r}")
            length = response.headers.get("Content-Length") if response.headers else None
            expected = int(length) if length and length.isdigit() else None
            with tqdm(
                total=expected or remote.size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=remote.filename,
                disable=not progress,
                leave=False,
            ) as bar:
                while block := response.read(CHUNK_SIZE):
                    sink.write(block)
                    for hasher in hashers.values():
                        hasher.update(block)
                    received += len(block)
                    bar.update(len(block))
    except urllib.error.HTTPError as error:
        raise WeightsError(f"{remote.url} answered HTTP {error.code} {error.reason}. {hint}.") from error
    except urllib.error.URLError as error:
        raise WeightsError(f"{remote.url} could not be reached ({error.reason}). {hint}.") from error
    except TimeoutError as error:
        raise WeightsError(
            f"{remote.url} could not be reached: no data for {timeout:g} s after {received} bytes. {hint}."
        ) from error
    except (OSError, http.client.HTTPException) as error:
        raise WeightsError(
            f"the download of {remote.url} was interrupted after {received} bytes ({error!r}). {hint}."
        ) from error
    # http.client returns b"" at an early EOF instead of raising, so a short body is caught here.
    if expected is not None and received != expected:
        raise WeightsError(f"the download of {remote.url} stopped after {received} of {expected} bytes. {hint}.")
    return {algorithm: hasher.hexdigest() for algorithm, hasher in hashers.items()}


def _fsync_dir(path: Path) -> None:
    """Make the rename itself durable; a no-op where directories cannot be opened (Windows)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_weights(
    weights: str | os.PathLike[str] | None,
    *,
    remote: RemoteWeights | None,
    cache_dir: Path,
    aliases: Collection[str] = (),
    timeout: float = DEFAULT_TIMEOUT,
    progress: bool = True,
) -> Path | None:
    """Turn a ``weights`` argument into a local file.

    - ``None``: no file (random initialisation, for shape tests);
    - ``"default"`` or one of ``aliases`` (a backbone's name for its release, e.g. ``"places365"``):
      ``remote``, fetched into ``cache_dir`` if not already there;
    - any other string or path: that file, which must exist. It is used as given, without a checksum:
      this is how a file downloaded by hand on another machine is supplied.

    The keywords are only recognised as ``str``; a ``Path("default")`` is always a path.
    """
    if weights is None:
        return None
    if isinstance(weights, str) and (weights == DEFAULT_KEYWORD or weights in aliases):
        if remote is None:
            raise ValueError(
                f"this backbone has no downloadable release; pass a weights file or None. Received: weights={weights!r}"
            )
        return fetch(remote, cache_dir=cache_dir, timeout=timeout, progress=progress)
    path = Path(weights)
    if not path.exists():
        keywords = [repr(k) for k in (DEFAULT_KEYWORD, *aliases)] if remote is not None else []
        raise WeightsError(
            f"no such weights file: {path}. Pass an existing file, {', '.join([*keywords, 'or None'])}. "
            f"Received: weights={os.fspath(weights)!r}"
        )
    return path

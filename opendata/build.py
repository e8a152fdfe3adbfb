"""`wanderlens catalog build`: Wikidata places -> Commons metadata -> free thumbnails -> photos/ and catalog.csv.

The run is resumable: photos already on disk with the recorded checksum are neither fetched nor asked about again,
and the state is saved as it goes, so an interrupted run (Ctrl-C, a rate limit) loses at most one batch of work.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from opendata.catalogcsv import Entry, write_catalog
from opendata.commons import COMMONS_API, DEFAULT_WIDTH, FileInfo, check_width, fetch_file_infos
from opendata.errors import HttpError, RateLimited, ResponseError
from opendata.files import sha256_bytes, write_atomically
from opendata.http import PoliteClient
from opendata.licences import judge
from opendata.report import (
    DOWNLOAD_FAILED,
    NO_IMAGE,
    NOT_AN_IMAGE,
    NOT_FREE,
    REPORT_FILE,
    TOO_SMALL,
    BuildReport,
    Skipped,
)
from opendata.state import BuildState, PhotoRecord
from opendata.wikidata import WIKIDATA_SPARQL, Place, PlaceQuery, fetch_places

PHOTOS = "photos"
MIN_SIDE = 256  # px: below this the fingerprint sees mostly upscaling blur, and the bot's album looks poor
SAVE_EVERY = 50  # photos between state saves: what an interruption can cost at most
KEEP_FORMATS = frozenset({"JPEG"})  # written as downloaded; PNG, WebP, GIF, TIFF thumbnails become JPEG
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BuildOptions:
    out: Path
    query: PlaceQuery = field(default_factory=PlaceQuery)
    width: int = DEFAULT_WIDTH
    sparql_endpoint: str = WIKIDATA_SPARQL
    commons_endpoint: str = COMMONS_API
    min_side: int = MIN_SIDE
    progress: bool = True

    def __post_init__(self) -> None:
        check_width(self.width)
        if self.min_side < 1:
            raise ValueError(f"min_side must be positive. Received: {self.min_side}")


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def build_catalog(options: BuildOptions, client: PoliteClient) -> BuildReport:
    """Build or update the catalog folder ``options.out``; the report is also written to ``report.txt`` there."""
    folder = options.out
    folder.mkdir(parents=True, exist_ok=True)
    languages = options.query.languages
    places = fetch_places(client, options.sparql_endpoint, options.query)
    report = BuildReport(folder=folder, found=len(places))
    state = BuildState.load(folder)

    kept: dict[str, Entry] = {}
    missing: list[Place] = []
    for place in places:
        record = state.reusable(place.qid, place.image_file, options.width)
        if record is None:
            missing.append(place)
        else:
            kept[place.qid] = Entry(place, record.info, record.image)
    report.reused = len(kept)
    logger.info("%d places found, %d photos already here, %d to fetch", len(places), len(kept), len(missing))

    infos = fetch_file_infos(client, options.commons_endpoint, [p.image_file for p in missing], options.width)
    try:
        with tqdm(total=len(missing), unit="photo", disable=not options.progress, desc="photos") as bar:
            for done, place in enumerate(missing, start=1):
                try:
                    entry = _fetch(place, infos[place.image_file], options, client, state)
                except _Skip as skip:
                    report.skipped.append(Skipped(place.qid, place.name(languages), skip.reason, skip.detail))
                    logger.debug("skipped %s: %s (%s)", place.qid, skip.reason, skip.detail)
                else:
                    kept[place.qid] = entry
                    report.downloaded += 1
                bar.update()
                if done % SAVE_EVERY == 0:
                    state.save()
    finally:
        state.save()  # also when a rate limit or Ctrl-C stops the run: what was fetched stays fetched

    entries = [kept[p.qid] for p in places if p.qid in kept]  # the query's order: best known first
    write_catalog(folder, entries, languages, tags=(options.query.preset,))
    report.written = len(entries)
    write_atomically(folder / REPORT_FILE, report.text().encode("utf-8"))
    return report


def _fetch(place: Place, info: FileInfo, options: BuildOptions, client: PoliteClient, state: BuildState) -> Entry:
    """Check what Commons says, download the thumbnail, verify it, write it; any refusal raises _Skip."""
    if info.missing:
        raise _Skip(NO_IMAGE, f"File:{place.image_file} is not on Commons")
    verdict = judge(info.licence, non_free=info.non_free)
    if not verdict.accepted:  # decided before any download: a non-free file is never fetched
        raise _Skip(NOT_FREE, verdict.reason)
    if not info.mime.startswith("image/") or not info.thumb_url:
        raise _Skip(NOT_AN_IMAGE, f"Commons says {info.mime or 'no type'}")
    if info.thumb_width and info.thumb_height and min(info.thumb_width, info.thumb_height) < options.min_side:
        raise _Skip(TOO_SMALL, f"{info.thumb_width}x{info.thumb_height} at width {options.width}")
    try:
        data = client.get_bytes(info.thumb_url)
    except RateLimited:
        raise  # pushing on would earn a ban: stop the whole run (resumable)
    except (HttpError, ResponseError) as error:
        raise _Skip(DOWNLOAD_FAILED, str(error)) from None
    photo = _verified_jpeg(data, options.min_side)
    image = f"{PHOTOS}/{place.qid}.jpg"
    write_atomically(options.out / image, photo)
    state.remember(PhotoRecord(place.qid, image, options.width, sha256_bytes(photo), info))
    return Entry(place, info, image)


def _verified_jpeg(data: bytes, min_side: int) -> bytes:
    """The photo as JPEG bytes, once Pillow has decoded all of it and found it big enough."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # decodes every pixel: a truncated download fails here, not in the indexer
            size, kind = image.size, image.format
            if min(size) < min_side:
                raise _Skip(TOO_SMALL, f"{size[0]}x{size[1]} px, the shorter side under {min_side}")
            if kind in KEEP_FORMATS and image.mode in ("RGB", "L"):
                return data
            converted = io.BytesIO()
            image.convert("RGB").save(converted, "JPEG", quality=90)
            return converted.getvalue()
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise _Skip(NOT_AN_IMAGE, f"{type(error).__name__}: {error}"[:200]) from None

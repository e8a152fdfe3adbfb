"""The Wikimedia Commons side: file metadata (licence, author, sizes, thumbnail URL) from the imageinfo API.

One request covers up to 50 files (``action=query&prop=imageinfo&titles=File:A|File:B…``) with ``formatversion=2``:
``query.pages`` is a list, a missing file is ``{"title": …, "missing": true}``, and titles Commons rewrote
(underscores, a lower-case first letter) are listed in ``query.normalized`` as ``{"from": …, "to": …}``. Each
``extmetadata`` field is an object whose ``value`` is the text; ``Artist`` is HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import TYPE_CHECKING

from opendata.errors import ResponseError
from opendata.licences import parse_flag

if TYPE_CHECKING:  # the client pulls in httpx; the CLI's parser needs only the constants here
    from opendata.http import PoliteClient

COMMONS_API = "https://commons.wikimedia.org/w/api.php"
BATCH = 50  # the API's limit on titles per request for clients without the apihighlimits right
STANDARD_WIDTHS = (330, 500, 960, 1280)  # the sizes Commons pre-renders; others are being phased out (T414805)
DEFAULT_WIDTH = 960
MAXLAG = "5"  # seconds of replica lag past which the API asks batch clients like this one to wait
METADATA_FIELDS = ("Artist", "LicenseShortName", "LicenseUrl", "NonFree", "UsageTerms")
MAX_CREDIT = 150  # characters of author text kept; some Artist fields carry whole biographies


@dataclass(frozen=True)
class FileInfo:
    """What Commons says about one file."""

    file_name: str  # as asked for, without "File:"
    missing: bool = False
    mime: str = ""
    width: int = 0  # the original's size
    height: int = 0
    thumb_url: str = ""  # the copy at the requested width (the original itself when that is narrower)
    thumb_width: int = 0
    thumb_height: int = 0
    page_url: str = ""  # the file's description page: the attribution link
    licence: str = ""
    licence_url: str = ""
    non_free: bool = False
    artist: str = ""  # plain text
    usage_terms: str = ""


def check_width(width: int) -> int:
    if width not in STANDARD_WIDTHS:
        raise ValueError(
            f"width must be one of Commons' standard thumbnail widths {', '.join(map(str, STANDARD_WIDTHS))}. "
            f"Received: {width}"
        )
    return width


def batches(names: Sequence[str], size: int = BATCH) -> Iterator[Sequence[str]]:
    for start in range(0, len(names), size):
        yield names[start : start + size]


def request_params(file_names: Sequence[str], width: int) -> dict[str, str]:
    if not 1 <= len(file_names) <= BATCH:
        raise ValueError(f"imageinfo takes 1 to {BATCH} titles per request. Received: {len(file_names)}")
    return {
        "action": "query",
        "prop": "imageinfo",
        "titles": "|".join(f"File:{name}" for name in file_names),
        "iiprop": "url|extmetadata|mime|size",
        "iiurlwidth": str(check_width(width)),
        "iiextmetadatafilter": "|".join(METADATA_FIELDS),
        "format": "json",
        "formatversion": "2",
        "maxlag": MAXLAG,
    }


def fetch_file_infos(client: PoliteClient, endpoint: str, file_names: Sequence[str], width: int) -> dict[str, FileInfo]:
    """File name -> what Commons knows, for every name asked (a file Commons lacks comes back ``missing``)."""
    found: dict[str, FileInfo] = {}
    unique = list(dict.fromkeys(file_names))
    for batch in batches(unique):
        found.update(parse_imageinfo(client.get_json(endpoint, request_params(batch, width)), batch))
    return found


def parse_imageinfo(data: object, file_names: Sequence[str]) -> dict[str, FileInfo]:
    if not isinstance(data, dict):
        raise ResponseError(f"the Commons API answered with a {type(data).__name__}, not an object")
    if isinstance(data.get("error"), dict):
        error = data["error"]
        raise ResponseError(f"the Commons API refused the request: {error.get('code')}: {error.get('info')}")
    query = data.get("query")
    if not isinstance(query, dict) or not isinstance(query.get("pages"), list):
        raise ResponseError(f"the Commons API answer has no query.pages list. Received: {str(data)[:200]}")
    renamed = {entry.get("from"): entry.get("to") for entry in query.get("normalized", []) if isinstance(entry, dict)}
    pages = {page.get("title"): page for page in query["pages"] if isinstance(page, dict)}
    infos = {}
    for name in file_names:
        asked = f"File:{name}"
        page = pages.get(renamed.get(asked, asked))
        infos[name] = _file_info(name, page) if page is not None else FileInfo(name, missing=True)
    return infos


def _file_info(name: str, page: dict[str, object]) -> FileInfo:
    details = page.get("imageinfo")
    if page.get("missing") or page.get("invalid") or not isinstance(details, list) or not details:
        return FileInfo(name, missing=True)
    info = details[0]
    meta = info.get("extmetadata") or {}

    def text(field: str) -> str:
        entry = meta.get(field)
        value = entry.get("value", "") if isinstance(entry, dict) else ""
        return str(value).strip()

    return FileInfo(
        file_name=name,
        mime=str(info.get("mime", "")),
        width=int(info.get("width") or 0),
        height=int(info.get("height") or 0),
        thumb_url=str(info.get("thumburl") or info.get("url") or ""),
        thumb_width=int(info.get("thumbwidth") or info.get("width") or 0),
        thumb_height=int(info.get("thumbheight") or info.get("height") or 0),
        page_url=_absolute(str(info.get("descriptionurl", ""))),
        licence=strip_html(text("LicenseShortName")),
        licence_url=_absolute(text("LicenseUrl")),
        non_free=parse_flag(text("NonFree")),
        artist=shorten(strip_html(text("Artist")), MAX_CREDIT),
        usage_terms=strip_html(text("UsageTerms")),
    )


def _absolute(url: str) -> str:
    # Commons writes protocol-relative links ("//creativecommons.org/…") in metadata.
    return "https:" + url if url.startswith("//") else url


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag in ("br", "p", "li", "div", "tr"):
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style") and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def strip_html(markup: str) -> str:
    """``<a href="…">Jane&nbsp;Doe</a>`` -> ``Jane Doe``: tags dropped, entities decoded, spaces collapsed."""
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return re.sub(r"\s+", " ", "".join(parser.parts).replace("\xa0", " ")).strip()


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"

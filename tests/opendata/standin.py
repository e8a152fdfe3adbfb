"""A local stand-in for the Wikidata Query Service, the Commons API and Commons' thumbnail server.

It answers in the real formats (SPARQL 1.1 JSON results; the imageinfo API with ``formatversion=2``; JPEG bytes for
thumbnails), draws a distinct scene per place so that fingerprints differ, records every request it sees, and can
be told to misbehave the ways the real services do: 429 with Retry-After, 503, a response too slow to wait for,
malformed JSON, a maxlag answer; and per file: a non-free or unaccepted licence, bytes that are not an image, an
image too small, a file Commons does not have.
"""

from __future__ import annotations

import http.server
import io
import json
import re
import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlsplit

import numpy as np
from PIL import Image, ImageDraw

ENTITY = "http://www.wikidata.org/entity/"
FILE_PATH = "http://commons.wikimedia.org/wiki/Special:FilePath/"
WKT = "http://www.opengis.net/ont/geosparql#wktLiteral"
XSD_INTEGER = "http://www.w3.org/2001/XMLSchema#integer"
ARTIST_HTML = '<bdi><a href="//commons.wikimedia.org/wiki/User:{user}" title="User:{user}">{name}</a>\n</bdi>'


@dataclass
class FakeFile:
    """A Commons file and how it should behave."""

    name: str  # without "File:", with spaces
    licence: str = "CC BY-SA 4.0"
    licence_url: str = "https://creativecommons.org/licenses/by-sa/4.0"
    non_free: bool = False
    author: str = "Jane Doe"
    mime: str = "image/jpeg"
    width: int = 4000  # the original's size; thumbnails keep its aspect
    height: int = 3000
    exists: bool = True
    body: str = "scene"  # "scene" (a drawn JPEG), "html" (an error page where the image should be), "png"
    seed: int = 0
    served_size: tuple[int, int] | None = None  # what the thumbnail really measures, when the metadata is wrong


@dataclass
class FakePlace:
    qid: str
    labels: dict[str, str]
    lat: float
    lon: float
    file: FakeFile
    descriptions: dict[str, str] = field(default_factory=dict)
    country_qid: str = "Q38"
    country_labels: dict[str, str] = field(default_factory=lambda: {"en": "Italy", "de": "Italien"})
    iso: str = "IT"
    city: str = ""
    sitelinks: int = 10
    second_image: str = ""  # a second P18 value: the real service then returns the item twice


@dataclass(frozen=True)
class Fault:
    """One misbehaviour for the next request on a route."""

    status: int = 0  # 429, 503...; 0 answers normally (after the delay, if any)
    retry_after: str | None = None
    delay: float = 0.0  # seconds before answering: longer than the client's timeout makes it time out
    body: bytes | None = None  # replaces the answer, e.g. malformed JSON


@dataclass(frozen=True)
class SeenRequest:
    route: str  # "sparql", "commons" or "thumb"
    path: str
    params: dict[str, str]
    user_agent: str
    file: str = ""  # for thumbnails: which file


def scene(seed: int, width: int, height: int) -> Image.Image:
    """A drawn landscape, different for every seed: sky, horizon, ground, a few shapes in their own colours."""
    rng = np.random.default_rng(seed)
    sky = tuple(int(v) for v in rng.integers(40, 256, 3))
    ground = tuple(int(v) for v in rng.integers(0, 200, 3))
    image = Image.new("RGB", (width, height), sky)
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.35, 0.75))
    draw.rectangle([0, horizon, width, height], fill=ground)
    for _ in range(int(rng.integers(2, 7))):
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        x, y = int(rng.uniform(0, width * 0.8)), int(rng.uniform(0, height * 0.8))
        size = int(rng.uniform(0.08, 0.3) * width)
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.ellipse([x, y, x + size, y + size], fill=colour)
        elif shape == 1:
            draw.rectangle([x, y, x + size, y + size // 2], fill=colour)
        else:
            draw.polygon([(x, horizon), (x + size // 2, max(0, horizon - size)), (x + size, horizon)], fill=colour)
    for n in range(int(rng.integers(0, 12))):  # stripes: texture the network can tell apart
        offset = int(rng.integers(0, width))
        draw.line([(offset + n * 7, horizon), (offset - height // 3, height)], fill=sky, width=3)
    return image


def scene_jpeg(seed: int, width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    scene(seed, width, height).save(buffer, "JPEG", quality=88)
    return buffer.getvalue()


def standard_places(count: int = 12) -> list[FakePlace]:
    """``count`` places with free photos, names in several languages, and coordinates (count <= 16)."""
    names = [
        ("Colosseum", "Kolosseum", "Colisée", 41.8902, 12.4922),
        ("Lake Bled", "Bleder See", "Lac de Bled", 46.3625, 14.0936),
        ("Mont Saint-Michel", "Mont-Saint-Michel", "Mont-Saint-Michel", 48.6361, -1.5115),
        ("Alhambra", "Alhambra", "Alhambra", 37.1761, -3.5881),
        ("Hallstatt", "Hallstatt", "Hallstatt", 47.5622, 13.6493),
        ("Cinque Terre", "Cinque Terre", "Cinque Terre", 44.1461, 9.6439),
        ("Plitvice Lakes", "Plitvicer Seen", "Lacs de Plitvice", 44.8654, 15.5820),
        ("Acropolis of Athens", "Akropolis", "Acropole d'Athènes", 37.9715, 23.7257),
        ("Sagrada Família", "Sagrada Família", "Sagrada Família", 41.4036, 2.1744),
        ("Matterhorn", "Matterhorn", "Cervin", 45.9763, 7.6586),
        ("Dubrovnik", "Dubrovnik", "Dubrovnik", 42.6507, 18.0944),
        ("Neuschwanstein Castle", "Schloss Neuschwanstein", "Château de Neuschwanstein", 47.5576, 10.7498),
        ("Santorini", "Santorin", "Santorin", 36.3932, 25.4615),
        ("Geirangerfjord", "Geirangerfjord", "Geirangerfjord", 62.1049, 7.0940),
        ("Sintra", "Sintra", "Sintra", 38.7876, -9.3904),
        ("Meteora", "Meteora", "Météores", 39.7217, 21.6306),
    ]
    places = []
    for n, (en, de, fr, lat, lon) in enumerate(names[:count]):
        qid = f"Q{1000 + n}"
        places.append(
            FakePlace(
                qid=qid,
                labels={"en": en, "de": de, "fr": fr},
                descriptions={"en": f"destination number {n}", "de": f"Reiseziel Nummer {n}"},
                lat=lat,
                lon=lon,
                file=FakeFile(name=f"{en} view {n}.jpg", author=f"Photographer {n}", seed=100 + n),
                city=f"Town {n}",
                sitelinks=100 - n,
            )
        )
    return places


class StandIn:
    """The three services on one local port. ``fail(route, *faults)`` queues misbehaviour; ``seen`` records."""

    def __init__(self, places: list[FakePlace]) -> None:
        self.places = places
        self.faults: dict[str, deque[Fault]] = {}
        self.seen: list[SeenRequest] = []
        self.base = ""
        self._lock = threading.Lock()
        self.release = threading.Event()  # set at shutdown: cuts deliberately slow answers short

    @property
    def sparql_url(self) -> str:
        return f"{self.base}/sparql"

    @property
    def commons_url(self) -> str:
        return f"{self.base}/w/api.php"

    def fail(self, route: str, *faults: Fault) -> None:
        """Queue faults for ``"sparql"``, ``"commons"``, ``"thumb"`` (any thumbnail) or ``"thumb:NAME"`` (one)."""
        with self._lock:
            self.faults.setdefault(route, deque()).extend(faults)

    def requests(self, route: str) -> list[SeenRequest]:
        return [r for r in self.seen if r.route == route]

    def thumb_files(self) -> list[str]:
        return [r.file for r in self.requests("thumb")]

    def place(self, qid: str) -> FakePlace:
        return next(p for p in self.places if p.qid == qid)

    def file(self, name: str) -> FakeFile | None:
        return next((p.file for p in self.places if p.file.name == name), None)

    # ------------------------------------------------------------------------------------------ answers

    def next_fault(self, *routes: str) -> Fault | None:
        with self._lock:
            for route in routes:
                queue = self.faults.get(route)
                if queue:
                    return queue.popleft()
        return None

    def sparql(self, params: dict[str, str]) -> dict[str, object]:
        query = params.get("query", "")
        limits = re.findall(r"LIMIT (\d+)", query)
        limit = int(limits[0]) if limits else len(self.places)
        languages = re.findall(r"\?label_([a-z_]+)", query.split("WHERE", 1)[0])
        ordered = sorted(self.places, key=lambda p: (-p.sitelinks, int(p.qid[1:])))[:limit]
        variables = ["item", "coord", "image", "country", "iso", "links", "city"]
        variables += [f"{prefix}_{lang}" for lang in languages for prefix in ("label", "description", "country")]
        bindings = []
        for place in ordered:
            for image in filter(None, (place.file.name, place.second_image)):
                bindings.append(self._binding(place, image, languages))
        return {"head": {"vars": variables}, "results": {"bindings": bindings}}

    @staticmethod
    def _binding(place: FakePlace, image: str, languages: list[str]) -> dict[str, dict[str, str]]:
        row = {
            "item": {"type": "uri", "value": ENTITY + place.qid},
            "coord": {"datatype": WKT, "type": "literal", "value": f"Point({place.lon} {place.lat})"},
            "image": {"type": "uri", "value": FILE_PATH + quote(image)},
            "country": {"type": "uri", "value": ENTITY + place.country_qid},
            "iso": {"type": "literal", "value": place.iso},
            "links": {"datatype": XSD_INTEGER, "type": "literal", "value": str(place.sitelinks)},
        }
        if place.city:
            row["city"] = {"xml:lang": (languages or ["en"])[0], "type": "literal", "value": place.city}
        for lang in languages:
            for prefix, texts in (
                ("label", place.labels),
                ("description", place.descriptions),
                ("country", place.country_labels),
            ):
                if lang in texts:
                    row[f"{prefix}_{lang}"] = {"xml:lang": lang, "type": "literal", "value": texts[lang]}
        return row

    def imageinfo(self, params: dict[str, str]) -> dict[str, object]:
        if params.get("action") != "query" or params.get("prop") != "imageinfo" or params.get("formatversion") != "2":
            return {"error": {"code": "badparams", "info": f"the stand-in only knows imageinfo: {params}"}}
        width = int(params.get("iiurlwidth", "0"))
        normalized, pages = [], []
        for title in params.get("titles", "").split("|"):
            name = title.removeprefix("File:").replace("_", " ")
            canonical = f"File:{name[:1].upper()}{name[1:]}"
            if canonical != title:
                normalized.append({"fromencoded": False, "from": title, "to": canonical})
            fake = self.file(canonical.removeprefix("File:"))
            if fake is None or not fake.exists:
                pages.append({"ns": 6, "title": canonical, "missing": True, "known": False})
                continue
            pages.append({"pageid": 1000 + len(pages), "ns": 6, "title": canonical, **self._info(fake, width)})
        query: dict[str, object] = {"pages": pages}
        if normalized:
            query["normalized"] = normalized
        return {"batchcomplete": True, "query": query}

    def _info(self, fake: FakeFile, width: int) -> dict[str, object]:
        underscored = fake.name.replace(" ", "_")
        thumb_width = min(width, fake.width) if width else fake.width
        thumb_height = round(fake.height * thumb_width / fake.width)
        original = f"{self.base}/commons/a/ab/{quote(underscored)}"
        thumb = f"{self.base}/thumb/{quote(underscored)}/{thumb_width}px-{quote(underscored)}"
        metadata = {
            "Artist": {
                "value": ARTIST_HTML.format(user=quote(fake.author.replace(" ", "_")), name=fake.author),
                "source": "commons-desc-page",
            },
            "LicenseShortName": {"value": fake.licence, "source": "commons-desc-page", "hidden": ""},
            "LicenseUrl": {"value": fake.licence_url.removeprefix("https:"), "source": "commons-desc-page"},
            "UsageTerms": {"value": f"Creative Commons {fake.licence}", "source": "commons-desc-page"},
        }
        if fake.non_free:
            metadata["NonFree"] = {"value": "true", "source": "commons-desc-page", "hidden": ""}
        return {
            "imagerepository": "local",
            "imageinfo": [
                {
                    "size": fake.width * fake.height // 4,
                    "width": fake.width,
                    "height": fake.height,
                    "thumburl": original if thumb_width == fake.width else thumb,
                    "thumbwidth": thumb_width,
                    "thumbheight": thumb_height,
                    "url": original,
                    "descriptionurl": f"https://commons.wikimedia.org/wiki/File:{quote(underscored)}",
                    "descriptionshorturl": f"https://commons.wikimedia.org/w/index.php?curid={fake.seed}",
                    "extmetadata": metadata,
                    "mime": fake.mime,
                }
            ],
        }

    def thumbnail(self, fake: FakeFile, width: int) -> tuple[str, bytes]:
        height = round(fake.height * width / fake.width)
        if fake.served_size is not None:
            width, height = fake.served_size
        if fake.body == "html":
            return "text/html", b"<html><body><h1>Error</h1>Our servers are currently under maintenance.</body></html>"
        if fake.body == "png":
            buffer = io.BytesIO()
            scene(fake.seed, width, height).save(buffer, "PNG")
            return "image/png", buffer.getvalue()
        return "image/jpeg", scene_jpeg(fake.seed, width, height)


def _handler(standin: StandIn) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep pytest's output clean
            pass

        def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
            try:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (the timeout tests): nothing to answer

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            params = {key: values[-1] for key, values in parse_qs(url.query).items()}
            agent = self.headers.get("User-Agent", "")
            if url.path == "/sparql":
                route, file = "sparql", ""
            elif url.path == "/w/api.php":
                route, file = "commons", ""
            elif url.path.startswith(("/thumb/", "/commons/")):
                route, file = "thumb", unquote(url.path.split("/")[-1].split("px-", 1)[-1]).replace("_", " ")
            else:
                self._send(404, b"not found", "text/plain")
                return
            standin.seen.append(SeenRequest(route, url.path, params, agent, file))
            fault = standin.next_fault(f"thumb:{file}", route) if file else standin.next_fault(route)
            if fault is not None:
                if fault.delay:
                    standin.release.wait(fault.delay)
                if fault.status:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else {}
                    self._send(fault.status, b"<html>Too many requests or unavailable</html>", "text/html", headers)
                    return
                if fault.body is not None:
                    self._send(200, fault.body, "application/json")
                    return
            if route == "sparql":
                body = json.dumps(standin.sparql(params)).encode()
                self._send(200, body, "application/sparql-results+json;charset=utf-8")
            elif route == "commons":
                self._send(200, json.dumps(standin.imageinfo(params)).encode(), "application/json; charset=utf-8")
            else:
                fake = standin.file(file)
                if fake is None or not fake.exists:
                    self._send(404, b"<html>404 Not Found</html>", "text/html")
                    return
                match = re.search(r"/(\d+)px-", url.path)
                width = int(match.group(1)) if match else fake.width
                content_type, body = standin.thumbnail(fake, width)
                self._send(200, body, content_type)

    return Handler


@contextmanager
def serve(places: list[FakePlace]) -> Iterator[StandIn]:
    """Run the stand-in on 127.0.0.1 on a free port for the duration of the block."""
    standin = StandIn(places)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin))
    server.daemon_threads = True
    standin.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="opendata-standin", daemon=True)
    thread.start()
    try:
        yield standin
    finally:
        standin.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

"""`wanderlens catalog build`: its flags, and turning them into a build (configuration is read here, passed down)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from opendata.commons import COMMONS_API, DEFAULT_WIDTH, STANDARD_WIDTHS
from opendata.presets import CONTINENTS, DEFAULT_PRESET, PRESETS
from opendata.wikidata import DEFAULT_LANGUAGES, WIKIDATA_SPARQL, PlaceQuery

if TYPE_CHECKING:  # the build pulls in httpx, Pillow and tqdm: imported when a build runs, not for `--help`
    from opendata.build import BuildOptions
    from opendata.http import ClientOptions

CONTACT_ENV = "WANDERLENS_CONTACT"  # read by run() when --contact is not given
DEFAULT_PACE = 0.2  # s: a few requests a second at most, far below what gets a client throttled


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="catalog folder to create or update")
    parser.add_argument("--preset", choices=tuple(PRESETS), default=DEFAULT_PRESET, help="what kind of places")
    parser.add_argument("--country", default="", help="ISO 3166-1 code (IT) or Wikidata item (Q38)")
    parser.add_argument("--continent", choices=tuple(CONTINENTS), default="", help="only places on this continent")
    parser.add_argument("--limit", type=int, default=1000, help="most places to ask for, best known first")
    parser.add_argument(
        "--languages",
        default=",".join(DEFAULT_LANGUAGES),
        help="names and descriptions in these languages; the first is the one shown (default %(default)s)",
    )
    parser.add_argument(
        "--width", type=int, choices=STANDARD_WIDTHS, default=DEFAULT_WIDTH, help="photo width in px (Commons' sizes)"
    )
    parser.add_argument(
        "--contact",
        default=None,
        help=f"your email or URL, sent in the User-Agent as Wikimedia asks (default: ${CONTACT_ENV})",
    )
    parser.add_argument(
        "--pace",
        type=float,
        default=DEFAULT_PACE,
        help="seconds between the starts of two requests, on top of one at a time (default %(default)s)",
    )
    parser.add_argument("--endpoint-sparql", default=WIKIDATA_SPARQL, help="SPARQL endpoint")
    parser.add_argument("--endpoint-commons", default=COMMONS_API, help="Commons API endpoint")
    parser.add_argument("--no-progress", action="store_true")


def options_from_args(args: argparse.Namespace) -> tuple[BuildOptions, ClientOptions]:
    """(BuildOptions, ClientOptions) from parsed flags; raises ValueError on a bad combination."""
    from opendata.build import BuildOptions
    from opendata.http import ClientOptions

    languages = tuple(lang.strip().lower() for lang in args.languages.split(",") if lang.strip())
    query = PlaceQuery(
        preset=args.preset, country=args.country, continent=args.continent, limit=args.limit, languages=languages
    )
    contact = args.contact if args.contact is not None else os.environ.get(CONTACT_ENV, "")
    build = BuildOptions(
        out=args.out,
        query=query,
        width=args.width,
        sparql_endpoint=args.endpoint_sparql,
        commons_endpoint=args.endpoint_commons,
        progress=not args.no_progress,
    )
    if args.pace < 0:
        raise ValueError(f"--pace must not be negative. Received: {args.pace}")
    return build, ClientOptions(contact=contact, min_interval=args.pace)


def run(args: argparse.Namespace) -> int:
    """Build the catalog; 0 when it has destinations, 1 when none were usable, 2 when the run could not finish."""
    from opendata.build import build_catalog
    from opendata.errors import OpenDataError
    from opendata.http import PoliteClient

    try:
        build, client_options = options_from_args(args)
    except ValueError as error:
        print(f"wanderlens: error: {error}", file=sys.stderr)
        return 2
    try:
        with PoliteClient(client_options) as client:
            report = build_catalog(build, client)
    except OpenDataError as error:
        print(f"wanderlens: error: {' '.join(str(error).split())}", file=sys.stderr)
        return 2
    print(report.summary())
    print(f"report: {report.folder / 'report.txt'}")
    if report.written:
        print(f"next: wanderlens index {report.folder} --out data/index")
    return 0 if report.written else 1

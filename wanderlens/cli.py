"""`wanderlens`: the one command for operators — build the index, try queries, measure quality, run the parts.

Subcommands import what they need when they run, so `wanderlens bot` never loads TensorFlow.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from wanderlens.logs import setup_logging


def _quiet_tensorflow() -> None:
    # TensorFlow prints pages of start-up chatter to stderr unless told otherwise before it is imported.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --------------------------------------------------------------------------------------------- recommender


def cmd_index(args: argparse.Namespace) -> int:
    from recommender.catalog import load_catalog, parse_columns
    from recommender.extractor import Extractor
    from recommender.index import read_manifest
    from recommender.index_build import build_index
    from recommender.runtimes import resolve_runtime

    catalog = load_catalog(args.catalog, metadata=args.metadata, columns=parse_columns(args.columns or ""))
    for problem in catalog.problems:
        print(f"warning: {problem}", file=sys.stderr)
    # `auto` keeps an existing index's runtime: adding ten photos must not fingerprint the whole catalog again.
    previous = read_manifest(args.out)
    runtime = resolve_runtime(args.runtime, index_runtime=previous.fingerprint.runtime if previous else None)
    if previous is not None and runtime != (default := resolve_runtime(args.runtime)):
        print(
            f"note: keeping the index's runtime, {runtime}; `--runtime {default}` fingerprints the catalog again "
            "with this machine's default (README, CPU runtimes)"
        )
    extractor = Extractor(_load(args), runtime=runtime, cache_dir=args.weights_cache)
    report = build_index(
        catalog,
        extractor,
        args.out,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        refine=_refine(args),
        ann=args.ann,
    )
    for problem in report.problems[len(catalog.problems) :]:
        print(f"warning: {problem}", file=sys.stderr)
    m = report.manifest
    print(
        f"index {m.version}: {m.count} destinations ({m.extracted} fingerprinted, {m.reused} reused) "
        f"with {m.fingerprint.describe()} in {m.build_seconds:.1f}s -> {args.out}"
    )
    if report.problems:
        print(f"{len(report.problems)} problem(s) above: those photos are not in the index.", file=sys.stderr)
    for group in report.near_duplicates:
        print(f"note: near-identical photos (the same picture twice?), shown as one: {', '.join(group)}")
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    import numpy as np

    from recommender.backbones import load_backbone
    from recommender.extractor import Extractor
    from recommender.index import open_index, read_manifest
    from recommender.ranking import rank_for_photo
    from recommender.tools.sheet import SheetItem, contact_sheet

    manifest = read_manifest(args.index)
    if manifest is None:
        open_index(args.index)  # raises the helpful "no index" error
        return 2
    backbone = args.backbone or manifest.fingerprint.name  # queries are extracted as the catalog was
    extractor = Extractor(
        load_backbone(backbone, weights=args.weights, cache_dir=args.weights_cache, options=manifest.extraction),
        runtime=args.runtime or manifest.fingerprint.runtime,
        cache_dir=args.weights_cache,
    )
    index = open_index(args.index, expected=extractor.fingerprint)
    embedded = extractor.embed(extractor.preprocess(args.photo)[np.newaxis])
    # The worker's own ranking (without likes); the score shown is how alike the photos look.
    results = rank_for_photo(index, embedded.vectors[0], args.k)
    hints = embedded.hints[0] if embedded.hints else []
    if hints:
        print("looks like: " + ", ".join(f"{h.label} ({h.probability:.0%})" for h in hints if h.probability >= 0.05))
    for rank, result in enumerate(results, start=1):
        d = result.destination
        print(f"{rank:>2}. {d.name:<40} {d.place:<32} {result.similarity:.3f}")
    if args.sheet:
        catalog_root = Path(manifest.catalog)
        sheet = contact_sheet(
            SheetItem(Path(args.photo), "Your photo", ", ".join(h.label for h in hints[:2])),
            [
                SheetItem(
                    catalog_root / r.destination.image,
                    f"{n}. {r.destination.name}",
                    " · ".join(filter(None, (r.destination.place, f"{r.similarity:.0%} match"))),
                )
                for n, r in enumerate(results, start=1)
            ],
            columns=min(5, max(1, len(results))),
        )
        sheet.save(args.sheet)
        print(f"contact sheet: {args.sheet}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from recommender.extractor import Extractor
    from recommender.tools.evaluation import evaluate_manifest

    extractor = Extractor(_load(args), runtime=args.runtime, cache_dir=args.weights_cache)
    report = evaluate_manifest(
        args.manifest,
        extractor,
        refine=_refine(args),
        rotations=args.rotations,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    for failure in report.failures:
        print(f"warning: left out {failure}", file=sys.stderr)
    print(f"backbone: {extractor.fingerprint.describe()}, {extractor.options}, {_refine(args)}, {extractor.runtime}")
    print(f"queries: {report.queries}  database: {report.database}")
    print(report.summary_line())
    return 0


def _load(args: argparse.Namespace) -> object:
    from dataclasses import replace

    from recommender.backbones import default_extraction, load_backbone

    defaults = default_extraction(args.backbone)
    options = replace(
        defaults,
        pooling=args.pooling,
        scales=tuple(float(f) for f in args.scales.split(",")),
        trim_borders=not args.no_trim,
        bands=defaults.bands if args.bands is None else args.bands,
        colour_weight=defaults.colour_weight if args.colour is None else args.colour,
    )
    return load_backbone(args.backbone, weights=args.weights, cache_dir=args.weights_cache, options=options)


def _refine(args: argparse.Namespace) -> object:
    from recommender.refine import RefineOptions

    return RefineOptions(whitening=args.whitening, dba=args.dba, query_expansion=args.qe, dims=args.whitening_dims)


def cmd_finetune(args: argparse.Namespace) -> int:
    from recommender.tools.finetune import FinetuneOptions, finetune

    options = FinetuneOptions(holdout=args.holdout, epochs=args.epochs, seed=args.seed)
    report = finetune(
        args.manifest, args.output, backbone=args.backbone, options=options, progress=not args.no_progress
    )
    print(report.summary())
    return 0


# --------------------------------------------------------------------------------------------- services


def cmd_worker(args: argparse.Namespace) -> int:
    import asyncio

    from worker.settings import WorkerSettings

    settings = WorkerSettings()  # bad settings fail here, before TensorFlow is loaded
    from worker.main import check_health, serve

    if args.health:
        healthy = asyncio.run(check_health(settings))
        print("healthy" if healthy else "no recent heartbeat from a worker on this host")
        return 0 if healthy else 1
    asyncio.run(serve(settings))
    return 0


def cmd_bot(args: argparse.Namespace) -> int:
    from bot.main import run_bot
    from bot.settings import BotSettings

    run_bot(BotSettings())
    return 0


def cmd_up(args: argparse.Namespace) -> int:
    from wanderlens.up import run_up

    return run_up(
        catalog=args.catalog, data_dir=args.data, playground_port=args.port, playground=args.command == "playground"
    )


def cmd_settings(args: argparse.Namespace) -> int:
    from wanderlens.settings import env_example

    print(env_example())
    return 0


def build_parser() -> argparse.ArgumentParser:
    # Neither imports TensorFlow: the CLI starts without it.
    from opendata import cli as opendata_cli
    from recommender.download import default_cache_dir
    from recommender.fingerprint import DEFAULT_BACKBONE, LITE_EXTRACTION
    from recommender.refine import DEFAULT_REFINE, WHITENINGS

    parser = argparse.ArgumentParser(prog="wanderlens", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def model_options(sub: argparse.ArgumentParser, *, default_backbone: str | None) -> None:
        from recommender.runtimes import AUTO, RUNTIMES  # numpy only: no TensorFlow at parse time

        sub.add_argument(
            "--backbone",
            default=default_backbone,
            help=f"{DEFAULT_BACKBONE} (default), efficientnet-lite1/2, vgg16-places365, keras:<Application>, "
            "or PATH.keras:LAYER",
        )
        sub.add_argument("--weights", default="default", help="'default' or a local weights file")
        sub.add_argument(
            "--weights-cache",
            type=Path,
            default=default_cache_dir(),
            help="where downloaded weights (and converted LiteRT models) are kept",
        )
        sub.add_argument(
            "--runtime",
            choices=(AUTO, *RUNTIMES),
            default="auto" if default_backbone else None,
            help="what runs the network: TensorFlow in float32 or bfloat16, or LiteRT (XNNPACK, CPU) in float32 or "
            "int8; "
            + (
                "auto (default): an existing index's own, else this machine's default (bfloat16 on a CPU with "
                "bfloat16 instructions, float32 elsewhere)"
                if default_backbone
                else "default: the index's"
            ),
        )

    def descriptor_options(sub: argparse.ArgumentParser) -> None:
        group = sub.add_argument_group("descriptor (see the README's ablation table)")
        group.add_argument("--pooling", choices=("avg", "gem"), default="avg", help="pooling of the last map")
        group.add_argument("--scales", default="1", help="comma-separated view sizes, e.g. 1,0.71 (multi-scale)")
        group.add_argument("--no-trim", action="store_true", help="keep flat white/black borders")
        group.add_argument(
            "--bands",
            type=int,
            help=f"horizontal bands of the last map pooled apart (EfficientNet-Lite default {LITE_EXTRACTION.bands})",
        )
        group.add_argument(
            "--colour",
            type=float,
            help="weight of the colour histogram, 0 for none "
            f"(EfficientNet-Lite default {LITE_EXTRACTION.colour_weight:g})",
        )
        group.add_argument(
            "--whitening",
            choices=WHITENINGS,
            default=DEFAULT_REFINE.whitening,
            help="learned from the catalog",
        )
        group.add_argument(
            "--whitening-dims",
            type=int,
            default=DEFAULT_REFINE.dims,
            help=f"directions the whitening keeps, largest variance first (0: all; default {DEFAULT_REFINE.dims})",
        )
        group.add_argument(
            "--dba",
            type=int,
            default=DEFAULT_REFINE.dba,
            help=f"database-side augmentation: neighbours (0: off; default {DEFAULT_REFINE.dba})",
        )
        group.add_argument(
            "--qe",
            type=int,
            default=DEFAULT_REFINE.query_expansion,
            help=f"query expansion: neighbours (0: off; default {DEFAULT_REFINE.query_expansion})",
        )

    index = commands.add_parser("index", help="fingerprint a catalog folder into an index")
    index.add_argument("catalog", type=Path, help="folder of photos, optionally with catalog.csv")
    index.add_argument("--out", type=Path, required=True, help="index folder (created or updated)")
    index.add_argument(
        "--ann",
        choices=("auto", "exact", "ivfpq", "hnsw"),
        default="auto",
        help="approximate index for fast search (auto: IVF-PQ from 200,000 photos up)",
    )
    index.add_argument(
        "--metadata", type=Path, help="the CSV describing the photos (default: catalog.csv or manifest.csv in it)"
    )
    index.add_argument(
        "--columns", help="our column names for the file's, e.g. name=title,credit=photographer,destination=place"
    )
    index.add_argument("--batch-size", type=int, default=32)
    index.add_argument("--no-progress", action="store_true")
    model_options(index, default_backbone=DEFAULT_BACKBONE)
    descriptor_options(index)
    index.set_defaults(handler=cmd_index)

    query = commands.add_parser("query", help="find the destinations most like a photo")
    query.add_argument("photo", type=Path)
    query.add_argument("--index", type=Path, required=True)
    query.add_argument("-k", type=int, default=5, help="how many results (default 5)")
    query.add_argument("--sheet", type=Path, help="write a contact sheet (PNG or JPEG) of the query and results")
    model_options(query, default_backbone=None)
    query.set_defaults(handler=cmd_query)

    evaluate = commands.add_parser("eval", help="measure retrieval quality on a labelled manifest")
    evaluate.add_argument("--manifest", type=Path, required=True, help="CSV with path,label[,is_query]")
    evaluate.add_argument("--rotations", action="store_true", help="also query with each photo turned sideways")
    evaluate.add_argument("--batch-size", type=int, default=32)
    evaluate.add_argument("--no-progress", action="store_true")
    model_options(evaluate, default_backbone=DEFAULT_BACKBONE)
    descriptor_options(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    tune = commands.add_parser(
        "finetune", help="train the upper layers on a labelled catalog (metric learning); reports held-out quality"
    )
    tune.add_argument(
        "--manifest", type=Path, required=True, help="CSV with path,label[,is_query]: same label = same place"
    )
    tune.add_argument("--output", type=Path, required=True, help="the new model, a .keras file (never overwritten)")
    tune.add_argument("--backbone", default=DEFAULT_BACKBONE)
    tune.add_argument("--holdout", type=float, default=0.3, help="fraction of the places kept out of training")
    tune.add_argument("--epochs", type=int, default=20)
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--no-progress", action="store_true")
    tune.set_defaults(handler=cmd_finetune)

    worker = commands.add_parser("worker", help="serve recommendation jobs from Redis (settings: environment)")
    worker.add_argument("--health", action="store_true", help="exit 0 if a worker on this host is alive")
    worker.set_defaults(handler=cmd_worker)

    bot = commands.add_parser("bot", help="run the Telegram bot (settings: environment)")
    bot.set_defaults(handler=cmd_bot)

    up = commands.add_parser("up", help="run everything on this machine: Redis, index, worker, bot")
    up.add_argument("--catalog", type=Path, help="catalog folder (default: WANDERLENS_CATALOG_DIR)")
    up.add_argument("--data", type=Path, default=Path("data"), help="folder for the index and Redis's data")
    up.add_argument("--port", type=int, default=8080, help="playground port when there is no TELEGRAM_TOKEN")
    up.set_defaults(handler=cmd_up)

    playground = commands.add_parser(
        "playground", help="like `up`, but always with the local chat page, never Telegram"
    )
    playground.add_argument("--catalog", type=Path, help="catalog folder (default: WANDERLENS_CATALOG_DIR)")
    playground.add_argument("--data", type=Path, default=Path("data"), help="folder for the index and Redis's data")
    playground.add_argument("--port", type=int, default=8080, help="the chat page's port")
    playground.set_defaults(handler=cmd_up)

    catalog = commands.add_parser("catalog", help="make a catalog folder").add_subparsers(dest="action", required=True)
    build = catalog.add_parser("build", help="destinations with free photos from Wikidata and Wikimedia Commons")
    opendata_cli.add_arguments(build)
    build.set_defaults(handler=opendata_cli.run)

    settings = commands.add_parser("settings", help="print every setting with its default (.env.example)")
    settings.set_defaults(handler=cmd_settings)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_tensorflow()
    try:
        from contract.settings import LogSettings

        setup_logging(verbose=args.verbose, json_lines=LogSettings().log_format == "json")
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if _is_user_error(error):
            print(f"wanderlens: error: {_one_line(error)}", file=sys.stderr)
            return 2
        raise


def _one_line(error: Exception) -> str:
    from pydantic import ValidationError

    if isinstance(error, ValidationError):
        from contract.settings import settings_error_line

        return settings_error_line(error)
    return " ".join(str(error).split())


def _is_user_error(error: Exception) -> bool:
    """Failures that mean "the operator must change something" and say what: one line, not a traceback.

    Everything else is a bug and keeps its traceback. Paths given on the command line that do not exist (or
    would be overwritten) are the operator's too.
    """
    from pydantic import ValidationError

    from recommender.errors import UserError

    return isinstance(error, UserError | ValidationError | FileNotFoundError | FileExistsError)


if __name__ == "__main__":
    sys.exit(main())

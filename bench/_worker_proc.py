"""A worker process for ``bench.worker_load``: ``worker.main.serve`` (what ``wanderlens worker`` runs), with its
settings given on the command line instead of the environment. Stops on SIGTERM; logs one line per batch.

    python -m bench._worker_proc --redis-url redis://127.0.0.1:6379/0 --index-dir /tmp/index --batch-size 32
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--index-dir", type=Path, required=True)
    parser.add_argument("--backbone", default="efficientnet-lite0")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--batch-wait-ms", type=float, default=2.0)
    parser.add_argument(
        "--query-cache-ttl-s",
        type=int,
        default=0,
        help="0 (default) turns the query-vector cache off, so a photo sent twice is fingerprinted twice",
    )
    parser.add_argument("--consumer", default="bench")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    from worker.main import serve
    from worker.settings import WorkerSettings

    settings = WorkerSettings(
        redis_url=args.redis_url,
        index_dir=args.index_dir,
        backbone=args.backbone,
        batch_size=args.batch_size,
        batch_wait_ms=args.batch_wait_ms,
        query_cache_ttl_s=args.query_cache_ttl_s,
        metrics_port=0,
        consumer=args.consumer,
    )
    asyncio.run(serve(settings))


if __name__ == "__main__":
    main()

"""Run a real Worker with the colour stand-in extractor in its own process (for the kill -9 test).

python -m tests.worker.run_worker REDIS_URL INDEX_DIR DELAY_S [CONSUMER]
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from pathlib import Path

from redis.asyncio import Redis

from recommender.index import open_index
from tests.worker.fakes import ColourExtractor
from worker.loop import Worker
from worker.settings import WorkerOptions


async def main(redis_url: str, index_dir: str, delay_s: float, consumer: str) -> None:
    extractor = ColourExtractor(delay_s=delay_s)
    index = open_index(Path(index_dir), expected=extractor.fingerprint, placement="host")
    options = WorkerOptions(consumer=consumer, batch_size=4, claim_idle_ms=1000)
    async with Redis.from_url(redis_url) as redis:
        worker = Worker(redis=redis, extractor=extractor, index=index, options=options)
        # As `wanderlens worker` does (worker.main.serve): SIGTERM finishes the batch in hand, then exits.
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, worker.stop)
        await worker.run()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else "doomed"))

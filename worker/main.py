"""`wanderlens worker`: load the model and the index once, then serve jobs from Redis until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import time

from redis.exceptions import RedisError
from threadpoolctl import threadpool_limits

from contract import keys
from contract.connect import connect
from worker.loop import Worker
from worker.metrics import WorkerMetrics
from worker.priority import network_pool
from worker.settings import WorkerSettings

logger = logging.getLogger(__name__)


def load_model_and_index(settings: WorkerSettings) -> tuple[object, object]:
    """The extractor (warmed up) and the current index, checked against each other."""
    from recommender.backbones import check_backbone_name, load_backbone
    from recommender.extractor import Extractor
    from recommender.index import open_index, read_manifest
    from recommender.runtimes import resolve_runtime

    check_backbone_name(settings.backbone)
    started = time.perf_counter()
    manifest = read_manifest(settings.index_dir)
    if manifest is None:
        open_index(settings.index_dir)  # raises the "no index found: build one with ..." error
    # `auto` serves the index with the runtime that built it; a runtime named in the settings is kept, and a
    # mismatch is refused below rather than followed.
    runtime = resolve_runtime(settings.runtime, index_runtime=manifest.fingerprint.runtime if manifest else None)
    # Queries must be extracted exactly as the catalog was: how is recorded in the index.
    extractor = Extractor(
        load_backbone(
            settings.backbone,
            weights=settings.weights,
            cache_dir=settings.weights_cache,
            options=manifest.extraction if manifest is not None else None,
        ),
        runtime=runtime,
        cache_dir=settings.weights_cache,
    )
    index = open_index(settings.index_dir, expected=extractor.fingerprint, search=settings.search)
    extractor.warm_up()
    logger.info(
        "model %s and index %s (%d destinations, %s) ready in %.1fs",
        extractor.fingerprint.describe(),
        index.version,
        len(index),
        "GPU" if index.on_accelerator else "CPU",
        time.perf_counter() - started,
    )
    return extractor, index


async def load_at_network_priority(settings: WorkerSettings) -> tuple[object, object]:
    """``load_model_and_index`` in a thread at the network's priority: the pools it starts inherit it
    (``worker.priority``), while the event loop's thread keeps its own."""
    with network_pool() as loading:
        return await asyncio.get_running_loop().run_in_executor(loading, load_model_and_index, settings)


def one_blas_thread() -> None:
    """Limit numpy's BLAS to one thread for the rest of this process.

    The worker's searches are one small matrix product per photo, bound by memory, not cores. Extra OpenBLAS
    threads only busy-wait after each product and take the cores TensorFlow needs for the next batch: on 2 cores
    that cost about a quarter of the photos per second (README, Benchmarks).
    """
    threadpool_limits(limits=1, user_api="blas")
    # FAISS's OpenMP threads contend the same way: one query on 2 cores took 32 ms with two, 8 ms with one.
    with contextlib.suppress(ImportError):
        import faiss

        faiss.omp_set_num_threads(1)


async def serve(settings: WorkerSettings) -> None:
    one_blas_thread()
    extractor, index = await load_at_network_priority(settings)
    metrics = WorkerMetrics()
    metrics.serve(settings.metrics_port)
    async with connect(settings.redis_url) as redis:
        worker = Worker(
            redis=redis,
            extractor=extractor,  # type: ignore[arg-type]
            index=index,  # type: ignore[arg-type]
            options=settings.options(),
            index_dir=settings.index_dir,
            metrics=metrics,
        )
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        await worker.run()


async def check_health(settings: WorkerSettings) -> bool:
    """True when a worker on this host has sent a heartbeat recently (its key expires otherwise)."""
    try:
        async with connect(settings.redis_url, socket_timeout=3, socket_connect_timeout=3) as redis:
            host = socket.gethostname()
            async for key in redis.scan_iter(match=keys.health(f"{host}-*")):
                raw = await redis.get(key)
                if raw and time.time() - json.loads(raw)["at"] < settings.heartbeat_s * 3:
                    return True
    except RedisError as error:
        logger.error("cannot reach Redis for the health check: %s", error)
    return False

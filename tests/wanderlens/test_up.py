"""`wanderlens up` survives its children: with plain child commands (fast), and for real with the model (slow)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from contract.keys import JOBS_STREAM, WORKERS_GROUP
from playground.page_client import PageClient
from tests.redis_server import RedisServer, free_port
from wanderlens.up import hand_over_jobs

REPO = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"started (\w+) \(pid (\d+)\)")
SLEEPER = "import time; time.sleep(300)"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def started(log: str) -> list[tuple[str, int]]:
    return [(name, int(pid)) for name, pid in STARTED.findall(log)]


def wait_for(condition: Callable[[], bool], what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


class Supervised:
    """``tests/wanderlens/supervised.py`` in a subprocess: `up`'s supervision over plain children."""

    def __init__(self, tmp_path: Path, **children: str) -> None:
        self.log_path = tmp_path / "up.log"
        self.log_dir = tmp_path / "logs"
        command = [sys.executable, "-m", "tests.wanderlens.supervised", str(self.log_dir)]
        command += [f"{name}={code}" for name, code in children.items()]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=child_env(), cwd=REPO)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_for(self, text: str) -> None:
        wait_for(lambda: text in self.log() or self.process.poll() is not None, repr(text))
        assert text in self.log(), self.log()


def test_a_crash_loop_ends_up_with_a_clear_message_and_status_1_leaving_nothing_running(tmp_path: Path) -> None:
    crasher = "import sys; print('cannot open the index', flush=True); sys.exit(3)"
    up = Supervised(tmp_path, steady=SLEEPER, crasher=crasher)
    code = up.process.wait(60)
    log = up.log()
    assert code == 1, log
    assert "[wanderlens up] giving up on crasher: it exited 3 times" in log
    assert "the last time with status 3" in log
    assert str(up.log_dir / "crasher.log") in log and "cannot open the index" in log
    assert [name for name, _ in started(log)].count("crasher") == 3  # a bounded number of tries
    assert not [pid for _, pid in started(log) if alive(pid)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_everything_in_reverse_order_restarted_children_too(
    tmp_path: Path, signum: int
) -> None:
    up = Supervised(tmp_path, redis=SLEEPER, worker=SLEEPER, bot=SLEEPER)
    up.wait_for("press Ctrl-C")
    worker = dict(started(up.log()))["worker"]
    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: [n for n, _ in started(up.log())].count("worker") == 2, "the worker's restart")
    assert f"worker (pid {worker}) exited with status -9 (killed by SIGKILL); restarting it" in up.log()

    up.process.send_signal(signum)
    assert up.process.wait(60) == 0, up.log()
    log = up.log()
    assert re.findall(r"stopping (\w+)", log) == ["bot", "worker", "redis"]
    assert log.rstrip().endswith("[wanderlens up] stopped")
    assert len(started(log)) == 4 and not [pid for _, pid in started(log) if alive(pid)]


def test_a_dead_workers_jobs_go_to_its_successor_at_once(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.xgroup_create(JOBS_STREAM, WORKERS_GROUP, id="0", mkstream=True)
    ids = [client.xadd(JOBS_STREAM, {"n": str(n)}) for n in range(3)]
    client.xreadgroup(WORKERS_GROUP, "host-111", {JOBS_STREAM: ">"}, count=2)  # read, then the worker died
    claim = {"min_idle_time": 30_000, "start_id": "0-0"}
    assert client.xautoclaim(JOBS_STREAM, WORKERS_GROUP, "host-222", **claim)[1] == []  # would wait 30 s

    assert hand_over_jobs(redis_server.url, "host-111", 30_000) == 2

    _, claimed, _ = client.xautoclaim(JOBS_STREAM, WORKERS_GROUP, "host-222", **claim)
    assert [entry_id for entry_id, _ in claimed] == ids[:2]
    pending = client.xpending_range(JOBS_STREAM, WORKERS_GROUP, "-", "+", 10)
    # One delivery to the dead worker, one to its successor: a photo that kills every worker still reaches
    # the dead-letter stream after max_deliveries.
    assert [p["times_delivered"] for p in pending] == [2, 2]
    assert hand_over_jobs(redis_server.url, "host-111", 30_000) == 0


# ------------------------------------------------------------------------------------------ the real thing


class Playground(PageClient):
    """The chat page's HTTP interface, as the page uses it, for the demo cast's private chats (chat id = user id)."""

    def answers(self, chat_id: int, photo_id: int) -> list[str]:
        """The kinds of the bot's messages that quote the photo (an album, or a text such as an apology)."""
        quoting = [
            m
            for m in self.messages(chat_id)
            if m["from"] == "bot" and (m["reply_to"] or {}).get("message_id") == photo_id
        ]
        return [m["kind"] for m in quoting]


def _photos(catalog: Path) -> list[bytes]:
    return [path.read_bytes() for path in sorted(catalog.glob("*.jpg"))[:8]]


@pytest.mark.slow
def test_up_restarts_a_killed_worker_which_answers_the_photo_it_was_holding(
    tmp_path: Path, travel_catalog: Path
) -> None:
    port, chat = free_port(), 101
    log_path = tmp_path / "up.log"
    env = {k: v for k, v in child_env().items() if k not in ("REDIS_URL", "TELEGRAM_TOKEN")}
    # Long enough that only the handover (not XAUTOCLAIM's idle time, nor the user's patience) can explain an
    # album for the photo the dead worker held.
    env.update(
        TF_CPP_MIN_LOG_LEVEL="3",
        WANDERLENS_METRICS_PORT="0",
        WANDERLENS_REPLY_TIMEOUT_S="200",
        WANDERLENS_CLAIM_IDLE_MS="900000",
    )
    command = [sys.executable, "-m", "wanderlens.cli", "up", "--catalog", str(travel_catalog)]
    command += ["--data", str(tmp_path / "data"), "--port", str(port)]
    with log_path.open("w") as log:
        up = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env)
    try:
        wait_for(lambda: "try the bot in your browser" in log_path.read_text() or up.poll() is not None, "up", 500)
        assert up.poll() is None, log_path.read_text()[-3000:]
        playground, photos = Playground(port), _photos(travel_catalog)
        redis_url = re.findall(r"embedded .* on (redis://\S+)", log_path.read_text())[-1]
        client = redis.Redis.from_url(redis_url)

        first = playground.send_photo(chat, chat, photos[0])
        wait_for(lambda: bool(playground.answers(chat, first)), "the first album", 120)
        assert playground.answers(chat, first) == ["media_group"]

        held = _kill_the_worker_holding_a_photo(playground, client, photos[1:], chat, log_path)
        wait_for(lambda: bool(playground.answers(chat, held)), "the held photo's answer", 300)
        assert playground.answers(chat, held) == ["media_group"], log_path.read_text()[-3000:]

        after = playground.send_photo(chat, chat, photos[-1])
        wait_for(lambda: bool(playground.answers(chat, after)), "the next photo's answer", 120)
        assert playground.answers(chat, after) == ["media_group"]
        assert [name for name, _ in started(log_path.read_text())].count("worker") == 2
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(120)
    log = log_path.read_text()
    assert code == 0, log[-3000:]
    assert log.rstrip().endswith("[wanderlens up] stopped")
    assert not [(name, pid) for name, pid in started(log) if alive(pid)]


def _kill_the_worker_holding_a_photo(
    playground: Playground, client: redis.Redis, photos: list[bytes], chat: int, log_path: Path
) -> int:
    """SIGKILL the worker while it holds an unanswered photo (retrying with the next photo when it was quicker
    than us); returns that photo's message id."""
    for photo in photos:
        photo_id = playground.send_photo(chat, chat, photo)
        deadline = time.monotonic() + 60
        while not playground.answers(chat, photo_id) and time.monotonic() < deadline:
            if int(client.xpending(JOBS_STREAM, WORKERS_GROUP)["pending"]) > 0:
                worker = [pid for name, pid in started(log_path.read_text()) if name == "worker"][-1]
                os.kill(worker, signal.SIGKILL)
                wait_for(lambda: "go to the next worker" in log_path.read_text(), "the handover", 30)
                if not playground.answers(chat, photo_id):
                    return photo_id
                break  # answered just before it died: try again with the next worker
    raise AssertionError("never caught the worker holding a photo")


def test_up_without_a_catalog_says_what_to_do(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDERLENS_", "REDIS_URL", "TELEGRAM"))}
    result = subprocess.run(
        [sys.executable, "-m", "wanderlens.cli", "up", "--data", str(tmp_path / "data")],
        cwd=tmp_path,  # no ./catalog here
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "wanderlens catalog build --out catalog" in result.stderr
    assert "wanderlens up --catalog PATH/TO/PHOTOS" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "data" / "redis").exists()  # nothing was started

"""Chaos: `wanderlens up` under load while its worker and its Redis are killed; does every photo get an answer?

Run from the repository root::

    python -m bench.chaos                              # 3 chats x 12 photos, worker killed, Redis killed, Redis hung
    python -m bench.chaos --chats 3 --photos 20 --keep  # keep the temporary folder (logs, data) afterwards

What runs: `wanderlens up` in playground mode (no Telegram; everything on 127.0.0.1) over a small catalog in a
temporary folder (``--catalog-size`` of ../shared's travel photos as symlinks, or generated pictures when they
are absent), with its data and index in that folder too. ``--chats`` simulated users (Alice, Bob, Chloe, …:
the playground's private chats) each send ``--photos`` photos through the playground's page API (``POST
/api/chats/ID/send``, as the chat page does), one at a time: the next ``--pause`` seconds after the bot has
answered, or after ``--wait`` seconds. Once ``--kill-worker-after`` photos have been answered, the worker gets
SIGKILL as soon as it holds unanswered jobs (what the OOM killer does mid-load); once its successor is up and
``--kill-redis-after`` more photos are answered, the embedded Redis gets SIGKILL. `up` must restart both. Then,
after as many answers again, Redis is hung for ``--hang-redis-s`` seconds (SIGSTOP, then SIGCONT: a server that
accepts connections and answers nothing, as one cut off without a reset does); `up` sees nothing wrong, and the
photos sent meanwhile must wait for it (`contract.outage`).

At the end every chat's messages are read back and matched to the photos (an album or a text reply quotes its
photo; a message that quotes nothing belongs to the chat's latest photo before it). An *answer* is an album or a
text message without buttons (an apology: "took too long", "something went wrong"); the message with 👍 buttons
that follows an album is part of that album, and "I'll answer this as soon as I'm back" is a *notice*, not an
answer. The last line: ``sent=… answered=… lost=… duplicates=… notices=… restarts=…`` (lost: no answer within
``--deadline`` seconds after the last photo; duplicates: photos answered more than once; notices: photos told to
wait for Redis; restarts: children `up` restarted).
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import SHARED_DATASETS, print_header, print_load_after, print_table
from bot.texts import WAITING_FOR_BACKEND
from playground.page_client import PageClient

TRAVEL_PHOTOS = SHARED_DATASETS / "travel-photos"
STARTED = re.compile(r"\[wanderlens up\] started (\w+) \(pid (\d+)\)")
REDIS_URL = re.compile(r"\[wanderlens up\] embedded .* on (redis://\S+)")
RESTARTING = re.compile(r"\[wanderlens up\] (\w+) \(pid \d+\) exited with .*; restarting it")
UP_READY_TIMEOUT_S = 600
FIRST_USER_ID = 101


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chats", type=int, default=3, help="simulated chats, at most 3 (default: %(default)s)")
    parser.add_argument("--photos", type=int, default=12, help="photos each chat sends (default: %(default)s)")
    parser.add_argument("--catalog-size", type=int, default=40, help="catalog photos (default: %(default)s)")
    parser.add_argument("--kill-worker-after", type=int, default=4, help="answers before the worker is killed")
    parser.add_argument("--kill-redis-after", type=int, default=6, help="more answers before Redis is killed")
    parser.add_argument("--hang-redis-s", type=float, default=12.0, help="seconds Redis hangs (SIGSTOP; 0: not)")
    parser.add_argument("--pause", type=float, default=1.0, help="seconds a user waits after an answer")
    parser.add_argument("--wait", type=float, default=45.0, help="seconds a chat waits for one answer")
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds after the last photo for answers")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ inputs


def make_catalog(folder: Path, size: int) -> list[Path]:
    """A catalog of ``size`` photos in ``folder`` (symlinks to travel-photos, else drawn pictures); its files."""
    folder.mkdir(parents=True)
    sources = sorted((TRAVEL_PHOTOS / "images").glob("*.jpg")) if TRAVEL_PHOTOS.is_dir() else []
    files = []
    with (folder / "catalog.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["id", "image", "name", "city", "country"])
        for n in range(size):
            target = folder / f"place{n:03d}.jpg"
            if sources:
                target.symlink_to(sources[n % len(sources)])
            else:
                _draw(target, n)
            writer.writerow([f"place{n:03d}", target.name, f"Place {n}", f"Town {n % 7}", "Benchland"])
            files.append(target)
    return files


def _draw(path: Path, seed: int) -> None:
    import numpy as np
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (320, 240), tuple(int(v) for v in rng.integers(60, 255, 3)))
    draw = ImageDraw.Draw(image)
    horizon = int(rng.integers(80, 180))
    draw.rectangle([0, horizon, 320, 240], fill=tuple(int(v) for v in rng.integers(0, 200, 3)))
    image.save(path, quality=90)


def query_photos(catalog: list[Path], count: int) -> list[bytes]:
    """Photos to send: the catalog's own, in turn, each made distinct (a different crop) so none is cached."""
    import io

    from PIL import Image

    photos = []
    for n in range(count):
        with Image.open(catalog[n % len(catalog)]) as image:
            picture = image.convert("RGB")
            crop = 1 + n // len(catalog)
            picture = picture.crop((crop, crop, picture.width - crop, picture.height - crop))
            out = io.BytesIO()
            picture.save(out, format="JPEG", quality=85)
            photos.append(out.getvalue())
    return photos


# ------------------------------------------------------------------------------------------------ the playground


def is_answer(message: dict) -> bool:
    """An album, or a text from the bot without buttons (an apology); the 👍 message belongs to its album, and
    "I'll answer this as soon as I'm back" (Redis down for a while) promises an answer rather than being one."""
    if message["from"] != "bot":
        return False
    if message["kind"] in ("media_group", "photo"):
        return True
    return message["kind"] == "text" and not message["keyboard"] and message.get("text") != WAITING_FOR_BACKEND


def answers_per_photo(messages: list[dict], *, notices: bool = False) -> dict[int, list[str]]:
    """The answers each photo (by message id) got, in order: "album" or "apology"; with ``notices``, the
    "I'll answer as soon as I'm back" messages instead."""
    answers: dict[int, list[str]] = {}
    latest_photo: int | None = None
    for message in sorted(messages, key=lambda m: m["seq"]):
        if message["from"] == "user" and message["kind"] == "photo":
            latest_photo = message["message_id"]
            answers.setdefault(latest_photo, [])
        elif is_notice(message) if notices else is_answer(message):
            quoted = (message.get("reply_to") or {}).get("message_id")
            target = quoted if quoted is not None else latest_photo
            if target is not None:
                answers.setdefault(target, []).append("apology" if message["kind"] == "text" else "album")
    return answers


def is_notice(message: dict) -> bool:
    return message["from"] == "bot" and message["kind"] == "text" and message.get("text") == WAITING_FOR_BACKEND


# ------------------------------------------------------------------------------------------------ the run


@dataclass
class Load:
    """The simulated chats: what they sent, and how many answers they have seen so far."""

    port: int
    photos: list[bytes]
    wait_s: float
    pause_s: float
    sent: dict[int, list[int]] = field(default_factory=dict)  # chat -> photo message ids
    answered: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_send: float = 0.0

    def chat(self, chat_id: int, user_id: int, count: int, offset: int) -> None:
        """One user: a photo, then its answer (or ``wait_s``), then the next."""
        self.sent[chat_id] = []
        for n in range(count):
            message_id = PageClient(self.port).send_photo(
                chat_id, user_id, self.photos[(offset + n) % len(self.photos)]
            )
            with self.lock:
                self.sent[chat_id].append(message_id)
                self.last_send = time.monotonic()
            deadline = time.monotonic() + self.wait_s
            while time.monotonic() < deadline:
                time.sleep(0.5)
                if answers_per_photo(PageClient(self.port).messages(chat_id)).get(message_id):
                    with self.lock:
                        self.answered += 1
                    break
            time.sleep(self.pause_s)  # a person looks at the answer before sending the next photo


class Up:
    """`wanderlens up` in playground mode, in a subprocess whose log this reads."""

    def __init__(self, workdir: Path, catalog: Path, port: int) -> None:
        self.log_path = workdir / "up.log"
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TELEGRAM_TOKEN")}
        # The chats send faster than a person would: lift the per-user photo limit, not the rest.
        env.update(TF_CPP_MIN_LOG_LEVEL="3", WANDERLENS_METRICS_PORT="0", WANDERLENS_PHOTOS_PER_MINUTE="600")
        command = [sys.executable, "-m", "wanderlens.cli", "up", "--catalog", str(catalog)]
        command += ["--data", str(workdir / "data"), "--port", str(port)]
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while text not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"`up` did not get to {text!r}; its log ends:\n{self.log()[-3000:]}")
            time.sleep(0.5)

    def pid(self, name: str) -> int:
        return int([pid for child, pid in STARTED.findall(self.log()) if child == name][-1])

    def starts(self, name: str) -> int:
        return sum(1 for child, _ in STARTED.findall(self.log()) if child == name)

    def kill(self, name: str, how: signal.Signals = signal.SIGKILL) -> None:
        pid = self.pid(name)
        print(f"{time.strftime('%H:%M:%S')} {how.name} {name} (pid {pid})", flush=True)
        os.kill(pid, how)

    def restarts(self) -> int:
        return len(RESTARTING.findall(self.log()))

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(120)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


def wait_until(condition: Callable[[], bool], timeout_s: float, *, poll_s: float = 0.5) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(poll_s)
    return True


def worker_holds_jobs(redis_url: str) -> bool:
    """Whether the worker has read jobs it has not answered yet (the moment to kill it)."""
    import redis

    with redis.Redis.from_url(redis_url, socket_timeout=2) as client:
        try:
            return int(client.xpending("wl:jobs", "wl-workers")["pending"]) > 0
        except redis.ResponseError:
            return False


def chaos(load: Load, up: Up, args: argparse.Namespace) -> None:
    """Kill the worker mid-load, wait for its successor, then kill Redis; each after some answers."""
    if not wait_until(lambda: load.answered >= args.kill_worker_after, 300):
        print("too few answers before the worker kill; killing it anyway", flush=True)
    redis_url = REDIS_URL.findall(up.log())[-1]
    if not wait_until(lambda: worker_holds_jobs(redis_url), 60, poll_s=0.005):
        print("the worker held no jobs for a minute; killing it anyway", flush=True)
    up.kill("worker")
    if not wait_until(lambda: up.starts("worker") >= 2, 120):
        print("the worker was not restarted", flush=True)
        return
    target = load.answered + args.kill_redis_after
    if not wait_until(lambda: load.answered >= target, 300):
        print("too few answers before the Redis kill; killing it anyway", flush=True)
    up.kill("redis")
    if args.hang_redis_s <= 0:
        return
    target = load.answered + args.kill_redis_after
    if not wait_until(lambda: load.answered >= target, 300):
        print("too few answers before Redis hangs; hanging it anyway", flush=True)
    up.kill("redis", signal.SIGSTOP)
    time.sleep(args.hang_redis_s)
    up.kill("redis", signal.SIGCONT)


def main() -> int:
    args = parse_args()
    if not 1 <= args.chats <= 3:
        raise SystemExit("--chats must be 1 to 3 (the playground's private chats)")
    print_header("chaos: wanderlens up with the worker and Redis killed, then Redis hung, under load")
    workdir = Path(tempfile.mkdtemp(prefix="wanderlens-chaos-"))
    port = _free_port()
    catalog = make_catalog(workdir / "catalog", args.catalog_size)
    load = Load(port, query_photos(catalog, args.chats * args.photos), args.wait, args.pause)
    print(f"catalog : {args.catalog_size} photos ({'travel-photos' if TRAVEL_PHOTOS.is_dir() else 'generated'})")
    print(f"load    : {args.chats} chats x {args.photos} photos, one at a time; folder {workdir}")
    up = Up(workdir, workdir / "catalog", port)
    code = None
    try:
        up.wait_for("try the bot in your browser", UP_READY_TIMEOUT_S)
        chats = [
            threading.Thread(
                target=load.chat, args=(FIRST_USER_ID + n, FIRST_USER_ID + n, args.photos, n * args.photos)
            )
            for n in range(args.chats)
        ]
        for thread in chats:
            thread.start()
        chaos(load, up, args)
        for thread in chats:
            thread.join()
        sent = sum(len(ids) for ids in load.sent.values())
        wait_until(lambda: _tally(load)[1] >= sent, args.deadline)
        odd: list[str] = []
        sent, answered, lost, duplicates, rows = _tally(load, odd)
        restarts = up.restarts()
    finally:
        code = up.stop()
    print()
    print_table(["chat", "sent", "answered", "lost", "duplicates", "albums", "apologies", "notices"], rows)
    for line in odd:
        print(line)
    print(f"up exited with status {code} after Ctrl-C; its log: {up.log_path}")
    print_load_after()
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    notices = rows[-1][-1]
    print(f"sent={sent} answered={answered} lost={lost} duplicates={duplicates} notices={notices} restarts={restarts}")
    return 0 if lost == 0 and duplicates == 0 and code == 0 else 1


def _tally(load: Load, odd: list[str] | None = None) -> tuple[int, int, int, int, list[list[object]]]:
    """Totals (sent, answered, lost, duplicates) and the table rows; photos without exactly one answer to ``odd``."""
    odd = [] if odd is None else odd
    rows: list[list[object]] = []
    for chat_id, photo_ids in sorted(load.sent.items()):
        messages = PageClient(load.port).messages(chat_id)
        answers = answers_per_photo(messages)
        told_to_wait = answers_per_photo(messages, notices=True)
        got = [answers.get(i, []) for i in photo_ids]
        odd.extend(f"chat {chat_id} photo {i}: {answers.get(i, [])}" for i in photo_ids if len(answers.get(i, [])) != 1)
        rows.append(
            [
                chat_id,
                len(got),
                sum(bool(a) for a in got),
                sum(not a for a in got),
                sum(len(a) > 1 for a in got),
                sum(a[:1] == ["album"] for a in got),
                sum(a[:1] == ["apology"] for a in got),
                sum(bool(told_to_wait.get(i)) for i in photo_ids),
            ]
        )
    totals = [sum(int(row[i]) for row in rows) for i in range(1, 8)]
    rows.append(["all", *totals])
    return totals[0], totals[1], totals[2], totals[3], rows


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


if __name__ == "__main__":
    sys.exit(main())

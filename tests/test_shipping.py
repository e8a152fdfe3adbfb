"""What an operator touches: the CLI's start-up errors, `wanderlens up`, the compose file, the settings example."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from playground.page_client import PageClient
from tests.conftest import REPO
from tests.redis_server import free_port
from wanderlens.settings import env_example


def wanderlens(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wanderlens.cli", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        timeout=timeout,
        cwd=REPO,
    )


def test_env_example_lists_every_setting_with_its_default() -> None:
    assert (REPO / ".env.example").read_text() == env_example() + "\n", "regenerate: wanderlens settings > .env.example"
    text = (REPO / ".env.example").read_text()
    for name in ("TELEGRAM_TOKEN", "REDIS_URL", "WANDERLENS_BATCH_SIZE", "WANDERLENS_MAX_QUEUE"):
        assert f"# {name}=" in text


def test_the_bot_never_loads_tensorflow() -> None:
    probe = (
        "import sys, bot.main, bot.handlers, bot.album, bot.settings, contract.client, contract.codec, wanderlens.cli, "
        "wanderlens.settings, playground.botapi; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch')))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (["worker"], {"REDIS_URL": "http://localhost"}, "invalid configuration: REDIS_URL"),
        (["worker"], {"WANDERLENS_BATCH_SIZE": "0"}, "invalid configuration: BATCH_SIZE"),
        (["worker"], {"WANDERLENS_INDEX_DIR": "/nonexistent/index"}, "no index found in /nonexistent/index"),
        (["worker"], {"WANDERLENS_BACKBONE": "resnet-9000"}, "unknown backbone"),
        (["bot"], {"TELEGRAM_TOKEN": ""}, "TELEGRAM_TOKEN is not set"),
        (["query", "missing.jpg", "--index", "/nonexistent"], {}, "no index found"),
        (["index", "/nonexistent", "--out", "/tmp/x"], {}, "catalog folder not found"),
    ],
)
def test_bad_configuration_fails_at_start_with_one_clear_line(
    args: list[str], env: dict[str, str], expected: str
) -> None:
    result = wanderlens(*args, env={"TELEGRAM_TOKEN": "", **env})
    assert result.returncode == 2, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("wanderlens: error:")]
    assert len(lines) == 1 and expected in lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr


def test_compose_file_is_valid(tmp_path: Path) -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.fail("docker-compose is needed to check the compose file: apt-get install docker-compose")
    env = {**os.environ, "CATALOG": str(tmp_path)}
    (REPO / ".env").exists() or (tmp_path / ".env").write_text("")
    for files in (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]):
        arguments = [item for name in files for item in ("-f", str(REPO / name))]
        # --project-directory keeps the operator's own .env out of it; env_file: .env then resolves there.
        result = subprocess.run(
            [compose, "--project-directory", str(tmp_path), *arguments, "config"],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert {"redis", "indexer", "worker", "bot"} <= set(re.findall(r"^  (\w+):$", result.stdout, re.MULTILINE))
        if "docker-compose.gpu.yml" in files:
            # Built on the CPU, served on the GPU: both pinned to TensorFlow, or the CPU's LiteRT default would
            # build an index that the GPU cannot serve.
            assert re.search(r"^    - --runtime\n    - tensorflow$", result.stdout, re.MULTILINE), result.stdout
            assert "WANDERLENS_RUNTIME: tensorflow" in result.stdout


def test_bot_image_installs_no_tensorflow() -> None:
    dockerfile = (REPO / "docker" / "bot.Dockerfile").read_text()
    assert 'pip install ".[bot]"' in dockerfile
    from tomllib import loads

    extras = loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert not any("tensorflow" in d or "keras" in d for d in extras["bot"])


def _pids(log: str) -> dict[str, int]:
    return {name: int(pid) for name, pid in re.findall(r"started (\w+) \(pid (\d+)\)", log)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split()[2] != "Z"


def test_up_runs_everything_and_ctrl_c_leaves_nothing_behind(tmp_path: Path, travel_catalog: Path) -> None:
    port = free_port()
    log_path = tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "TELEGRAM_TOKEN")}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", WANDERLENS_METRICS_PORT="0")
    with log_path.open("w") as log:
        up = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "wanderlens.cli",
                "up",
                "--catalog",
                str(travel_catalog),
                "--data",
                str(tmp_path / "data"),
                "--port",
                str(port),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env=env,
        )
    try:
        deadline = time.monotonic() + 240
        while "try the bot in your browser" not in log_path.read_text():
            assert up.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.3)
        assert (tmp_path / "data" / "redis" / "appendonlydir").is_dir()  # the embedded Redis persists
        photo = sorted(travel_catalog.glob("*.jpg"))[0].read_bytes()
        PageClient(port).send_photo(101, 101, photo)
        kinds: list[str] = []
        deadline = time.monotonic() + 60
        while "media_group" not in kinds and time.monotonic() < deadline:
            time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/chats/101/messages", timeout=10) as response:
                data = json.loads(response.read())
            kinds = [m["kind"] for m in data.get("messages", data)]
        assert "media_group" in kinds, log_path.read_text()[-3000:]
        children = _pids(log_path.read_text())
        assert set(children) == {"redis", "worker", "playground", "bot"}
    finally:
        up.send_signal(signal.SIGINT)
        code = up.wait(60)
    assert code == 0, log_path.read_text()[-3000:]
    time.sleep(0.5)
    assert not [name for name, pid in _pids(log_path.read_text()).items() if _alive(pid)]
    assert "[wanderlens up] stopped" in log_path.read_text()


def test_query_prints_the_ranking_and_writes_a_contact_sheet(
    travel_catalog: Path, travel_index: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from recommender.catalog import load_catalog

    catalog = load_catalog(travel_catalog)
    photo_of = catalog.destinations[3]
    sheet = tmp_path / "sheet.png"
    result = wanderlens(
        "query", str(catalog.image_path(photo_of)), "--index", str(travel_index), "-k", "3", "--sheet", str(sheet)
    )
    assert result.returncode == 0, result.stderr[-2000:]
    ranked = [line for line in result.stdout.splitlines() if re.match(r"^ *\d+\. ", line)]
    assert len(ranked) == 3
    # A catalog photo finds its own destination first, as alike as a photo can be.
    assert ranked[0].startswith(" 1. " + photo_of.name) and float(ranked[0].split()[-1]) > 0.99
    assert all(float(line.split()[-1]) < 0.99 for line in ranked[1:])
    assert sheet.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(sheet) as image:
        assert image.width > 0 and image.height > 0

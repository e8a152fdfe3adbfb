"""recommender.download against a real HTTP server on 127.0.0.1: good, wrong, cut-off, missing, slow files."""

from __future__ import annotations

import hashlib
import http.server
import socket
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from recommender.download import (
    RemoteWeights,
    WeightsError,
    default_cache_dir,
    fetch,
    resolve_weights,
    sha256_file,
)

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: big enough that cutting it in half happens mid-stream
WRONG_PAYLOAD = b"not the weights you are looking for" * 100
SLOW_SECONDS = 5.0


@dataclass
class Server:
    base: str
    requests: list[str] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"


def _handler(server: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

        def _send(self, body: bytes, *, length: int | None = None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body) if length is None else length))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            server.requests.append(self.path)
            if self.path == "/good.bin":
                self._send(PAYLOAD)
            elif self.path == "/wrong.bin":
                self._send(WRONG_PAYLOAD)
            elif self.path == "/drop.bin":
                # Promise the whole file, send half, hang up.
                self._send(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
                self.wfile.flush()
                self.close_connection = True
            elif self.path == "/reset.bin":
                # Half the file, then a TCP reset (SO_LINGER 0) instead of an orderly close.
                self._send(PAYLOAD[: len(PAYLOAD) // 2], length=len(PAYLOAD))
                self.wfile.flush()
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.close_connection = True
            elif self.path == "/redirect-to-file":
                self.send_response(302)
                self.send_header("Location", "file:///etc/passwd")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/slow.bin":
                server.release.wait(SLOW_SECONDS)
                self._send(PAYLOAD)
            else:
                self.send_error(404)

    return Handler


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    state = Server(base="")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="test-http-server", daemon=True)
    thread.start()
    yield state
    state.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


@pytest.fixture
def requests(server: Server) -> list[str]:
    server.requests.clear()
    return server.requests


def remote(server: Server, path: str, *, payload: bytes = PAYLOAD, md5_only: bool = False) -> RemoteWeights:
    if md5_only:
        return RemoteWeights(url=server.url(path), md5=hashlib.md5(payload).hexdigest(), filename="w.h5")
    return RemoteWeights(url=server.url(path), sha256=hashlib.sha256(payload).hexdigest(), filename="w.h5")


def assert_empty(folder: Path) -> None:
    leftovers = sorted(p.name for p in folder.iterdir()) if folder.exists() else []
    assert leftovers == [], f"download left files behind: {leftovers}"


# --- fetching -----------------------------------------------------------------------------------------------


def test_downloads_verifies_and_then_serves_from_cache(server, requests, tmp_path, capsys):
    cache = tmp_path / "cache"  # does not exist yet: fetch creates it

    path = fetch(remote(server, "/good.bin"), cache_dir=cache, progress=True)

    assert path == cache / "w.h5"
    assert path.read_bytes() == PAYLOAD
    assert sha256_file(path) == hashlib.sha256(PAYLOAD).hexdigest()
    assert sorted(p.name for p in cache.iterdir()) == ["w.h5"]  # no .part-* left over
    assert requests == ["/good.bin"]
    assert "w.h5" in capsys.readouterr().err  # the tqdm bar, labelled with the file name

    again = fetch(remote(server, "/good.bin"), cache_dir=cache)

    assert again == path
    assert requests == ["/good.bin"]  # the second call never touched the network


def test_md5_only_release_is_verified(server, requests, tmp_path):
    path = fetch(remote(server, "/good.bin", md5_only=True), cache_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD

    wrong = RemoteWeights(url=server.url("/wrong.bin"), md5=hashlib.md5(PAYLOAD).hexdigest(), filename="x.h5")
    with pytest.raises(WeightsError, match="expected md5"):
        fetch(wrong, cache_dir=tmp_path, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5"]


def test_wrong_checksum_is_rejected_and_nothing_is_kept(server, tmp_path):
    wrong = remote(server, "/wrong.bin")  # pinned to PAYLOAD's hash, serves something else

    with pytest.raises(WeightsError) as caught:
        fetch(wrong, cache_dir=tmp_path, progress=False)

    message = str(caught.value)
    assert f"expected sha256 {hashlib.sha256(PAYLOAD).hexdigest()}" in message
    assert f"received sha256 {hashlib.sha256(WRONG_PAYLOAD).hexdigest()}" in message
    assert "--weights PATH" in message
    assert_empty(tmp_path)


@pytest.mark.parametrize("path", ["/drop.bin", "/reset.bin"])
def test_interrupted_download_leaves_nothing(server, tmp_path, path):
    with pytest.raises(WeightsError, match=r"stopped after|interrupted after"):
        fetch(remote(server, path), cache_dir=tmp_path, progress=False)
    assert_empty(tmp_path)


def test_missing_file_is_a_weights_error(server, tmp_path):
    with pytest.raises(WeightsError, match="HTTP 404"):
        fetch(remote(server, "/nope.bin"), cache_dir=tmp_path, progress=False)
    assert_empty(tmp_path)


def test_slow_server_times_out(server, tmp_path):
    with pytest.raises(WeightsError, match="could not be reached"):
        fetch(remote(server, "/slow.bin"), cache_dir=tmp_path, timeout=0.3, progress=False)
    assert_empty(tmp_path)


def test_unreachable_host_says_how_to_supply_the_file(tmp_path):
    # Nothing listens on a port we just bound and released, so the connection is refused at once.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = RemoteWeights(url=f"http://127.0.0.1:{port}/w.h5", sha256="0" * 64, filename="w.h5")

    with pytest.raises(WeightsError, match="could not be reached") as caught:
        fetch(unreachable, cache_dir=tmp_path, timeout=2, progress=False)

    assert "--weights PATH" in str(caught.value)
    assert str(tmp_path / "w.h5") in str(caught.value)


def test_corrupted_cached_file_is_downloaded_again(server, requests, tmp_path):
    (tmp_path / "w.h5").write_bytes(PAYLOAD[:-1] + b"\x00")

    path = fetch(remote(server, "/good.bin"), cache_dir=tmp_path, progress=False)

    assert path.read_bytes() == PAYLOAD
    assert requests == ["/good.bin"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.h5"]


def test_keyboard_interrupt_mid_download_leaves_nothing(tmp_path):
    class Response:
        def __init__(self) -> None:
            self.headers = {"Content-Length": str(len(PAYLOAD))}
            self.reads = 0

        def __enter__(self) -> Response:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def geturl(self) -> str:
            return "https://example.invalid/w.h5"

        def read(self, n: int) -> bytes:
            self.reads += 1
            if self.reads > 1:
                raise KeyboardInterrupt
            return PAYLOAD[:1000]

    weights = RemoteWeights(url="https://example.invalid/w.h5", sha256="0" * 64, filename="w.h5")
    with pytest.raises(KeyboardInterrupt):
        fetch(weights, cache_dir=tmp_path, progress=False, opener=lambda request, timeout: Response())
    assert_empty(tmp_path)


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://example.com/w.h5", "/local/w.h5"])
def test_non_http_urls_are_refused_before_any_io(url, tmp_path):
    def opener(*args: object, **kwargs: object) -> object:
        raise AssertionError("opened a refused URL")

    weights = RemoteWeights(url=url, sha256="0" * 64, filename="w.h5")
    with pytest.raises(ValueError, match="http"):
        fetch(weights, cache_dir=tmp_path / "cache", opener=opener)
    assert not (tmp_path / "cache").exists()


def test_redirect_to_a_non_http_url_is_refused(server, tmp_path):
    with pytest.raises(WeightsError):
        fetch(remote(server, "/redirect-to-file"), cache_dir=tmp_path, progress=False)
    assert_empty(tmp_path)


# --- RemoteWeights and helpers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "at least one checksum"),
        ({"sha256": "ABC"}, "sha256 must be 64 lowercase hex"),
        ({"sha256": "A" * 64}, "sha256 must be 64 lowercase hex"),
        ({"md5": "0" * 31}, "md5 must be 32 lowercase hex"),
        ({"sha256": "0" * 64, "filename": "../escape.h5"}, "plain file name"),
        ({"sha256": "0" * 64, "filename": "sub/w.h5"}, "plain file name"),
        ({"sha256": "0" * 64, "size": -1}, "size"),
    ],
)
def test_remote_weights_validation(kwargs, match):
    arguments = {"url": "https://example.com/w.h5", "filename": "w.h5", **kwargs}
    with pytest.raises(ValueError, match=match) as caught:
        RemoteWeights(**arguments)
    assert "Received: " in str(caught.value)


def test_sha256_file_matches_hashlib_for_any_chunk_size(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert sha256_file(path, chunk=7) == sha256_file(path) == hashlib.sha256(PAYLOAD).hexdigest()


def test_default_cache_dir_is_under_home():
    assert default_cache_dir() == Path.home() / ".cache" / "wanderlens" / "weights"


# --- resolve_weights ----------------------------------------------------------------------------------------


def test_resolve_none_means_random_init(tmp_path):
    assert resolve_weights(None, remote=None, cache_dir=tmp_path) is None


def test_resolve_existing_path(tmp_path):
    path = tmp_path / "mine.h5"
    path.write_bytes(b"anything: a hand-supplied file is not checksummed")
    assert resolve_weights(path, remote=None, cache_dir=tmp_path / "cache") == path
    assert resolve_weights(str(path), remote=None, cache_dir=tmp_path / "cache") == path


@pytest.mark.parametrize("keyword", ["default", "places365"])
def test_resolve_default_and_alias_fetch_the_release(server, requests, tmp_path, keyword):
    path = resolve_weights(
        keyword,
        remote=remote(server, "/good.bin"),
        cache_dir=tmp_path,
        aliases=("places365",),
        progress=False,
    )
    assert path == tmp_path / "w.h5"
    assert path.read_bytes() == PAYLOAD
    assert requests == ["/good.bin"]


def test_resolve_default_without_a_release(tmp_path):
    with pytest.raises(ValueError, match="Received: weights='default'"):
        resolve_weights("default", remote=None, cache_dir=tmp_path)


def test_resolve_missing_path(tmp_path):
    missing = tmp_path / "nope.h5"
    with pytest.raises(WeightsError, match="no such weights file") as caught:
        resolve_weights(str(missing), remote=None, cache_dir=tmp_path)
    assert str(caught.value).endswith(f"Received: weights={str(missing)!r}")


def test_resolve_path_named_like_the_keyword_is_a_path(tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        resolve_weights(Path("default"), remote=None, cache_dir=tmp_path)

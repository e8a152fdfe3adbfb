"""What every benchmark shares: the machine/commit header, a timing helper, and a plain-text table printer."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from recommender.refine import WHITENING_DIMS

REPO = Path(__file__).resolve().parent.parent
# The dev photos beside the checkout; WANDERLENS_SHARED_DATASETS points elsewhere (a worktree, or an empty folder to
# see what runs without them). The tests read the same.
SHARED_DATASETS = Path(os.environ.get("WANDERLENS_SHARED_DATASETS", REPO.parent / "shared" / "datasets"))
COLOUR_BINS = 128
FINGERPRINT_DIM = 2 * 1280 + COLOUR_BINS  # the default fingerprint: 2 bands of efficientnet-lite0 + colour
SEARCHED_DIM = WHITENING_DIMS + COLOUR_BINS  # what the index searches by default: the whitening's kept directions


def quiet_tensorflow() -> None:
    """Keep TensorFlow's start-up chatter off stderr; call before anything imports it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# ------------------------------------------------------------------------------------------------ header


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    return None


def available_memory_bytes() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def git_commit() -> str:
    """Short HEAD, plus '+dirty' when the working tree has changes (read-only git commands only)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if status else "")


def _version(*distributions: str) -> str:
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "-"


def keras_backend() -> str:
    """The backend Keras runs on, without importing Keras (and TensorFlow) just to ask."""
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    return os.environ.get("KERAS_BACKEND", "tensorflow") + " (not loaded)"


def print_header(title: str) -> None:
    """Machine, software and commit, so a figure can be traced to where it was measured."""
    memory = memory_gib()
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"# {title}")
    print(f"machine : {cpu_model()}, {usable_cores()} cores" + (f", {memory:.0f} GiB RAM" if memory else ""))
    print(f"load    : {load} (1/5/15 min, at start)")
    print(
        f"software: python {platform.python_version()}, backend {keras_backend()}, "
        f"tensorflow {_version('tensorflow', 'tensorflow-cpu')}, keras {_version('keras')}, "
        f"numpy {_version('numpy')}"
    )
    print(f"commit  : {git_commit()}")
    print()


def print_load_after() -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load at end: {load} (1/5/15 min)")


# ------------------------------------------------------------------------------------------------ timing


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation, as numpy's default; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Timing:
    """Wall-clock samples of one operation, in milliseconds."""

    samples_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.samples_ms) if self.samples_ms else float("nan")

    @property
    def p95(self) -> float:
        return percentile(self.samples_ms, 95)

    @property
    def best(self) -> float:
        return min(self.samples_ms) if self.samples_ms else float("nan")


def time_it(fn: Callable[[], object], *, repeats: int, warmup: int = 2) -> Timing:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed, each call on its own."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - started))
    return Timing(tuple(samples))


# ------------------------------------------------------------------------------------------------ output


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Right-aligned columns (left-aligned first column); floats get 1-3 significant decimals."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        )

    print(line(headers))
    print(line(["-" * w for w in widths]))
    for row in cells:
        print(line(row))


def _cell(value: object) -> str:
    if isinstance(value, float):
        if value != value:  # nan
            return "-"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def verdict(value: float, target: float, *, higher_is_better: bool) -> str:
    """PASS/MISS against a target (informational: these runs share the machine with other work)."""
    if value != value:
        return "n/a"
    ok = value >= target if higher_is_better else value <= target
    return "PASS" if ok else "MISS"


def parse_sizes(text: str) -> list[int]:
    """'10k,100k,1M' -> [10000, 100000, 1000000]."""
    sizes = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1].lower(), 1)
        number = part[:-1] if scale != 1 else part
        try:
            sizes.append(int(float(number) * scale))
        except ValueError:
            raise ValueError(f"sizes are numbers with an optional k/M suffix. Received: {part!r}") from None
    return sizes


def size_label(count: int) -> str:
    if count >= 1_000_000 and count % 1_000_000 == 0:
        return f"{count // 1_000_000}M"
    if count >= 1_000 and count % 1_000 == 0:
        return f"{count // 1_000}k"
    return str(count)


def metric(value: float, digits: int = 2) -> str:
    """A number for the machine-readable last line ('nan' when not measured)."""
    return "nan" if value != value else f"{value:.{digits}f}"

"""Keeping `wanderlens up`'s children alive: restart what exits on its own, with back-off, until it loops.

A child (Redis, the worker, the playground, the bot) that exits while `up` is not stopping is restarted after a
pause that doubles with each recent crash. One that crashes ``crash_limit`` times within ``window_s`` is not
restarted again: the supervisor raises ``CrashLoop`` with which child, its last exit status and where its output
went, and `up` stops the rest. Each child's output is copied, line by line, to the terminal (prefixed with its
name) and to ``LOG_DIR/NAME.log``, so that a crash can be read after the fact.

Everything here runs on the caller's thread except the output copiers: ``subprocess.Popen`` must be called from
the thread that lives as long as `up`, because Linux sends the parent-death signal when the *thread* that
forked a child ends.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO

TAIL_LINES = 12


@dataclass(frozen=True)
class RestartPolicy:
    """When a child that exited is started again, and when `up` gives up on it."""

    first_delay_s: float = 1.0  # the first restart waits this long, so a crash cannot spin the CPU
    max_delay_s: float = 30.0  # ...doubling with each crash still inside the window, up to this
    crash_limit: int = 5  # this many crashes within window_s is a loop that restarting will not fix
    window_s: float = 300.0
    stop_timeout_s: float = 20.0  # SIGTERM, then SIGKILL after this long

    def delay_s(self, recent_crashes: int) -> float:
        """The pause before restarting a child that has crashed ``recent_crashes`` times within the window."""
        return min(self.max_delay_s, self.first_delay_s * 2 ** max(0, recent_crashes - 1))


@dataclass(frozen=True)
class ChildSpec:
    """How to start one child, and what else must happen when it dies."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    # Children whose state is bound to this one's and that are restarted with it (the bot keeps the
    # playground's update ids: after a new playground it would ignore every update until the ids caught up).
    restart_with: tuple[str, ...] = ()
    # Called with the dead process's pid and status before it is restarted (the worker's jobs are handed over).
    on_exit: Callable[[int, int], None] | None = None


class CrashLoop(RuntimeError):
    """A child kept crashing; the message says which, how it ended, and where its output is."""

    def __init__(self, message: str, *, name: str, status: int) -> None:
        super().__init__(message)
        self.name = name
        self.status = status


@dataclass
class _Child:
    spec: ChildSpec
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    copier: threading.Thread | None = None
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None
    last_status: int | None = None


def describe_status(status: int) -> str:
    """``3`` -> "status 3"; ``-9`` -> "status -9 (killed by SIGKILL)"."""
    if status >= 0:
        return f"status {status}"
    try:
        return f"status {status} (killed by {signal.Signals(-status).name})"
    except ValueError:
        return f"status {status} (killed by signal {-status})"


def _die_with_parent() -> None:
    # Children must not outlive `up` even if it is killed with SIGKILL: ask Linux to signal them.
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _copy_output(name: str, stream: IO[bytes], log_path: Path, echo: IO[str] | None) -> None:
    """Copy a child's output to its log file and, prefixed with its name, to the terminal, until it ends."""
    with log_path.open("ab") as log:
        for line in iter(stream.readline, b""):
            log.write(line)
            log.flush()
            if echo is not None:
                with contextlib.suppress(ValueError, OSError):
                    echo.write(f"{name:>10} | {line.decode(errors='replace').rstrip()}\n")
                    echo.flush()
    stream.close()


def tail(path: Path, lines: int = TAIL_LINES) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


class Supervisor:
    """Started children, restarted when they die, stopped last-first.

    ``clock`` is injectable so that tests can step through back-off without waiting for it.
    """

    def __init__(
        self,
        *,
        log_dir: Path,
        policy: RestartPolicy = RestartPolicy(),
        clock: Callable[[], float] = time.monotonic,
        say: Callable[[str], None] = print,
        echo: IO[str] | None = sys.stdout,
    ) -> None:
        self.policy = policy
        self.log_dir = log_dir
        self.clock = clock
        self.say = say
        self.echo = echo
        self.restarts = 0
        self._children: dict[str, _Child] = {}  # in start order; stopped in reverse

    # ------------------------------------------------------------------------------------------ lifecycle

    def start(self, spec: ChildSpec) -> subprocess.Popen[bytes]:
        """Start a new child now (its first start: a failure to exec raises)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        child = _Child(spec, self.log_dir / f"{spec.name}.log")
        self._children[spec.name] = child
        return self._launch(child)

    def process(self, name: str) -> subprocess.Popen[bytes] | None:
        child = self._children.get(name)
        return child.process if child is not None else None

    def log_path(self, name: str) -> Path:
        return self._children[name].log_path

    def check(self) -> None:
        """One round: notice children that exited, restart those whose pause is over. Raises CrashLoop."""
        now = self.clock()
        for child in list(self._children.values()):
            if child.process is not None and child.process.poll() is not None:
                self._exited(child, now)
        for child in self._children.values():
            if child.process is None and child.restart_at is not None and child.restart_at <= now:
                child.restart_at = None
                self.restarts += 1
                try:
                    self._launch(child)
                except OSError as error:  # its program is gone (uninstalled, moved): restarting cannot help
                    message = f"cannot restart {child.spec.name}: {error}"
                    raise CrashLoop(message, name=child.spec.name, status=child.last_status or 0) from error

    def run(self, stopping: Callable[[], bool], *, sleep: Callable[[float], None] = time.sleep) -> None:
        """Supervise until ``stopping()`` is true; raises CrashLoop."""
        while not stopping():
            self.check()
            sleep(0.2)

    def stop_all(self) -> None:
        """Stop every child, last started first, waiting for each; nothing is restarted afterwards."""
        for child in reversed(list(self._children.values())):
            child.restart_at = None
            self._stop(child)
        self._children.clear()

    # ------------------------------------------------------------------------------------------ internals

    def _launch(self, child: _Child) -> subprocess.Popen[bytes]:
        with child.log_path.open("a") as log:
            log.write(f"--- {datetime.now().isoformat(timespec='seconds')} starting {child.spec.name}\n")
        process = subprocess.Popen(
            list(child.spec.command),
            env=dict(child.spec.env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches `up` alone, which then stops the children in order
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        assert process.stdout is not None
        child.process = process
        child.copier = threading.Thread(
            target=_copy_output,
            args=(child.spec.name, process.stdout, child.log_path, self.echo),
            name=f"Supervisor:{child.spec.name}:output",
            daemon=True,
        )
        child.copier.start()
        self.say(f"started {child.spec.name} (pid {process.pid})")
        return process

    def _exited(self, child: _Child, now: float) -> None:
        assert child.process is not None
        pid, status = child.process.pid, int(child.process.returncode)
        self._finish_output(child)
        child.process, child.last_status = None, status
        child.crashes.append(now)
        while child.crashes and now - child.crashes[0] > self.policy.window_s:
            child.crashes.popleft()
        recent = len(child.crashes)
        if recent >= self.policy.crash_limit:
            raise CrashLoop(self._crash_loop_message(child, status), name=child.spec.name, status=status)
        if child.spec.on_exit is not None:
            try:
                child.spec.on_exit(pid, status)
            except Exception as error:  # a failed hook must not take supervision down with it
                self.say(f"after {child.spec.name} exited: {error}")
        delay = self.policy.delay_s(recent)
        child.restart_at = now + delay
        self.say(
            f"{child.spec.name} (pid {pid}) exited with {describe_status(status)}; restarting it in {delay:g}s "
            f"(crash {recent} of {self.policy.crash_limit} allowed within {self.policy.window_s:g}s; "
            f"its output: {child.log_path})"
        )
        for name in child.spec.restart_with:
            dependent = self._children.get(name)
            if dependent is not None and dependent.process is not None:
                self.say(f"restarting {name} with {child.spec.name}")
                self._stop(dependent)
                # A little after the child it depends on, which needs a moment to listen again.
                dependent.restart_at = child.restart_at + self.policy.first_delay_s

    def _crash_loop_message(self, child: _Child, status: int) -> str:
        lines = [
            f"giving up on {child.spec.name}: it exited {len(child.crashes)} times within "
            f"{self.policy.window_s:g}s, the last time with {describe_status(status)}. "
            f"Its output is in {child.log_path}; the last lines:"
        ]
        lines += [f"    {line}" for line in tail(child.log_path)]
        return "\n".join(lines)

    def _stop(self, child: _Child) -> None:
        process = child.process
        if process is None:
            return
        if process.poll() is None:
            self.say(f"stopping {child.spec.name}")
            process.terminate()
            try:
                process.wait(self.policy.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.say(f"{child.spec.name} did not stop in {self.policy.stop_timeout_s:g}s; killing it")
                process.kill()
                process.wait()
        self._finish_output(child)
        child.process = None

    def _finish_output(self, child: _Child) -> None:
        # The copier ends at the pipe's end of file; a grandchild holding the pipe open must not hang `up`.
        if child.copier is not None:
            child.copier.join(timeout=2)
            child.copier = None

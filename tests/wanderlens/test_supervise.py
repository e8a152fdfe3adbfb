"""The supervisor's policy with cheap real children (`python -c …`) and a clock the test moves by hand."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from wanderlens.supervise import ChildSpec, CrashLoop, RestartPolicy, Supervisor, describe_status

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]
CRASHER = [sys.executable, "-c", "import sys; print('boom: cannot start', flush=True); sys.exit(3)"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def said() -> list[str]:
    return []


@pytest.fixture
def supervisor(tmp_path: Path, clock: Clock, said: list[str]):
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=4.0, crash_limit=3, window_s=60.0, stop_timeout_s=5.0)
    made = Supervisor(log_dir=tmp_path / "logs", policy=policy, clock=clock, say=said.append, echo=None)
    yield made
    made.stop_all()


def spec(name: str, command: list[str], **extra: object) -> ChildSpec:
    return ChildSpec(name, command, {}, **extra)  # type: ignore[arg-type]


def wait_exit(supervisor: Supervisor, name: str) -> None:
    process = supervisor.process(name)
    assert process is not None
    process.wait(30)


def test_back_off_doubles_with_each_recent_crash_up_to_its_cap() -> None:
    policy = RestartPolicy(first_delay_s=1.0, max_delay_s=5.0)
    assert [policy.delay_s(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 5.0, 5.0]


def test_exit_statuses_are_described_with_the_signal_that_ended_them() -> None:
    assert describe_status(3) == "status 3"
    assert describe_status(-9) == "status -9 (killed by SIGKILL)"


def test_a_crashed_child_is_restarted_after_its_pause_and_the_others_keep_running(
    supervisor: Supervisor, clock: Clock, said: list[str]
) -> None:
    steady = supervisor.start(spec("steady", SLEEPER))
    first = supervisor.start(spec("crasher", CRASHER))
    wait_exit(supervisor, "crasher")

    supervisor.check()
    assert supervisor.process("crasher") is None  # waiting out its pause
    assert any("crasher" in line and "status 3" in line and "restarting it in 1s" in line for line in said)

    clock.now += 0.5
    supervisor.check()
    assert supervisor.process("crasher") is None

    clock.now += 0.5
    supervisor.check()
    second = supervisor.process("crasher")
    assert second is not None and second.pid != first.pid
    assert supervisor.process("steady") is steady and steady.poll() is None
    assert supervisor.restarts == 1


def test_a_crash_loop_gives_up_saying_which_child_how_it_ended_and_where_its_output_is(
    supervisor: Supervisor, clock: Clock
) -> None:
    supervisor.start(spec("crasher", CRASHER))
    starts = 1
    with pytest.raises(CrashLoop) as raised:
        for _ in range(10):
            wait_exit(supervisor, "crasher")
            supervisor.check()  # notices the exit (raises on the 3rd)
            clock.now += supervisor.policy.max_delay_s
            supervisor.check()  # starts it again
            starts += 1
    assert starts == supervisor.policy.crash_limit
    message = str(raised.value)
    assert raised.value.name == "crasher" and raised.value.status == 3
    assert "giving up on crasher" in message and "status 3" in message
    assert str(supervisor.log_path("crasher")) in message
    assert "boom: cannot start" in message  # the last lines of its output come with it


def test_crashes_further_apart_than_the_window_never_add_up_to_a_loop(
    supervisor: Supervisor, clock: Clock, said: list[str]
) -> None:
    supervisor.start(spec("crasher", CRASHER))
    for _ in range(supervisor.policy.crash_limit + 2):
        wait_exit(supervisor, "crasher")
        supervisor.check()
        clock.now += supervisor.policy.window_s + 1
        supervisor.check()
    restarts = [line for line in said if "restarting it in" in line]
    assert len(restarts) == supervisor.policy.crash_limit + 2
    assert all("restarting it in 1s" in line for line in restarts)  # the pause never grew


def test_exit_hook_gets_the_dead_pid_and_dependents_restart_with_their_parent(
    supervisor: Supervisor, clock: Clock
) -> None:
    exits: list[tuple[int, int]] = []
    parent = supervisor.start(spec("parent", CRASHER, restart_with=("dependent",), on_exit=lambda *a: exits.append(a)))
    dependent = supervisor.start(spec("dependent", SLEEPER))
    wait_exit(supervisor, "parent")

    supervisor.check()
    assert exits == [(parent.pid, 3)]
    assert dependent.poll() is not None  # stopped with its parent...
    clock.now += supervisor.policy.first_delay_s
    supervisor.check()
    assert supervisor.process("parent") is not None
    assert supervisor.process("dependent") is None  # ...started a moment after it
    clock.now += supervisor.policy.first_delay_s
    supervisor.check()
    restarted = supervisor.process("dependent")
    assert restarted is not None and restarted.pid != dependent.pid


def test_stop_all_stops_last_started_first_and_leaves_nothing_running(supervisor: Supervisor, said: list[str]) -> None:
    processes = [supervisor.start(spec(name, SLEEPER)) for name in ("redis", "worker", "bot")]
    supervisor.stop_all()
    assert all(p.poll() is not None for p in processes)
    stops = [line for line in said if line.startswith("stopping")]
    assert stops == ["stopping bot", "stopping worker", "stopping redis"]


def test_a_child_that_ignores_sigterm_is_killed(tmp_path: Path, said: list[str]) -> None:
    ignore = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True)"
    stubborn = [sys.executable, "-c", ignore + "; time.sleep(120)"]
    supervisor = Supervisor(log_dir=tmp_path, policy=RestartPolicy(stop_timeout_s=0.5), say=said.append, echo=None)
    process = supervisor.start(spec("stubborn", stubborn))
    while "ready" not in supervisor.log_path("stubborn").read_text():  # its handler is in place
        assert process.poll() is None
        time.sleep(0.05)
    supervisor.stop_all()
    assert process.poll() == -signal.SIGKILL
    assert any("did not stop" in line and "killing it" in line for line in said)


def test_every_line_a_child_writes_goes_to_its_log_file(supervisor: Supervisor) -> None:
    supervisor.start(spec("talker", [sys.executable, "-c", "print('one'); print('two')"]))
    wait_exit(supervisor, "talker")
    supervisor.check()  # notices the exit and waits for the output to be copied
    lines = supervisor.log_path("talker").read_text().splitlines()
    assert lines[-2:] == ["one", "two"]


def test_a_child_whose_program_is_gone_is_not_restarted_again_and_again(
    supervisor: Supervisor, clock: Clock, tmp_path: Path
) -> None:
    program = tmp_path / "crasher.py"
    program.write_text("import sys; sys.exit(3)\n")
    script = tmp_path / "run"
    script.write_text(f"#!/bin/sh\nexec {sys.executable} {program}\n")
    script.chmod(0o755)
    supervisor.start(spec("crasher", [str(script)]))
    wait_exit(supervisor, "crasher")
    supervisor.check()
    script.unlink()  # uninstalled while `up` runs
    clock.now += supervisor.policy.max_delay_s
    with pytest.raises(CrashLoop, match="cannot restart crasher"):
        supervisor.check()

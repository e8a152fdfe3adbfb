"""`up`'s supervision with plain child commands instead of Redis, the model and the bot, for the tests.

    python -m tests.wanderlens.supervised LOG_DIR NAME=PYTHON_CODE [NAME=PYTHON_CODE …]

Starts each child (``python -c PYTHON_CODE``) in order, then supervises them as `wanderlens up` does, with short
pauses and a crash limit of 3, until Ctrl-C, SIGTERM or a crash loop; the exit status is `up`'s.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from wanderlens.supervise import ChildSpec, RestartPolicy, Supervisor
from wanderlens.up import _say, install_stop_handlers, supervise

POLICY = RestartPolicy(first_delay_s=0.05, max_delay_s=0.2, crash_limit=3, window_s=60, stop_timeout_s=10)


def main(argv: list[str]) -> int:
    stopping = install_stop_handlers()
    supervisor = Supervisor(log_dir=Path(argv[0]), policy=POLICY, say=_say)
    try:
        for argument in argv[1:]:
            name, code = argument.split("=", 1)
            supervisor.start(ChildSpec(name, [sys.executable, "-c", code], dict(os.environ)))
        _say("press Ctrl-C to stop everything")
        return supervise(supervisor, stopping)
    finally:
        supervisor.stop_all()
        _say("stopped")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The worker process's own set-up, checked in a fresh interpreter (it changes process-wide state)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import REPO

_REPORT_BLAS_THREADS = """
import json, threadpoolctl
from worker.main import one_blas_thread

def blas_threads():
    return [i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]

before = blas_threads()
one_blas_thread()
print(json.dumps({"before": before, "after": blas_threads()}))
"""


def test_worker_runs_numpy_blas_on_one_thread() -> None:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "4"}
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_BLAS_THREADS], cwd=REPO, env=env, capture_output=True, text=True, check=True
    )
    threads = json.loads(result.stdout.strip().splitlines()[-1])
    # OpenBLAS caps the request at the core count: on 2+ cores the limit is then not simply the default.
    assert threads["before"] and max(threads["before"]) > 1, "needs a machine with at least 2 cores"
    assert threads["after"] == [1] * len(threads["after"])

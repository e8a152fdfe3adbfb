"""The worker process's own set-up, checked in a fresh interpreter (it changes process-wide state)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from worker.priority import NETWORK_NICENESS

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


_REPORT_THREAD_NICENESS = """
import asyncio, json, os, sys
from worker.main import load_at_network_priority
from worker.settings import WorkerSettings

extractor, index = asyncio.run(load_at_network_priority(WorkerSettings(index_dir=sys.argv[1])))
niceness = {}
for task in os.listdir("/proc/self/task"):
    with open(f"/proc/self/task/{task}/stat") as stat:
        fields = stat.read()
    name, after = fields[fields.index("(") + 1 : fields.rindex(")")], fields[fields.rindex(")") + 2 :].split()
    niceness.setdefault(name, []).append(int(after[16]))
print(json.dumps({"main": os.getpriority(os.PRIO_PROCESS, 0), "threads": niceness}))
"""


def test_the_network_s_thread_pools_start_at_the_network_s_priority(travel_index: Path) -> None:
    # TensorFlow starts its pools in the thread that first runs it; they must give way to the event loop.
    result = subprocess.run(
        [sys.executable, "-c", _REPORT_THREAD_NICENESS, str(travel_index)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    compute = report["threads"].get("tf_Compute", [])
    assert compute, f"no TensorFlow compute threads found: {sorted(report['threads'])}"
    assert set(compute) == {report["main"] + NETWORK_NICENESS}

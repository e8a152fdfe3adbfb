"""The worker's settings (read once in ``wanderlens worker``) and the plain options its loop runs with.

No TensorFlow here: bad settings must fail before the model is loaded.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from contract.settings import RedisSettings
from recommender.ann import IndexKind
from recommender.download import default_cache_dir
from recommender.fingerprint import DEFAULT_BACKBONE
from recommender.runtimes import AUTO, RUNTIMES, check_runtime


@dataclass(frozen=True)
class WorkerOptions:
    """How the loop batches, retries and keeps state; the defaults are the settings' defaults."""

    consumer: str = "worker"
    batch_size: int = 32
    # 0: a lone photo goes at once. Photos read together are batched anyway, and those that arrive during a forward
    # pass share the next one; waiting 2 ms for company cost a lone photo about 2 ms and batched nothing more
    # (bench.worker_load, README "Benchmarks").
    batch_wait_ms: float = 0.0
    max_deliveries: int = 3
    claim_idle_ms: int = 30_000
    result_list_size: int = 50
    result_ttl_s: int = 7 * 24 * 3600
    query_cache_ttl_s: int = 7 * 24 * 3600
    heartbeat_s: float = 5.0
    reload_poll_s: float = 5.0
    search: IndexKind = "auto"


_DEFAULTS = WorkerOptions()


class WorkerSettings(RedisSettings):
    """The worker: model, index, batching and queue limits."""

    index_dir: Path = Field(Path("data/index"), description="Folder of the catalog index (`wanderlens index --out`).")
    backbone: str = Field(DEFAULT_BACKBONE, description="Feature extractor; must match the index's.")
    weights: str = Field("default", description="'default' (the backbone's release) or a local weights file.")
    weights_cache: Path = Field(default_factory=default_cache_dir, description="Where downloaded weights are kept.")
    runtime: str = Field(
        AUTO,
        description=f"{AUTO} (the index's own), {', '.join(RUNTIMES[:-1])} or {RUNTIMES[-1]}; must match the index's.",
    )
    batch_size: int = Field(_DEFAULTS.batch_size, ge=1, le=256, description="Most photos in one forward pass.")
    batch_wait_ms: float = Field(
        _DEFAULTS.batch_wait_ms, ge=0, le=1000, description="How long a partial batch waits for more photos (0: never)."
    )
    max_deliveries: int = Field(
        _DEFAULTS.max_deliveries, ge=1, le=20, description="Deliveries before a job goes to the dead-letter stream."
    )
    claim_idle_ms: int = Field(
        _DEFAULTS.claim_idle_ms, ge=1000, description="A job unacknowledged this long is taken over from a dead worker."
    )
    result_list_size: int = Field(
        _DEFAULTS.result_list_size, ge=5, le=500, description="Ranked results kept per chat for /more."
    )
    result_ttl_s: int = Field(
        _DEFAULTS.result_ttl_s, ge=60, description="How long result lists and shown sets are kept."
    )
    query_cache_ttl_s: int = Field(
        _DEFAULTS.query_cache_ttl_s, ge=0, description="How long query fingerprints are cached."
    )
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus metrics port (0: off).")
    heartbeat_s: float = Field(
        _DEFAULTS.heartbeat_s, gt=0, le=60, description="Heartbeat interval for `wanderlens worker --health`."
    )
    reload_poll_s: float = Field(
        _DEFAULTS.reload_poll_s, gt=0, le=3600, description="How often the worker looks for a new index version."
    )
    consumer: str = Field(
        default_factory=lambda: socket.gethostname(), description="This worker's name in the consumer group."
    )
    search: IndexKind = Field(
        _DEFAULTS.search,
        description="'auto' (the index's approximate search when it has one, exact on a GPU), 'exact', 'ivfpq' "
        "or 'hnsw'.",
    )

    @field_validator("runtime")
    @classmethod
    def _a_runtime(cls, value: str) -> str:
        """One of `recommender.runtimes`' names; a retired one says what replaced it."""
        return check_runtime(value)

    def options(self) -> WorkerOptions:
        """The loop's options; the consumer name gets the process id, so that two workers on a host differ."""
        return WorkerOptions(
            consumer=f"{self.consumer}-{os.getpid()}",
            batch_size=self.batch_size,
            batch_wait_ms=self.batch_wait_ms,
            max_deliveries=self.max_deliveries,
            claim_idle_ms=self.claim_idle_ms,
            result_list_size=self.result_list_size,
            result_ttl_s=self.result_ttl_s,
            query_cache_ttl_s=self.query_cache_ttl_s,
            heartbeat_s=self.heartbeat_s,
            reload_poll_s=self.reload_poll_s,
            search=self.search,
        )

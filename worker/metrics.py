"""The worker's Prometheus metrics, in a registry of their own (no process-global state)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server

LATENCY_BUCKETS = (0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


@dataclass
class WorkerMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.jobs = Counter("wanderlens_jobs", "Jobs finished, by kind and outcome", ["kind", "outcome"], registry=r)
        self.latency = Histogram(
            "wanderlens_job_latency_seconds",
            "From enqueue by the bot to the reply",
            ["kind"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "wanderlens_batch_size", "Photos per forward pass", buckets=BATCH_BUCKETS, registry=r
        )
        self.forward_passes = Counter("wanderlens_forward_passes", "Forward passes of the network", registry=r)
        self.stage_seconds = Histogram(
            "wanderlens_stage_seconds", "Time per batch stage", ["stage"], buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue_depth = Gauge("wanderlens_queue_depth", "Jobs in the stream (waiting or in flight)", registry=r)
        self.dead_letters = Counter("wanderlens_dead_letters", "Jobs given up after too many deliveries", registry=r)
        self.model = Info("wanderlens_model", "Backbone and index in use", registry=r)

    def serve(self, port: int) -> None:
        """Expose /metrics on ``port`` (0 disables it)."""
        if port:
            start_http_server(port, registry=self.registry)

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        """A sample's current value, for health summaries and tests."""
        return self.registry.get_sample_value(name, labels or {}) or 0.0

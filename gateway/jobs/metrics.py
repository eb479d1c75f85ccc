"""The job metrics, in the worker process's registry (the model label bounded by
``GATEWAY_METRICS_MAX_MODELS``: ``gateway.telemetry.cardinality``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS, ModelLabels

_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class JobMetrics:
    """Queue depth (sampled from the store by the workers, not counted per request), the
    time a job waited and ran, how jobs ended, and what each run came to."""

    def __init__(self, registry: CollectorRegistry, models: ModelLabels | None = None) -> None:
        self.models = models if models is not None else ModelLabels(DEFAULT_MAX_MODELS)
        self.queued = Gauge(
            "gateway_jobs_queued",
            "Jobs waiting to run, per model (sampled from the store by the job workers).",
            ["model"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.wait = Histogram(
            "gateway_job_queue_wait_seconds",
            "From submit (or being put back) to a run's start.",
            ["model"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.run = Histogram(
            "gateway_job_run_seconds",
            "A run's time, from its start to its outcome.",
            ["model"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self.outcomes = Counter(
            "gateway_jobs_finished",
            "Jobs done, by outcome: succeeded, failed, cancelled, dead_lettered.",
            ["model", "outcome"],
            registry=registry,
        )
        self.attempts = Counter(
            "gateway_job_runs",
            "Runs of jobs, by result: succeeded, failed, retried (backoff), delayed (a rate "
            "limit or the tenant's running cap put it back; not an attempt).",
            ["model", "result"],
            registry=registry,
        )

    def model(self, name: str) -> str:
        """The ``model`` label of a job of model ``name`` (``other`` past the cap)."""
        return self.models.label(name)

    def sample_depth(self, depth: dict[str, int]) -> None:
        """Set ``gateway_jobs_queued`` to ``depth`` (jobs waiting per model): the models past
        the cap are added up under ``other``."""
        queued: dict[str, int] = {}
        for name, count in depth.items():
            label = self.model(name)
            queued[label] = queued.get(label, 0) + count
        self.queued.clear()
        for label, count in queued.items():
            self.queued.labels(label).set(count)

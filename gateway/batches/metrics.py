"""The batch files' metrics, in the worker process's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class BatchFileMetrics:
    """Batches by how they ended, and the lines fed to the job queue."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.finished = Counter(
            "gateway_batches_finished",
            "Batch files done, by outcome: completed, cancelled.",
            ["outcome"],
            registry=registry,
        )
        self.fed = Counter(
            "gateway_batch_lines_fed",
            "Lines of batch files submitted as jobs (by the feeders).",
            registry=registry,
        )

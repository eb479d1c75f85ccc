"""routes.yaml's ``jobs:`` section: the queue's limits and the workers' pace."""

from __future__ import annotations

from pydantic import Field

from gateway.config.types import Duration, Strict


class JobsConfig(Strict):
    """Async jobs (``Prefer: respond-async``). Every ``gateway serve`` process and every
    ``gateway worker`` runs job workers with these settings (read again on reload)."""

    enabled: bool = Field(
        default=True, description="Accept Prefer: respond-async (else it is ignored)."
    )
    max_queued_per_tenant: int = Field(
        default=1000, ge=1, description="Queued jobs a tenant may have; beyond, 429."
    )
    max_attempts: int = Field(
        default=3,
        ge=1,
        description="Runs of a job whose backend answers 503/504 or cannot be reached.",
    )
    retry_backoff: Duration = Field(
        default=1.0, description="Wait before the second run; doubled for each further one."
    )
    max_deliveries: int = Field(
        default=5,
        ge=1,
        description="Times a job is handed to a worker that dies on it before it is dead-lettered.",
    )
    visibility_timeout: Duration = Field(
        default=60.0,
        description="A job whose worker stopped renewing its claim this long is taken over.",
    )
    result_ttl: Duration = Field(
        default=86400.0, description="How long a finished job and its result are kept."
    )
    concurrency: int = Field(default=16, ge=1, description="Jobs run at once per process.")
    tenant_concurrency: int = Field(
        default=4, ge=1, description="Jobs of one tenant run at once per process."
    )
    poll_interval: Duration = Field(
        default=0.2,
        description="How often the batch feeder goes round while batch files are active, and "
        "the wait before a job put back for tenant_concurrency runs again. Idle workers do not "
        "poll: a new job wakes one at once, on any replica.",
    )
    max_batch_lines: int = Field(
        default=50_000, ge=1, description="Lines a batch file (POST /batches) may have."
    )
    max_batch_bytes: int = Field(
        default=100 * 1024 * 1024,
        ge=1,
        description="Bytes a batch file may have (after inflating Content-Encoding); beyond, 413.",
    )
    batch_concurrency: int = Field(
        default=8,
        ge=1,
        description="Jobs of one tenant's batch files queued or running at once; the rest of "
        "their lines wait with the batch, not in the queue.",
    )

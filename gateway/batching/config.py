"""A model version's ``batching:`` section in routes.yaml.

```yaml
models:
  scorer:
    versions:
      "1":
        backend: triton
        batching:
          max_batch_size: 32              # rows per batch at most
          max_delay: 2ms                  # the first request waits this long for others
          max_queue: 1024                 # requests waiting at most (then 503 overloaded)
          max_in_flight_per_replica: 2    # batches sent and not yet answered, per replica
```
"""

from __future__ import annotations

from pydantic import Field

from gateway.config.types import Duration, Strict

MAX_DELAY_LIMIT = 10.0  # seconds: past this a caller is better served by an async job


class BatchingSpec(Strict):
    """Opt-in gateway-side batching for one model version (``gateway.batching``)."""

    max_batch_size: int = Field(
        ge=2,
        le=65536,
        description="Rows (first dimension) in one batch at most; a request with more goes alone.",
    )
    max_delay: Duration = Field(
        default=0.005,
        le=MAX_DELAY_LIMIT,
        description="How long the first request of a batch waits for others before it is sent.",
    )
    max_queue: int = Field(
        default=1024,
        ge=1,
        description="Requests waiting for a batch at most; beyond, 503 overloaded.",
    )
    max_in_flight_per_replica: int = Field(
        default=2,
        ge=1,
        description="Batches of this version in flight per available replica; more wait queued.",
    )

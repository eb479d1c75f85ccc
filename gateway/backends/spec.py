"""The routes.yaml keys every backend has; each adapter's own spec extends :class:`BackendSpec`.

```yaml
backends:
  triton:
    kind: triton                 # the adapter registry's name (gateway.backends.ADAPTERS)
    urls: ["http://10.0.0.5:8000", "http://10.0.0.6:8000"]
    timeout: 30s                 # per try
    retries: {attempts: 2, budget: 20%}
    health: {interval: 5s, unhealthy_after: 2}
    outlier: {consecutive_failures: 5, ejection: 10s}
```
"""

from __future__ import annotations

from pydantic import Field

from gateway.config.types import URL, Duration, Ratio, Strict


class HealthCheck(Strict):
    """Active health checks, using each server kind's real readiness probe."""

    interval: Duration = 5.0
    timeout: Duration = 1.0
    unhealthy_after: int = Field(default=2, ge=1, description="Failed probes before ejection.")
    healthy_after: int = Field(default=1, ge=1, description="Good probes before readmission.")


class OutlierDetection(Strict):
    """Passive ejection of a replica after consecutive failures seen on live traffic."""

    consecutive_failures: int = Field(default=5, ge=1)
    ejection: Duration = Field(default=10.0, description="Base ejection time, grows per repeat.")
    max_ejected: Ratio = Field(default=0.5, description="Never eject more than this share.")


class Retries(Strict):
    """Retries on another replica, only where safe (connect errors, 503 from an idle replica)."""

    attempts: int = Field(default=2, ge=1, le=10, description="Tries in all, the first included.")
    budget: Ratio = Field(default=0.2, description="Retries allowed as a share of requests.")
    min_per_second: float = Field(default=3.0, ge=0, description="Retries always allowed.")


class BackendSpec(Strict):
    """One backend: its kind, its replicas and how they are called and watched."""

    kind: str
    urls: list[URL] = Field(min_length=1, description="Replica base URLs.")
    timeout: Duration = Field(default=30.0, description="Per-try timeout.")
    connect_timeout: Duration = 1.0
    deadline: Duration | None = Field(
        default=None, description="Overall deadline including retries (default: 2 × timeout)."
    )
    max_in_flight: int = Field(default=1024, ge=1, description="Circuit breaker: cap per backend.")
    retries: Retries = Retries()
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()

    @property
    def overall_deadline(self) -> float:
        return self.deadline if self.deadline is not None else 2 * self.timeout

    def replica_urls(self) -> list[tuple[str, str | None]]:
        """Each replica's URL and, where the kind has one, its separate management URL."""
        return [(url, None) for url in self.urls]

"""The traffic keys of a model in routes.yaml: stickiness, shadow traffic, progressive rollout.

```yaml
models:
  fraud:
    versions: {"1": {...}, "2": {...}, "3": {...}}
    default: "1"
    traffic: {"1": 90, "2": 10}        # the weighted split (gateway.config)
    sticky: {by: tenant}                # tenant | api_key | header | cookie (+ name)
    shadow: {version: "3", share: 10%, tolerance: 1e-4, queue: 1000}
    rollout:
      canary: "2"                       # stable: the default version unless named
      steps: [5, 25, 50, 100]           # canary share in percent, one step per interval
      interval: 1m
      gates: {max_error_rate: 1%, max_p99: 500ms, max_p99_ratio: 1.5, min_requests: 100}
```
"""

from __future__ import annotations

import itertools
from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from gateway.config.types import Duration, Ratio, Strict


class Sticky(Strict):
    """The same caller gets the same version while the weights stay; a weight change moves
    as few callers as it must (weighted rendezvous hashing)."""

    by: Literal["tenant", "api_key", "header", "cookie"] = Field(
        description="What identifies a caller."
    )
    name: str | None = Field(default=None, description="The header or cookie name.")

    @model_validator(mode="after")
    def _name_when_needed(self) -> Self:
        if self.by in ("header", "cookie") and not self.name:
            raise ValueError(f"sticky by {self.by} needs a name")
        if self.by in ("tenant", "api_key") and self.name:
            raise ValueError(f"sticky by {self.by} takes no name")
        return self


class Shadow(Strict):
    """A share of the requests mirrored, after the caller's answer, to another version, and
    the two answers compared. The caller's response, latency and errors are never affected."""

    version: str = Field(description="The version that receives the copies.")
    share: Ratio = Field(default=1.0, description="Share of requests mirrored: '10%' or 0.1.")
    tolerance: float = Field(
        default=1e-6, ge=0, description="Numbers agree when |a - b| <= tolerance * max(1, |a|)."
    )
    queue: int = Field(default=1000, ge=1, description="Copies waiting at most; more are dropped.")

    @field_validator("version", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class Gates(Strict):
    """What a rollout step must show before the canary gets more traffic."""

    max_error_rate: Ratio = Field(default=0.01, description="Canary 5xx share, e.g. '1%'.")
    max_p99: Duration | None = Field(default=None, description="Canary p99 latency ceiling.")
    max_p99_ratio: float | None = Field(
        default=None, gt=0, description="Canary p99 at most this times the stable version's."
    )
    min_requests: int = Field(
        default=100, ge=1, description="Canary requests a step needs before it is judged."
    )


class Rollout(Strict):
    """A progressive rollout: the canary's share grows step by step while the gates hold, and
    falls back to 0 (rolled back) when one fails."""

    canary: str = Field(description="The version being rolled out.")
    stable: str | None = Field(default=None, description="The version it replaces (default).")
    steps: list[float] = Field(
        default=[5, 25, 50, 100], min_length=1, description="Canary shares in percent."
    )
    interval: Duration = Field(default=60.0, description="How long each step lasts at least.")
    gates: Gates = Gates()

    @field_validator("canary", "stable", mode="before")
    @classmethod
    def _as_text(cls, value: object) -> object:
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("steps")
    @classmethod
    def _increasing_to_100(cls, steps: list[float]) -> list[float]:
        if any(not 0 < s <= 100 for s in steps):
            raise ValueError("every step is a share in percent, above 0 and at most 100")
        if any(b <= a for a, b in itertools.pairwise(steps)):
            raise ValueError("steps must increase")
        if steps[-1] != 100:
            raise ValueError("the last step must be 100")
        return steps

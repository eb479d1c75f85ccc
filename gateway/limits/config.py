"""routes.yaml's rate plans and limits.

Rates are ``"<count>/<unit>"``: ``10/s``, ``600/min``, ``1000/h``, ``10000/day``,
``1000000/month`` (a month is 30 days; windows are aligned to UTC epoch multiples).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema, model_validator

from gateway.config.types import Duration, Strict

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute|h|hour|d|day|month)\s*$")
_PER = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "m": 60.0, "min": 60.0, "minute": 60.0,
    "h": 3600.0, "hour": 3600.0, "d": 86400.0, "day": 86400.0, "month": 30 * 86400.0,
}  # fmt: skip


def parse_rate(value: Any) -> Any:
    """``"10/s"`` → (10.0, 1.0): a count per number of seconds."""
    if isinstance(value, str):
        match = _RATE.match(value)
        if match and float(match.group(1)) > 0:
            return (float(match.group(1)), _PER[match.group(2)])
    if isinstance(value, tuple):
        return value
    raise ValueError(f"bad rate {value!r}: use e.g. '10/s', '600/min', '10000/day'")


Rate = Annotated[
    tuple[float, float],
    BeforeValidator(parse_rate),
    WithJsonSchema(
        {"type": "string", "pattern": _RATE.pattern, "description": "e.g. '10/s', '10000/day'"}
    ),
]


class LimitSpec(Strict):
    """A token bucket: ``rate`` refills, ``burst`` is the capacity (default: one second's worth)."""

    rate: Rate
    burst: int | None = Field(default=None, ge=1)

    @property
    def per_second(self) -> float:
        return self.rate[0] / self.rate[1]

    @property
    def capacity(self) -> float:
        return float(self.burst) if self.burst is not None else max(1.0, self.per_second)


class Plan(Strict):
    """A tenant's plan: a rate, quotas over longer windows, in-flight cap, a per-key rate."""

    rate: Rate | None = None
    burst: int | None = Field(default=None, ge=1)
    quota: list[Rate] = Field(default=[], description="Fixed-window quotas, e.g. ['10000/day'].")
    concurrency: int | None = Field(default=None, ge=1, description="Requests in flight.")
    per_key: LimitSpec | None = Field(default=None, description="A bucket for each API key.")

    @model_validator(mode="after")
    def _burst_needs_rate(self) -> Plan:
        if self.burst is not None and self.rate is None:
            raise ValueError("burst needs a rate")
        return self

    def bucket(self) -> LimitSpec | None:
        return LimitSpec(rate=self.rate, burst=self.burst) if self.rate is not None else None


class RateLimits(Strict):
    failure_mode: Literal["fail_open", "fail_closed"] = Field(
        default="fail_open",
        description="When the store does not answer: admit on an in-process bucket, or 503.",
    )
    store_timeout: Duration = Field(
        default=0.25,
        description="Give up on the store after this (a refused connection fails at once).",
    )
    default_plan: str | None = Field(default=None, description="For callers without a plan.")
    anonymous: LimitSpec | None = Field(
        default=None, description="Per client IP, for calls without credentials."
    )

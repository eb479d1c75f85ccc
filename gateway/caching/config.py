"""A model's ``cache:`` section in routes.yaml."""

from __future__ import annotations

from pydantic import Field

from gateway.config.types import Duration, Strict


class CacheSpec(Strict):
    """A model's response cache (the model must be declared deterministic)."""

    ttl: Duration
    shared: bool = Field(default=False, description="Share entries between tenants.")
    max_entry_bytes: int = Field(default=1024 * 1024, ge=1)
    stale_if_error: Duration | None = Field(
        default=None, description="Serve an expired entry this long if the backend fails."
    )
    lock: Duration = Field(default=5.0, description="How long one miss holds others back.")

"""The Redis store's key names, and what a Redis outage looks like to it (503)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

from redis import exceptions as rx

from gateway.store.base import StoreUnavailable

logger = logging.getLogger("gateway.store.redis")

# What "Redis is unavailable" looks like; anything else (a wrong type, a script bug) is a bug.
UNAVAILABLE: Final = (
    rx.ConnectionError,
    rx.TimeoutError,
    rx.ClusterDownError,
    rx.TryAgainError,
    rx.ReadOnlyError,
)


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Every Redis key and channel name the store uses, under ``prefix``.

    A prefix may carry a hash tag of its own (``{gw}:``), which puts every key in one slot.
    """

    prefix: str

    def __post_init__(self) -> None:
        start = self.prefix.find("{")
        end = self.prefix.find("}", start + 1)
        if start >= 0 and end <= start + 1:
            raise ValueError(
                f"store prefix {self.prefix!r}: a '{{' must close a non-empty hash tag within "
                "the prefix, or the tenant keys of one Lua call could land in different slots"
            )

    def tenants(self) -> str:
        return f"{self.prefix}tenants"

    def tenant(self, name: str) -> str:
        return f"{self.prefix}{{t:{name}}}:tenant"

    def tenant_keys(self, name: str) -> str:
        return f"{self.prefix}{{t:{name}}}:keys"

    def key(self, key_id: str) -> str:
        return f"{self.prefix}key:{key_id}"

    def webhook_secret(self, tenant: str) -> str:
        return f"{self.prefix}{{t:{tenant}}}:webhook_secret"

    def webhooks(self, part: str) -> str:
        """The webhook queue's keys (``due``, ``records``, ``claims``, ``dead``): one hash tag,
        so each Lua call's keys are in one slot."""
        return f"{self.prefix}{{webhooks}}:{part}"

    def session(self, session_id: str) -> str:
        return f"{self.prefix}session:{session_id}"

    def idempotency(self, key: str) -> str:
        return f"{self.prefix}idem:{key}"

    def audit(self) -> str:
        return f"{self.prefix}audit"

    def channel(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def lease(self, name: str) -> str:
        return f"{self.prefix}lease:{name}"

    def rollouts(self) -> str:
        """The set of every model that has a rollout state."""
        return f"{self.prefix}rollouts"

    def rollout_state(self, model: str) -> str:
        return f"{self.prefix}{{rollout:{model}}}:state"

    def rollout_events(self, model: str) -> str:
        return f"{self.prefix}{{rollout:{model}}}:events"

    def rollout_figures(self, model: str, step: str, version: str) -> str:
        return f"{self.prefix}{{rollout:{model}}}:f:{step}:{version}"

    def jobs(self, name: str) -> str:
        """A key of the job queue; all share the hash tag ``{jobs}`` (one slot, so every
        Lua call of the queue runs on Redis Cluster)."""
        return f"{self.prefix}{{jobs}}:{name}"

    def batch(self, batch_id: str, name: str) -> str:
        """A key of one batch file; a batch's keys share the hash tag ``{b:<id>}``."""
        return f"{self.prefix}{{b:{batch_id}}}:{name}"

    def batches(self, name: str) -> str:
        """The batch files' indexes (``active``, ``i:all``, ``i:o:<owner>``), tag ``{batches}``."""
        return f"{self.prefix}{{batches}}:{name}"

    def series(self, name: str) -> str:
        """The live series' keys (``replicas``, ``r:<replica>``): one hash tag, ``{series}``,
        so one Lua call writes a replica's steps and the index of replicas on Cluster too."""
        return f"{self.prefix}{{series}}:{name}"

    def usage(self, granularity: str, start: int, tenant: str) -> str:
        """One usage bucket's counts for one tenant (no hash tag: buckets spread over slots)."""
        return f"{self.prefix}usage:{granularity}:{start}:h:{tenant}"

    def usage_tenants(self, granularity: str, start: int) -> str:
        """The tenants with counts in one usage bucket."""
        return f"{self.prefix}usage:{granularity}:{start}:tenants"

    def limit(self, group: str, name: str) -> str:
        """A limit's state (a window's gets ``:<window index>`` appended, by the Lua script)."""
        return f"{self.prefix}{{{group}}}:l:{name}"

    def cache(self, group: str, key: str) -> str:
        return f"{self.prefix}{{{group}}}:c:{key}"

    def cache_lock(self, group: str, key: str) -> str:
        return f"{self.prefix}{{{group}}}:c:{key}:lock"

    def cache_match(self, group: str | None) -> str:
        """A SCAN MATCH pattern for the cache entries of ``group`` (``None``: of every group)."""
        if group is None:
            return f"{escape_glob(self.prefix)}{{*}}:c:*"
        return f"{escape_glob(self.cache(group, ''))}*"

    def cache_entry(self, name: str, group: str | None) -> tuple[str, str] | None:
        """``(group, key)`` of a cache entry's Redis key (found by :meth:`cache_match`), or
        ``None`` for a lock. With ``group`` unknown it ends at the first ``}:c:``."""
        if name.endswith(":lock"):
            return None
        if group is None:
            group, _, _ = name[len(self.prefix) + 1 :].partition("}:c:")
        return group, name[len(self.cache(group, "")) :]


def escape_glob(text: str) -> str:
    """``text`` matched literally by a Redis glob (SCAN MATCH, KEYS)."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


@contextmanager
def mapped(operation: str) -> Iterator[None]:
    """Map Redis outages to StoreUnavailable (503) where they enter our code."""
    try:
        yield
    except UNAVAILABLE as exc:
        raise unavailable(operation, exc) from exc


def unavailable(operation: str, exc: BaseException) -> StoreUnavailable:
    """What :func:`mapped` raises for an outage (for a hot path's own ``except UNAVAILABLE``,
    without a context manager per call)."""
    logger.warning("store: %s failed: %s", operation, exc)
    return StoreUnavailable("the shared store is unavailable")

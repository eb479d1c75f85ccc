"""What a progressive rollout keeps in the store: its state, its event log, and its figures.

The state of one model's rollout is a JSON record under a revision number; every write is a
compare-and-set on that revision, so the driving replica's transitions and an operator's
command sent to any replica never overwrite each other. Figures are counted per rollout step
(each step instance has its own id, so a restarted step starts from zero): requests, 5xx
errors and a fixed-bucket latency histogram per version, summed over every replica.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import logging
import secrets
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Final, Literal, Self

from gateway.store import Store
from gateway.traffic.config import Rollout

logger = logging.getLogger("gateway.rollout")

Status = Literal["running", "paused", "completed", "rolled_back", "aborted"]
ACTIVE: Final = ("running", "paused")
EVENTS_CAP: Final = 1000
FIGURES_TTL: Final = 24 * 3600.0

# Latency bucket upper bounds: 1 ms × 1.15^i up to about 2 minutes (p99 within 15 %).
BOUNDS: Final = tuple(0.001 * 1.15**i for i in range(85))


def plan_digest(rollout: Rollout, stable: str) -> str:
    """What identifies a rollout plan: canary, stable, steps, interval and gates."""
    plan = {**rollout.model_dump(mode="json"), "stable": stable}
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()[:16]


def new_step_id() -> str:
    return secrets.token_hex(6)


@dataclass(frozen=True, slots=True)
class RolloutState:
    """One model's rollout, as every replica applies it."""

    model: str
    plan: str  # plan_digest of the routes.yaml rollout it follows; "" once that was removed
    canary: str
    stable: str
    steps: tuple[float, ...]
    status: Status
    step: int  # index into steps
    step_id: str  # this step instance's figures
    step_started_at: float  # the driver's wall clock
    reason: str
    updated_at: float
    waiting_noted: bool = False  # a "waiting for traffic" event was recorded for this step

    @property
    def share(self) -> float:
        """The canary's share in percent."""
        if self.status == "completed":
            return 100.0
        if self.status in ACTIVE:
            return self.steps[self.step]
        return 0.0

    def split(self) -> dict[str, float]:
        """Percent per version, both versions named (zeros included)."""
        return {self.stable: 100.0 - self.share, self.canary: self.share}

    def weights(self) -> dict[str, float]:
        """Percent per version, versions without traffic left out."""
        return {v: w for v, w in self.split().items() if w > 0}

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Self:
        data = json.loads(text)
        data["steps"] = tuple(data["steps"])
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def moved(self, status: Status, reason: str, now: float, step: int | None = None) -> Self:
        """The state after a transition; a new step (or a resumed one) gets fresh figures."""
        new_step = self.step if step is None else step
        fresh = step is not None or (status == "running" and self.status != "running")
        return replace(
            self,
            status=status,
            step=new_step,
            reason=reason,
            updated_at=now,
            step_id=new_step_id() if fresh else self.step_id,
            step_started_at=now if fresh else self.step_started_at,
            waiting_noted=False if fresh else self.waiting_noted,
        )


@dataclass(frozen=True, slots=True)
class Figures:
    """One version's figures over one step."""

    requests: int = 0
    errors: int = 0
    buckets: Mapping[int, int] = field(default_factory=dict)

    @classmethod
    def from_fields(cls, fields: Mapping[str, int]) -> Figures:
        buckets = {int(k[1:]): v for k, v in fields.items() if k.startswith("b")}
        return cls(fields.get("n", 0), fields.get("e", 0), buckets)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def p99(self) -> float | None:
        """The upper bound of the bucket holding the 99th percentile, in seconds."""
        total = sum(self.buckets.values())
        if not total:
            return None
        rank, seen = 0.99 * total, 0
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen >= rank:
                return BOUNDS[index] if index < len(BOUNDS) else float("inf")
        return float("inf")

    def as_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "p99": self.p99,
        }


class Counts:
    """Figures observed here and not yet sent: one dict per (model, version), cheap to bump.

    ``observe`` may be called from any thread of the worker; a lock keeps the swap atomic.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[tuple[str, str], dict[str, int]] = {}

    def add(self, model: str, version: str, status: int, seconds: float) -> None:
        bucket = f"b{bisect.bisect_left(BOUNDS, seconds)}"
        with self._lock:
            row = self._pending.get((model, version))
            if row is None:
                row = self._pending[(model, version)] = {"n": 0, "e": 0}
            row["n"] += 1
            if status >= 500:
                row["e"] += 1
            row[bucket] = row.get(bucket, 0) + 1

    def take(self) -> dict[str, dict[str, dict[str, int]]]:
        """model → version → field → count, and start afresh."""
        with self._lock:
            pending, self._pending = self._pending, {}
        out: dict[str, dict[str, dict[str, int]]] = {}
        for (model, version), row in pending.items():
            out.setdefault(model, {})[version] = row
        return out

    def give_back(self, model: str, counts: Mapping[str, Mapping[str, int]]) -> None:
        """Counts that could not be sent, to be sent with the next ones."""
        with self._lock:
            for version, fields in counts.items():
                row = self._pending.setdefault((model, version), {"n": 0, "e": 0})
                for name, value in fields.items():
                    row[name] = row.get(name, 0) + value


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    model: str
    from_: str | None
    to: str
    reason: str
    step: int
    weights: Mapping[str, float]

    def to_json(self) -> str:
        data = asdict(self)
        data["from"] = data.pop("from_")
        return json.dumps(data)


class RolloutBook:
    """The rollouts' records in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def load(self, model: str) -> tuple[int, RolloutState | None]:
        rev, text = await self.store.rollout_state(model)
        if text is None:
            return rev, None
        try:
            return rev, RolloutState.from_json(text)
        except (ValueError, TypeError, KeyError) as exc:
            logger.error("unreadable rollout state", extra={"model": model, "error": str(exc)})
            return rev, None

    async def write(
        self, rev: int, old: RolloutState | None, new: RolloutState, actor: str | None = None
    ) -> bool:
        """Compare-and-set the state; when it moved, record the event. ``False``: lost a race."""
        if not await self.store.rollout_swap(new.model, rev, new.to_json()):
            return False
        if (
            old is None
            or (old.status, old.step, old.plan) != (new.status, new.step, new.plan)
            or (new.waiting_noted and not old.waiting_noted)
        ):
            reason = f"{new.reason} (by {actor})" if actor else new.reason
            event = Event(
                new.updated_at,
                new.model,
                old.status if old else None,
                new.status,
                reason,
                new.step,
                new.split(),
            )
            await self.store.rollout_event(new.model, event.to_json(), EVENTS_CAP)
        return True

    async def events(self, model: str, limit: int) -> list[dict[str, Any]]:
        texts = await self.store.rollout_events(model, limit)
        return [json.loads(t) for t in texts]

    async def figures(self, state: RolloutState) -> tuple[Figures, Figures]:
        """(stable, canary) over the state's current step."""
        rows = await self.store.rollout_figures(
            state.model, state.step_id, [state.stable, state.canary]
        )
        return Figures.from_fields(rows[state.stable]), Figures.from_fields(rows[state.canary])

    async def send(self, counts: Counts, steps: Mapping[str, str]) -> None:
        """Add what was observed here to the shared figures of each model's current step."""
        for model, rows in counts.take().items():
            step = steps.get(model)
            if step is None:
                continue  # no running rollout here any more: nothing to judge them by
            try:
                await self.store.rollout_count(model, step, rows, FIGURES_TTL)
            except Exception:
                counts.give_back(model, rows)
                raise


def describe(figures: Figures) -> str:
    p99 = figures.p99
    latency = "no p99" if p99 is None else f"p99 {p99 * 1000:.0f}ms"
    return f"{figures.errors}/{figures.requests} errors ({figures.error_rate:.1%}), {latency}"

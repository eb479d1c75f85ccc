"""Progressive rollouts: the controller behind a model's ``rollout:`` key in routes.yaml.

Every replica runs a :class:`RolloutController`. Each one counts what it serves in memory
(``observe``, no I/O) and sends the counts to the store a few times a second, re-reads every
rollout's shared state as often, and answers ``weights`` from that local copy. One replica at a
time, the holder of a lease in the store, *drives*: it judges each running step by the figures
summed over all replicas, and writes the transitions (promote, complete, roll back), each one
recorded with its reason in the model's event log.

States: ``running`` → (gates pass, step by step) → ``completed`` (canary 100 %);
``running`` → (a gate fails) → ``rolled_back`` (stable 100 %); an operator can pause, resume,
promote and abort (``aborted``: stable 100 %). Editing routes.yaml: a changed plan (canary,
stable, steps, interval, gates) restarts at step 0; a removed ``rollout:`` ends it (the
weights are routes.yaml's again); other edits leave it running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from prometheus_client import CollectorRegistry, Counter, Gauge

from gateway.config.model import RouteTable
from gateway.errors import Conflict, NotFound
from gateway.store import Store, StoreUnavailable
from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS, ModelLabels
from gateway.traffic.config import Gates, Rollout
from gateway.traffic.rollout_state import (
    ACTIVE,
    Counts,
    Figures,
    RolloutBook,
    RolloutState,
    Status,
    describe,
    new_step_id,
    plan_digest,
)

logger = logging.getLogger("gateway.rollout")

LEASE: Final = "rollout-driver"
IDLE_PERIOD: Final = 2.0  # how often to look when no model has a rollout
Action = Literal["pause", "resume", "promote", "abort"]
ACTIONS: Final = ("pause", "resume", "promote", "abort")


@dataclass(frozen=True, slots=True)
class Plan:
    """A model's rollout as routes.yaml declares it now."""

    rollout: Rollout
    stable: str
    digest: str


def plans(table: RouteTable) -> dict[str, Plan]:
    out = {}
    for name, model in table.models.items():
        if model.rollout is not None:
            stable = model.rollout.stable or model.default_version
            out[name] = Plan(model.rollout, stable, plan_digest(model.rollout, stable))
    return out


Verdict = tuple[Status, int, str] | Literal["wait"] | None


def judge(
    gates: Gates, state: RolloutState, stable: Figures, canary: Figures, due: bool
) -> Verdict:
    """What the step's figures say: a transition, ``"wait"`` (too little traffic), or None.

    A canary whose error rate fails the gate once it has ``min_requests`` is rolled back at
    once, whenever in the step; the other gates are judged when the step's interval is over.
    """
    enough = canary.requests >= gates.min_requests
    if enough and canary.error_rate > gates.max_error_rate:
        why = f"error rate {canary.error_rate:.1%} > {gates.max_error_rate:.1%}"
        return "rolled_back", state.step, f"gate failed at {state.share:g}%: {why}"
    if not due or state.status != "running":
        return None
    if not enough:
        return "wait"
    failures = []
    p99 = canary.p99
    if gates.max_p99 is not None and p99 is not None and p99 > gates.max_p99:
        failures.append(f"p99 {p99 * 1000:.0f}ms > {gates.max_p99 * 1000:.0f}ms")
    stable_p99 = stable.p99 if stable.requests >= gates.min_requests else None
    ratio = gates.max_p99_ratio
    if ratio is not None and p99 is not None and stable_p99 and p99 > ratio * stable_p99:
        failures.append(f"p99 {p99 * 1000:.0f}ms > {ratio:g} × stable's {stable_p99 * 1000:.0f}ms")
    if failures:
        return "rolled_back", state.step, f"gate failed at {state.share:g}%: {'; '.join(failures)}"
    passed = f"gates passed at {state.share:g}% (canary {describe(canary)})"
    if state.step == len(state.steps) - 1:
        return "completed", state.step, passed
    return "running", state.step + 1, passed


class RolloutMetrics:
    """The rollouts' gauges and transitions. A model past ``GATEWAY_METRICS_MAX_MODELS``
    (``gateway.telemetry.cardinality``) counts its transitions as ``other`` and has no gauges:
    the figures of several rollouts do not add up into one."""

    def __init__(self, registry: CollectorRegistry, models: ModelLabels | None = None) -> None:
        self.models = models if models is not None else ModelLabels(DEFAULT_MAX_MODELS)
        self.weight = Gauge(
            "gateway_rollout_weight",
            "Share of a model's traffic a rollout gives each version, in percent.",
            ["model", "version"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.step = Gauge(
            "gateway_rollout_step",
            "The rollout's step index.",
            ["model"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.transitions = Counter(
            "gateway_rollout_transitions",
            "Rollout transitions written by this replica, by the state entered.",
            ["model", "to"],
            registry=registry,
        )
        self.error_rate = Gauge(
            "gateway_rollout_error_rate",
            "5xx share of the current step, all replicas (on the driving replica).",
            ["model", "version"],
            multiprocess_mode="livemax",
            registry=registry,
        )
        self.p99 = Gauge(
            "gateway_rollout_p99_seconds",
            "p99 latency of the current step, all replicas (on the driving replica).",
            ["model", "version"],
            multiprocess_mode="livemax",
            registry=registry,
        )


class RolloutController:
    """Implements :class:`gateway.traffic.choose.TrafficControl` for the models with a rollout."""

    def __init__(
        self,
        store: Store,
        registry: CollectorRegistry,
        *,
        clock: Callable[[], float] = time.time,
        holder: str | None = None,
        models: ModelLabels | None = None,
    ) -> None:
        self.book = RolloutBook(store)
        self.store = store
        self.metrics = RolloutMetrics(registry, models)
        self.clock = clock
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.driving = False
        self._counts = Counts()
        self._states: dict[str, RolloutState] = {}  # the shared states, as last read
        self._weights: dict[str, Mapping[str, float]] = {}  # what weights() answers
        self._steps: dict[str, str] = {}  # models whose traffic is counted → their step id
        self._table: Callable[[], RouteTable] | None = None
        self._serving: Callable[[str, str], bool] | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned = 0.0

    # -- TrafficControl (the hot path: no I/O) -------------------------------------------------

    def weights(self, model: str) -> Mapping[str, float] | None:
        return self._weights.get(model)

    def arm(self, model: str, version: str) -> str | None:
        """``canary`` or ``stable`` while ``model`` has a rollout, else None (for traces)."""
        state = self._states.get(model)
        if state is None:
            return None
        return (
            "canary" if version == state.canary else "stable" if version == state.stable else None
        )

    def observe(self, model: str, version: str, status: int, seconds: float) -> None:
        if model in self._steps:
            self._counts.add(model, version, status, seconds)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self, table: Callable[[], RouteTable]) -> None:
        """Read the shared states once (so weights hold from the first request), then keep
        them fresh in the background."""
        self.follow(table)
        await self._tick_safely()
        self._task = asyncio.create_task(self._run(), name="rollout-controller")

    def follow(self, table: Callable[[], RouteTable]) -> None:
        """Judge by the route table ``table()`` returns (the running one, after each reload)."""
        self._table = table

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(StoreUnavailable):
            await self.book.send(self._counts, self._steps)
            if self.driving:
                await self.store.release_lease(LEASE, self.holder)  # the next one takes over now

    def period(self) -> float:
        """Seconds between ticks: a tenth of the shortest interval, within [50 ms, 250 ms]."""
        intervals = [p.rollout.interval for p in self._plans().values()]
        if not intervals:
            return IDLE_PERIOD
        return min(max(min(intervals) / 10, 0.05), 0.25)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.period())
            await self._tick_safely()

    async def _tick_safely(self) -> None:
        try:
            await self.tick()
        except StoreUnavailable:
            now = time.monotonic()
            if now - self._warned > 30:
                self._warned = now
                logger.warning("rollouts: the store is unavailable; weights stay as they were")
        except Exception:
            logger.exception("rollout tick failed")

    def _plans(self) -> dict[str, Plan]:
        return plans(self._table()) if self._table is not None else {}

    # -- the tick ------------------------------------------------------------------------------

    async def tick(self) -> None:
        """Send counts, take or renew the lease, refresh every state, and (driving) judge."""
        current = self._plans()
        await self.book.send(self._counts, self._steps)
        self.driving = await self.store.lease(LEASE, self.holder, max(3 * self.period(), 1.0))
        models = set(current) | set(self._states)
        if self.driving:
            models |= set(await self.store.rollout_models())
        for model in sorted(models):
            rev, state = await self.book.load(model)
            if self.driving:
                state = await self._drive(model, rev, state, current.get(model))
            self._apply(model, state, current.get(model))

    def _apply(self, model: str, state: RolloutState | None, plan: Plan | None) -> None:
        """Make ``state`` this replica's view: its weights hold only while it follows the plan
        routes.yaml declares here."""
        follows = state is not None and plan is not None and state.plan == plan.digest
        if state is None or not (follows or state.status in ACTIVE):
            self._states.pop(model, None)
        else:
            self._states[model] = state
        if state is None or not follows:
            self._weights.pop(model, None)
            self._steps.pop(model, None)
            return
        self._weights[model] = state.weights()
        if state.status in ACTIVE:
            self._steps[model] = state.step_id
        else:
            self._steps.pop(model, None)
        if not self.metrics.models.keeps(model):
            return
        for version, share in state.split().items():
            self.metrics.weight.labels(model, version).set(share)
        self.metrics.step.labels(model).set(state.step)

    async def _drive(
        self, model: str, rev: int, state: RolloutState | None, plan: Plan | None
    ) -> RolloutState | None:
        now = self.clock()
        new: RolloutState | None = None
        if plan is None:
            if state is None or not state.plan:
                return state
            status: Status = "aborted" if state.status in ACTIVE else state.status
            reason = "the rollout was removed from routes.yaml"
            new = replace(state.moved(status, reason, now), plan="")
        elif state is None or state.plan != plan.digest:
            reason = "started"
            if state is not None and state.plan:
                reason = "the plan changed in routes.yaml: restarting from step 0"
            new = fresh(model, plan, reason, now)
        elif state.status in ACTIVE:
            new = await self._judge(state, plan, now)
        if new is None or not await self._write(rev, state, new):
            return state
        return new

    def watch_health(self, serving: Callable[[str, str], bool]) -> None:
        """``serving(model, version)``: whether the version has a replica that can take
        requests here. A canary that has none is rolled back: the traffic step routes around
        it, so its error rate alone would stop showing the failure (and could pass a gate)."""
        self._serving = serving

    async def _judge(self, state: RolloutState, plan: Plan, now: float) -> RolloutState | None:
        if (
            self._serving is not None
            and state.status == "running"
            and not self._serving(state.model, state.canary)
        ):
            reason = f"canary {state.canary!r} has no healthy replica"
            return state.moved("rolled_back", reason, now)
        stable, canary = await self.book.figures(state)
        for version, figures in ((state.stable, stable), (state.canary, canary)):
            if self.metrics.models.keeps(state.model):
                self.metrics.error_rate.labels(state.model, version).set(figures.error_rate)
                self.metrics.p99.labels(state.model, version).set(figures.p99 or 0.0)
        due = now - state.step_started_at >= plan.rollout.interval
        verdict = judge(plan.rollout.gates, state, stable, canary, due)
        if verdict is None:
            return None
        if verdict == "wait":
            if state.waiting_noted:
                return None
            needed = plan.rollout.gates.min_requests
            reason = f"waiting for traffic: {canary.requests} of {needed} canary requests"
            return replace(state, waiting_noted=True, reason=reason, updated_at=now)
        status, step, reason = verdict
        return state.moved(status, reason, now, step if step != state.step else None)

    async def _write(
        self, rev: int, old: RolloutState | None, new: RolloutState, actor: str | None = None
    ) -> bool:
        if not await self.book.write(rev, old, new, actor):
            return False
        if old is None or old.status != new.status or old.step != new.step:
            label = self.metrics.models.label(new.model)
            self.metrics.transitions.labels(label, new.status).inc()
            logger.info(
                "rollout %s: %s → %s at step %d: %s",
                new.model,
                old.status if old else "-",
                new.status,
                new.step,
                new.reason,
            )
        return True

    # -- the admin API -------------------------------------------------------------------------

    async def command(self, model: str, action: Action, actor: str) -> RolloutState:
        """Pause, resume, promote or abort the model's rollout (compare-and-set, retried)."""
        for _ in range(5):
            rev, state = await self.book.load(model)
            plan = self._plans().get(model)
            if state is None or not state.plan:
                raise NotFound(f"model {model!r} has no rollout")
            new = commanded(state, action, self.clock(), plan)
            if new is state:
                return state
            if await self._write(rev, state, new, actor):
                self._apply(model, new, plan)
                return new
        raise Conflict("the rollout changed while this command ran; try again")

    async def status(self, model: str) -> dict[str, Any]:
        _, state = await self.book.load(model)
        plan = self._plans().get(model)
        if state is None and plan is None:
            raise NotFound(f"model {model!r} has no rollout")
        view: dict[str, Any] = {
            "model": model,
            "declared": plan is not None,
            "driver": self.driving,
            "applied_weights": dict(self._weights[model]) if model in self._weights else None,
        }
        if plan is not None:
            view["plan"] = plan.rollout.model_dump(mode="json") | {"stable": plan.stable}
        if state is None:
            return view | {"status": "pending"}
        stable, canary = await self.book.figures(state)
        return view | {
            "status": state.status,
            "step": state.step,
            "steps": list(state.steps),
            "share": state.share,
            "weights": state.split(),
            "canary": state.canary,
            "stable": state.stable,
            "reason": state.reason,
            "step_started_at": state.step_started_at,
            "step_elapsed": max(0.0, self.clock() - state.step_started_at),
            "updated_at": state.updated_at,
            "follows_routes_yaml": plan is not None and state.plan == plan.digest,
            "figures": {state.stable: stable.as_json(), state.canary: canary.as_json()},
        }

    async def models(self) -> list[str]:
        return sorted(set(self._plans()) | set(await self.store.rollout_models()))

    async def events(self, model: str, limit: int = 100) -> list[dict[str, Any]]:
        return await self.book.events(model, limit)


def fresh(model: str, plan: Plan, reason: str, now: float) -> RolloutState:
    """A rollout at its first step."""
    return RolloutState(
        model=model,
        plan=plan.digest,
        canary=plan.rollout.canary,
        stable=plan.stable,
        steps=tuple(plan.rollout.steps),
        status="running",
        step=0,
        step_id=new_step_id(),
        step_started_at=now,
        reason=reason,
        updated_at=now,
    )


def commanded(state: RolloutState, action: Action, now: float, plan: Plan | None) -> RolloutState:
    """The state after an operator's command (``state`` itself when there is nothing to do)."""
    status = state.status
    if action == "pause":
        if status == "paused":
            return state
        if status == "running":
            return state.moved("paused", "paused", now)
    elif action == "resume":
        if status == "running":
            return state
        if status == "paused":
            return state.moved("running", "resumed: the step's interval starts again", now)
        if status in ("rolled_back", "aborted") and plan is not None and state.plan == plan.digest:
            return fresh(state.model, plan, "restarted from step 0", now)
    elif action == "promote" and status in ACTIVE:
        if state.step == len(state.steps) - 1:
            return state.moved("completed", "promoted: completed", now)
        share = state.steps[state.step + 1]
        return state.moved("running", f"promoted to {share:g}%", now, state.step + 1)
    elif action == "abort" and status in ACTIVE:
        return state.moved("aborted", "aborted", now)
    raise Conflict(f"cannot {action} a rollout that is {status.replace('_', ' ')}")

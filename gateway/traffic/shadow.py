"""Shadow traffic: a share of the answered requests replayed, off the request path, to another
version, and the two answers compared.

After the caller's 200 (an inference call, not a cache hit) the traffic policy offers the
call's tensors and the answer's here. A deterministic share is taken (an accumulator:
``share: 10%`` mirrors exactly every tenth eligible request, no coin flip) and queued; a model
with ``queue`` copies already waiting drops the new one and counts it. A few background tasks
per worker process take the copies, call the shadow version through its backend's adapter
with the same tensors and compare the answers' tensors:

- **exact**: the same output names, shapes and data;
- **numeric agreement**: the same structure, every number within ``tolerance × max(1, |a|)``;
- **latency delta**: shadow minus primary seconds;
- **errors**: a shadow call that fails (the primary's 5xx are counted beside it).

Nothing here is awaited by a request: the caller's response, latency and errors are never
affected, and a failure in here is caught and counted. Counts are per worker process; the
fleet's are their sum (``gateway.traffic.shadow_fleet``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.backends.live import Resolved
from gateway.codecs.tensors import InferenceRequest, InferenceResponse
from gateway.config.model import Model
from gateway.telemetry.cardinality import DEFAULT_MAX_MODELS, ModelLabels

logger = logging.getLogger("gateway.shadow")
_CONCURRENCY = 4
_DELTA_BUCKETS = (
    *(-b for b in (5.0, 2.5, 1.0, 0.5, 0.25, 0.1, 0.05, 0.025, 0.01, 0.005)),
    0.0,
    *(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)


@dataclass(slots=True)
class Job:
    shadow: Resolved
    primary_version: str
    request: InferenceRequest
    primary: InferenceResponse
    primary_seconds: float
    tolerance: float


@dataclass(slots=True)
class Stats:
    """What one model's shadow version has shown (this worker process)."""

    primary_requests: int = 0
    primary_errors: int = 0
    mirrored: int = 0
    dropped: int = 0
    exact: int = 0
    agree: int = 0
    disagree: int = 0
    errors: int = 0
    delta_sum: float = 0.0
    by_primary: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        done = self.agree + self.disagree
        return {
            "primary_requests": self.primary_requests,
            "primary_errors": self.primary_errors,
            "primary_error_rate": _rate(self.primary_errors, self.primary_requests),
            "mirrored": self.mirrored,
            "mirrored_by_primary_version": dict(self.by_primary),
            "dropped": self.dropped,
            "pending": self.pending,
            "completed": done + self.errors,
            "exact_matches": self.exact,
            "mismatches": done - self.exact,
            "numeric_agreements": self.agree,
            "numeric_disagreements": self.disagree,
            "errors": self.errors,
            "shadow_error_rate": _rate(self.errors, done + self.errors),
            "mean_latency_delta_seconds": self.delta_sum / done if done else None,
        }

    @property
    def pending(self) -> int:
        return self.mirrored - self.agree - self.disagree - self.errors


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 6) if whole else None


class ShadowMetrics:
    """Shadow outcomes; a model past ``GATEWAY_METRICS_MAX_MODELS`` is counted as ``other``
    (``gateway.telemetry.cardinality``)."""

    def __init__(self, registry: CollectorRegistry, models: ModelLabels | None = None) -> None:
        self.models = models if models is not None else ModelLabels(DEFAULT_MAX_MODELS)
        self.requests = Counter(
            "gateway_shadow_requests",
            "Shadow calls completed, by outcome against the primary's answer.",
            ["model", "version", "outcome"],
            registry=registry,
        )
        self.dropped = Counter(
            "gateway_shadow_dropped",
            "Shadow copies dropped because the model's queue was full.",
            ["model"],
            registry=registry,
        )
        self.agreement = Counter(
            "gateway_shadow_numeric_agreement",
            "Shadow answers whose numbers agree with the primary's within the tolerance.",
            ["model", "version", "result"],
            registry=registry,
        )
        self.latency_delta = Histogram(
            "gateway_shadow_latency_delta_seconds",
            "Shadow latency minus the primary's, per compared request.",
            ["model", "version"],
            buckets=_DELTA_BUCKETS,
            registry=registry,
        )


class ShadowWorker:
    """The per-process shadow queue and the tasks that drain it."""

    def __init__(
        self,
        registry: CollectorRegistry,
        concurrency: int = _CONCURRENCY,
        models: ModelLabels | None = None,
    ) -> None:
        self.metrics = ShadowMetrics(registry, models)
        self._queue: asyncio.Queue[Job] = asyncio.Queue()
        self._waiting: dict[str, int] = {}  # per model: copies queued, bounded by its ``queue``
        self._share: dict[str, float] = {}  # per model: the share accumulator
        self._stats: dict[tuple[str, str], Stats] = {}
        self._concurrency = concurrency
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(), name=f"shadow:{i}") for i in range(self._concurrency)
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    def stats(self, model: str, version: str) -> Stats:
        stats = self._stats.get((model, version))
        if stats is None:
            stats = self._stats[(model, version)] = Stats()
        return stats

    def totals(self) -> list[tuple[tuple[str, str], Stats]]:
        """Per (model, shadow version): its running totals in this process."""
        return list(self._stats.items())

    def snapshot(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Per model, per shadow version: the counts ``GET /admin/shadow`` shows."""
        result: dict[str, dict[str, dict[str, Any]]] = {}
        for (model, version), stats in sorted(self._stats.items()):
            result.setdefault(model, {})[version] = stats.as_json()
        return result

    # -- the request side (never awaits) --------------------------------------------------------

    def offer(
        self,
        resolve: Callable[[str, str], Resolved],
        spec: Model,
        model: str,
        version: str,
        status: int,
        request: InferenceRequest | None = None,
        response: InferenceResponse | None = None,
        seconds: float = 0.0,
    ) -> None:
        """One answered request of a model with ``shadow:``; mirrored when it is due."""
        shadow = spec.shadow
        if shadow is None or version == shadow.version:
            return
        stats = self.stats(model, shadow.version)
        stats.primary_requests += 1
        if status >= 500:
            stats.primary_errors += 1
        if status != 200 or request is None or response is None:
            return
        due = self._share.get(model, 0.0) + shadow.share
        if due < 1.0 - 1e-9:
            self._share[model] = due
            return
        self._share[model] = max(0.0, due - 1.0)
        if self._waiting.get(model, 0) >= shadow.queue:
            stats.dropped += 1
            self.metrics.dropped.labels(self.metrics.models.label(model)).inc()
            return
        try:
            target = resolve(model, shadow.version)
        except Exception:  # a shadow problem never reaches the caller
            logger.exception("shadow version unavailable", extra={"model": model})
            return
        job = Job(target, version, request, response, seconds, shadow.tolerance)
        self._waiting[model] = self._waiting.get(model, 0) + 1
        stats.mirrored += 1
        stats.by_primary[version] = stats.by_primary.get(version, 0) + 1
        self._queue.put_nowait(job)

    # -- the background side --------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            model = job.shadow.model
            self._waiting[model] = max(0, self._waiting.get(model, 0) - 1)
            try:
                await self._replay(job)
            except asyncio.CancelledError:
                raise
            except Exception:  # the worker must outlive any one copy
                logger.exception("shadow comparison failed", extra={"model": model})
            finally:
                self._queue.task_done()

    async def _replay(self, job: Job) -> None:
        shadow = job.shadow
        stats = self.stats(shadow.model, shadow.version)
        labels = self.metrics.models.pair(shadow.model, shadow.version)
        started = time.perf_counter()
        try:
            answer = await _call(job)
        except Exception as exc:  # noqa: BLE001 - any failure of the shadow is an error outcome
            stats.errors += 1
            self.metrics.requests.labels(*labels, "error").inc()
            logger.info(
                "shadow call failed",
                extra={"model": shadow.model, "version": shadow.version, "error": str(exc)},
            )
            return
        delta = (time.perf_counter() - started) - job.primary_seconds
        exact, agree = compare(job.primary, answer, job.tolerance)
        stats.exact += exact
        stats.agree += agree
        stats.disagree += not agree
        stats.delta_sum += delta
        self.metrics.requests.labels(*labels, "match" if exact else "mismatch").inc()
        self.metrics.agreement.labels(*labels, "agree" if agree else "disagree").inc()
        self.metrics.latency_delta.labels(*labels).observe(delta)


async def _call(job: Job) -> InferenceResponse:
    """The shadow version's answer to the caller's request (the tensors the primary got)."""
    shadow = job.shadow
    live = shadow.backend
    signature = await live.signature(shadow.target)
    return await live.adapter.infer(job.request, shadow.target, signature)


# -- comparing ----------------------------------------------------------------------------------


def outputs(response: InferenceResponse) -> dict[str, tuple[list[int], list[Any]]]:
    """name → (shape, flat data) of an answer."""
    return {t.name: (list(t.shape), t.data) for t in response.outputs}


def compare(
    primary: InferenceResponse, shadow: InferenceResponse, tolerance: float
) -> tuple[bool, bool]:
    """(exact, numeric agreement) of two answers: the same output names and shapes, and the
    same values (exact) or values within the tolerance (agreement)."""
    a, b = outputs(primary), outputs(shadow)
    if a.keys() != b.keys() or any(a[n][0] != b[n][0] for n in a):
        return False, False
    exact = all(_same(a[n][1], b[n][1], None) for n in a)
    return exact, exact or all(_same(a[n][1], b[n][1], tolerance) for n in a)


def _same(a: Any, b: Any, tolerance: float | None) -> bool:
    """Structural equality; numbers within ``tolerance × max(1, |a|)`` unless it is None."""
    if _number(a) and _number(b):
        if a == b or (math.isnan(a) and math.isnan(b)):
            return True
        if tolerance is None or not (math.isfinite(a) and math.isfinite(b)):
            return False
        return bool(abs(a - b) <= tolerance * max(1.0, abs(a)))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tolerance) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k], tolerance) for k in a)
    return type(a) is type(b) and bool(a == b)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)

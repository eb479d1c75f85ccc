"""What this replica answered, per model × version, in fixed steps of wall-clock time.

:meth:`SeriesRecorder.record` runs once per answered request (from the access log's observer,
on the event loop thread): two dict lookups, a clock read, a bisect over the fixed latency
buckets and a few increments. No I/O, no await, and nothing allocated per request: a step's
counters are made by its first request, a model × version's ring by its first request after it
was last emptied.

A model × version with traffic has a ring (a ``deque`` with ``maxlen``) of its steps not yet
published, oldest first; a model with none has nothing here at all (issue 16: thousands of idle
models cost nothing). The fleet publisher (``fleet``) reads the finished steps every step,
publishes them, and :meth:`SeriesRecorder.forget` drops what was published; while the store is
down the rings keep at most a window of steps, and :meth:`SeriesRecorder.prune` drops the steps
that fell out of the window and the models and versions no longer in the route table.
"""

from __future__ import annotations

import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterator
from typing import Final

from gateway.telemetry.series.histogram import BOUNDS

MIN_STEP: Final = 1
MAX_STEPS: Final = 3600
"""The most steps a window may hold (GATEWAY_SERIES_WINDOW_SECONDS / _STEP_SECONDS)."""


class Step:
    """One model × version's counts over one step."""

    __slots__ = ("buckets", "errors_4xx", "errors_5xx", "index", "requests")

    def __init__(self, index: int) -> None:
        self.index = index  # the step's start is index × step seconds since the unix epoch
        self.requests = 0
        self.errors_5xx = 0
        self.errors_4xx = 0
        self.buckets: dict[int, int] = {}  # latency bucket (histogram.BOUNDS) → requests


Served = Callable[[str, str], bool]
"""``served(model, version)``: whether the route table still serves it (version ``""``: the
model's requests answered before a version was chosen)."""


class SeriesRecorder:
    """This replica's unpublished steps: model → version → ring of :class:`Step`."""

    __slots__ = ("_clock", "_rings", "step", "steps")

    def __init__(self, step: int, window: int, *, clock: Callable[[], float] = time.time) -> None:
        if step < MIN_STEP or window < 2 * step or window // step > MAX_STEPS:
            raise ValueError(
                f"series: a step of {step} s and a window of {window} s: the step must be at "
                f"least {MIN_STEP} s, the window at least two steps and at most {MAX_STEPS}"
            )
        self.step = step
        self.steps = window // step  # how many steps a window holds
        self._clock = clock  # the wall clock: replicas' steps line up on the unix epoch
        self._rings: dict[str, dict[str, deque[Step]]] = {}

    def now(self) -> float:
        return self._clock()

    def index(self, at: float) -> int:
        """The index of the step ``at`` (unix seconds) falls in."""
        return int(at // self.step)

    def record(self, model: str, version: str, status: int, seconds: float) -> None:
        """One answered request of ``model`` (``""``: none, not recorded) served by ``version``
        (``""``: answered before one was chosen), with its status and latency in seconds."""
        if not model:
            return
        versions = self._rings.get(model)
        if versions is None:
            versions = self._rings[model] = {}
        ring = versions.get(version)
        if ring is None:
            ring = versions[version] = deque(maxlen=self.steps)
        index = int(self._clock() // self.step)
        current = ring[-1] if ring else None
        if current is None or current.index < index:  # else this step (or the clock went back)
            current = Step(index)
            ring.append(current)
        current.requests += 1
        if status >= 500:
            current.errors_5xx += 1
        elif status >= 400:
            current.errors_4xx += 1
        bucket = bisect_left(BOUNDS, seconds)
        buckets = current.buckets
        buckets[bucket] = buckets.get(bucket, 0) + 1

    def finished(self, before: int) -> Iterator[tuple[str, str, Step]]:
        """Every (model, version, step) held whose step index is below ``before``."""
        for model, versions in list(self._rings.items()):
            for version, ring in list(versions.items()):
                for step in ring:
                    if step.index >= before:
                        break
                    yield model, version, step

    def forget(self, before: int) -> None:
        """Drop the steps whose index is below ``before``, and the rings left empty."""
        for model, versions in list(self._rings.items()):
            for version, ring in list(versions.items()):
                while ring and ring[0].index < before:
                    ring.popleft()
                if not ring:
                    del versions[version]
            if not versions:
                del self._rings[model]

    def prune(self, oldest: int, served: Served) -> None:
        """Drop the steps older than index ``oldest`` (out of the window), and every ring of a
        model or version the route table no longer serves."""
        for model, versions in list(self._rings.items()):
            for version in [v for v in versions if not served(model, v)]:
                del versions[version]
            if not versions:
                del self._rings[model]
        self.forget(oldest)

    def __len__(self) -> int:
        """How many model × version rings are held."""
        return sum(len(versions) for versions in self._rings.values())

"""The model versions waiting for a readiness probe on one replica, released at a bounded rate.

A token bucket (``rate`` a second, holding at most ``burst``) caps the probes one replica gets,
whatever the number of models; each model version is probed at most once every ``spacing``
seconds (the health interval), except when it is wanted ``soon`` (its first use). Time is
given by the caller (``now``, in ``time.monotonic()`` seconds), so the schedule is a pure
function of the calls, testable with a fake clock.
"""

from __future__ import annotations

import heapq
import itertools
import math

from gateway.backends.replica import TargetKey


class ProbeQueue:
    """Model versions due for a probe on one replica, each once, in the order they fell due."""

    def __init__(self, rate: float, burst: float, spacing: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("a probe queue needs a positive rate and a burst of at least 1")
        self.rate = rate
        self.burst = burst
        self.spacing = spacing
        self._tokens = burst
        self._filled_at: float | None = None
        self._heap: list[tuple[float, int, TargetKey]] = []
        self._due: dict[TargetKey, float] = {}  # key -> when it falls due (its live heap entry)
        self._last: dict[TargetKey, float] = {}  # key -> when it was last released
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: TargetKey) -> bool:
        return key in self._due

    def want(self, key: TargetKey, now: float, *, soon: bool = False) -> bool:
        """Queue ``key`` for a probe: at once when ``soon``, else once ``spacing`` has passed
        since its last probe. False when it was queued already (and not brought forward)."""
        last = self._last.get(key)
        at = now if soon or last is None else max(now, last + self.spacing)
        queued = self._due.get(key)
        if queued is not None and queued <= at:
            return False
        self._due[key] = at
        heapq.heappush(self._heap, (at, next(self._order), key))
        return True

    def take(self, now: float) -> list[TargetKey]:
        """The keys due by ``now`` that the bucket lets go, oldest due first."""
        self._refill(now)
        taken: list[TargetKey] = []
        while self._tokens >= 1 and self._head() is not None:
            at, _, key = self._heap[0]
            if at > now:
                break
            heapq.heappop(self._heap)
            del self._due[key]
            self._last[key] = now
            self._tokens -= 1
            taken.append(key)
        return taken

    def next_at(self, now: float) -> float | None:
        """When :meth:`take` may next give a key (``now`` or later); None when none waits."""
        head = self._head()
        if head is None:
            return None
        self._refill(now)
        token_at = now if self._tokens >= 1 else now + (1 - self._tokens) / self.rate
        return max(head, token_at)

    def discard(self, keys: set[TargetKey] | None = None) -> None:
        """Forget the waiting keys (``keys`` only, when given): a bulk answer covers them."""
        if keys is None:
            self._heap.clear()
            self._due.clear()
        else:
            for key in keys & self._due.keys():
                del self._due[key]  # its heap entry is stale now, dropped when reached

    def prune(self, now: float) -> None:
        """Forget when keys were last probed once that no longer holds them back."""
        horizon = now - self.spacing
        self._last = {k: t for k, t in self._last.items() if t > horizon}

    def _head(self) -> float | None:
        """When the first live entry falls due, dropping stale ones (re-queued or discarded)."""
        heap = self._heap
        while heap:
            at, _, key = heap[0]
            if self._due.get(key) == at:
                return at
            heapq.heappop(heap)
        return None

    def _refill(self, now: float) -> None:
        if self._filled_at is not None and now > self._filled_at:
            self._tokens = min(self.burst, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now if self._filled_at is None else max(self._filled_at, now)


def burst_of(rate: float) -> float:
    """The bucket of a rate: a second's worth of probes, at least one."""
    return max(1.0, math.floor(rate))

"""The retry budget: retries may be at most ``ratio`` of requests over a 10 s window, plus a
floor per second, so retries never multiply the load on a backend that is already failing."""

from __future__ import annotations

import time


class RetryBudget:
    _WINDOW = 10

    def __init__(self, ratio: float, min_per_second: float) -> None:
        self._ratio = ratio
        self._floor = min_per_second * self._WINDOW
        self._buckets: dict[int, list[int]] = {}

    def _bucket(self) -> list[int]:
        now = int(time.monotonic())
        bucket = self._buckets.get(now)
        if bucket is None:
            for old in [t for t in self._buckets if t <= now - self._WINDOW]:
                del self._buckets[old]
            bucket = self._buckets[now] = [0, 0]
        return bucket

    def record_request(self) -> None:
        self._bucket()[0] += 1

    def try_spend(self) -> bool:
        bucket = self._bucket()
        requests = sum(b[0] for b in self._buckets.values())
        retries = sum(b[1] for b in self._buckets.values())
        if retries >= max(self._floor, self._ratio * requests):
            return False
        bucket[1] += 1
        return True

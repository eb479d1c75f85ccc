"""Per-request timing shared by the proxy layer and the ``Server-Timing`` header.

Kept free of Starlette so the backends can record model-server time without knowing the app.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass(slots=True)
class Timing:
    started: float = field(default_factory=time.perf_counter)
    upstream: float = 0.0
    retries: int = 0  # upstream tries after each pool request's first (another replica)
    backend: str = ""  # the backend that served, for metrics and the access log
    replica: str = ""  # the replica of the last attempt

    def header(self) -> bytes:
        """The ``Server-Timing`` value, as the header's bytes (formatted as bytes: no str)."""
        total = time.perf_counter() - self.started
        upstream = self.upstream
        if not upstream:  # answered without a model server (a cache hit, a refusal)
            return b"gateway;dur=%.2f, upstream;dur=0.00" % (total * 1000)
        gateway = total - upstream if total > upstream else 0.0
        return b"gateway;dur=%.2f, upstream;dur=%.2f" % (gateway * 1000, upstream * 1000)


CURRENT_TIMING: ContextVar[Timing | None] = ContextVar("gateway_timing", default=None)


def record_upstream(seconds: float) -> None:
    timing = CURRENT_TIMING.get()
    if timing is not None:
        timing.upstream += seconds

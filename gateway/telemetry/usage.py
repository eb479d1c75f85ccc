"""Per-tenant usage: counted in memory as each request finishes, written to the store behind.

The observer (``telemetry.access_log``) hands every finished call, whichever frontend ran it
(HTTP, gRPC, an async job's run), to :meth:`UsageRecorder.record`: a few dict and list
increments, no I/O and no await. Counts are kept per minute × tenant × model × version:

``requests``
    every call (one that became a :class:`~gateway.call.Call`: inference, metadata, passthrough,
    an async job's submit and, separately, its run);
``errors_4xx``, ``errors_5xx``
    by the status answered (a client gone before the answer, 499, is a 4xx);
``cache_hits``
    answered from the response cache without a backend call of its own (``Cache-Status`` hit,
    or collapsed onto another caller's fill);
``rate_limited``
    refused with 429 by the rate-limit step (a plan's rate, quota, concurrency, per-key or
    model limit);
``bytes_in``, ``bytes_out``
    the request body's declared size (``Content-Length``; a job's stored body) and the answer's
    body bytes sent. gRPC calls and bodies sent without a length count 0 here (the gRPC lane
    sees messages, not their encoded size).

Calls without a tenant (anonymous, or refused before authentication: a flood of bad keys
shows up here) count under tenant ``""``; a model name not served here under model ``""``.

A background task (:meth:`start`, :meth:`close`, as the API keys' last-used times) hands the
accumulated counts to the store every ``GATEWAY_USAGE_FLUSH_SECONDS``, in one call
(``Store.usage_add``: one Redis pipeline). When the store fails, the counts are kept and merged
into the next flush; :meth:`close` flushes once more at shutdown.

:class:`TenantRequests` is the Prometheus side: ``gateway_tenant_requests_total{tenant,
status_class}``, whose tenant label is bounded (``GATEWAY_METRICS_MAX_TENANTS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final

from prometheus_client import CollectorRegistry, Counter

from gateway.call import Call
from gateway.errors import GatewayError
from gateway.store.usage import USAGE_FIELDS, UsageKey, UsageStore
from gateway.telemetry.cardinality import LabelCap
from gateway.telemetry.tally import Count, Folded

logger = logging.getLogger("gateway.usage")

_CLASSES: Final = ("0xx", "1xx", "2xx", "3xx", "4xx", "5xx")
_CACHED: Final = frozenset({"hit", "collapsed"})
_Key = tuple[int, str, str, str]  # minute, tenant, model, version
_MAX_SEEN: Final = 4096  # (tenant, status) pairs kept for the per-request lookup


class TenantRequests:
    """``gateway_tenant_requests_total{tenant, status_class}``.

    The label cardinality is bounded (:class:`~gateway.telemetry.cardinality.LabelCap`): the
    first ``max_tenants`` tenants this worker process counts get a ``tenant`` label of their
    own (anonymous calls, ``""``, are one of them when they come early enough), every later one
    is counted as ``other``. A tenant keeps its own label for the life of the process. The
    count is per worker process, so with ``--workers N`` the fleet can show up to
    N × ``max_tenants`` names; a tenant actually named ``other`` shares its label with the
    overflow.
    """

    def __init__(self, registry: CollectorRegistry, max_tenants: int) -> None:
        self.counter = Counter(
            "gateway_tenant_requests",
            "Requests per tenant and status class; the first GATEWAY_METRICS_MAX_TENANTS "
            "tenants a worker sees get their own label, the rest are 'other'.",
            ["tenant", "status_class"],
            registry=None,
        )
        self.folded = Folded(registry, (self.counter,))  # counted in place, folded at scrape
        self._direct = self.folded.direct
        self.max_tenants = max_tenants
        self._tenants = LabelCap(max_tenants)
        self._children: dict[tuple[str, int], Count] = {}  # by label and status class
        self._seen: dict[tuple[str, int], Count] = {}  # by tenant and status: the lookup

    def label(self, tenant: str) -> str:
        """The ``tenant`` label of ``tenant``'s requests."""
        return self._tenants.label(tenant)

    def count(self, tenant: str, status: int) -> None:
        tally = self._seen.get((tenant, status)) or self._bind(tenant, status)
        if self._direct:
            tally.child.inc()
        else:
            tally.n += 1

    def _bind(self, tenant: str, status: int) -> Count:
        label, group = self.label(tenant), min(status // 100, 5)
        tally = self._children.get((label, group))
        if tally is None:  # at most (max_tenants + 1) × 6 children
            child = self.counter.labels(label, _CLASSES[group])
            tally = self._children[(label, group)] = self.folded.count(child)
        if len(self._seen) < _MAX_SEEN:
            self._seen[(tenant, status)] = tally
        return tally


class UsageRecorder:
    """Counts usage per request and writes it to the store in batches (see the module)."""

    def __init__(
        self,
        store: UsageStore,
        flush_every: float,
        metric: TenantRequests | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metric = metric
        self._every = flush_every
        self._clock = clock
        self._pending: dict[_Key, list[int]] = {}
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def pending(self) -> int:
        """How many (minute, tenant, model, version) rows wait for the next flush."""
        return len(self._pending)

    def record(
        self,
        call: Call,
        tenant: str,
        model: str,
        version: str,
        status: int,
        sent: int,
        received: int | None = None,
    ) -> None:
        """Count one finished call (in memory only). ``tenant``, ``model`` and ``version`` as
        the observer names them ("" when unknown); ``sent``: the answer's body bytes;
        ``received``: the request's, when the frontend knows them (gRPC), else the length
        the call's payload declared."""
        now = int(self._clock())
        key = (now - now % 60, tenant, model, version)
        counts = self._pending.get(key)
        if counts is None:
            counts = self._pending[key] = [0] * len(USAGE_FIELDS)
        counts[0] += 1
        if status >= 500:
            counts[2] += 1
        elif status >= 400:
            counts[1] += 1
        if call.cache in _CACHED:
            counts[3] += 1
        if call.limited == "rejected":
            counts[4] += 1
        payload = call.payload
        if received is not None:
            counts[5] += received
        elif payload is not None:
            counts[5] += payload.length or 0
        counts[6] += sent
        if self.metric is not None:
            self.metric.count(tenant, status)

    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._flush_loop(), name="usage:flush")

    async def close(self) -> None:
        """Stop the loop after its last flush (an in-flight flush is not cancelled)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is not None:
            await task
        else:
            await self.flush()
        if self._pending:
            lost = sum(counts[0] for counts in self._pending.values())
            logger.error("usage of %d requests could not be written at shutdown", lost)

    async def flush(self) -> bool:
        """Hand what was counted since the last flush to the store, in one call; on failure
        keep it for the next flush. Whether the store took it (or there was nothing)."""
        pending, self._pending = self._pending, {}
        if not pending:
            return True
        batch = {
            UsageKey(*key): dict[str, int](zip(USAGE_FIELDS, counts, strict=True))
            for key, counts in pending.items()
        }
        try:
            await self.store.usage_add(batch)
        except GatewayError as exc:
            logger.warning("usage not written yet (kept for the next flush): %s", exc)
            self._keep(pending)
            return False
        except Exception:
            logger.exception("usage not written (kept for the next flush)")
            self._keep(pending)
            return False
        except BaseException:
            self._keep(pending)  # cancelled mid-write: better counted twice than lost
            raise
        return True

    def _keep(self, pending: dict[_Key, list[int]]) -> None:
        """Merge counts that were not written into those counted since."""
        for key, counts in pending.items():
            mine = self._pending.get(key)
            if mine is None:
                self._pending[key] = counts
            else:
                for i, value in enumerate(counts):
                    mine[i] += value

    async def _flush_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._every):
                    await self._stopping.wait()
            await self.flush()  # every period, and once more when stopping
            if self._stopping.is_set():
                return

"""The store's records and its interface, shared by the Redis and the in-memory implementation.

Records are frozen values, JSON on the wire (:meth:`to_json` / :meth:`from_json`). Reading
ignores fields it does not know and fills missing ones with their defaults, so gateways of two
versions can share one Redis during a rolling upgrade.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, get_args

from gateway.errors import StoreUnavailable as StoreUnavailable  # what every method raises
from gateway.jobs.model import Claimed, DeadLetter, Job, JobStatus, SubmitOutcome
from gateway.store.batches import BatchStore
from gateway.store.record import Record as _Record
from gateway.store.series import SeriesStore
from gateway.store.sessions import SessionStore
from gateway.store.usage import UsageStore
from gateway.store.webhooks import WebhookStore

RESYNC: Final = "*"
"""Yielded by :meth:`Store.subscribe` once subscribed and after every reconnect: messages may have
been missed, so a subscriber drops whatever it cached from the channel."""

AUDIT_CAP: Final = 10_000
"""How many audit entries a store keeps (the newest)."""


@dataclass(frozen=True, slots=True)
class Tenant(_Record):
    """A customer of the gateway: what its credentials may reach."""

    name: str
    plan: str | None = None
    models: tuple[str, ...] = ()  # allowed model name globs (fnmatch); empty = every model
    scopes: tuple[str, ...] = ()  # the scopes this tenant's credentials may carry; empty = any
    metadata: Mapping[str, str] = field(default_factory=dict)
    created_at: float = 0.0
    disabled: bool = False
    # hosts a Callback-URL may name: exact ("hooks.acme.test") or "*.acme.test" (subdomains)
    callback_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class APIKey(_Record):
    """An API key: ``<key_id>.<secret>`` is handed out once, only the secret's HMAC is kept."""

    key_id: str  # public id (the part of the key before the secret)
    tenant: str
    secret_hash: str  # hex HMAC-SHA256 of the secret; the secret itself is never stored
    scopes: tuple[str, ...] = ()
    created_at: float = 0.0
    expires_at: float | None = None  # unix seconds; a rotated key's grace deadline is written here
    revoked_at: float | None = None
    last_used_at: float | None = None
    name: str = ""
    rotated_to: str | None = None  # key_id of the key that replaced this one


@dataclass(frozen=True, slots=True)
class AuditEntry(_Record):
    """One administrative action, for the audit log."""

    at: float
    actor: str  # who (e.g. "admin-token", "jwt:alice@issuer")
    action: str  # e.g. "tenant.create", "key.revoke"
    target: str  # e.g. "tenant:acme", "key:abcd1234"
    detail: Mapping[str, Any] = field(default_factory=dict)
    request_id: str | None = None


LimitKind = Literal["bucket", "window", "concurrency"]


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit a request must pass. Limits with the same ``group`` are decided atomically
    together (in Redis: one Lua call, their keys share the hash tag ``{group}``).

    ``bucket``: a token bucket of ``limit`` tokens (the burst) refilled at ``rate`` per second.
    ``window``: ``limit`` per window of ``window`` seconds, windows aligned to multiples of
    ``window`` since the unix epoch on the store's clock. ``concurrency``: at most ``limit``
    leases at once; a lease not released within ``lease_ttl`` seconds is dropped (a crashed
    replica). A bucket or a window spends the request's cost; a concurrency limit one slot.
    """

    group: str  # e.g. "t:acme", "ip:10.0.0.1", "m:fraud"
    name: str  # e.g. "rate", "quota-day", "key:ab12", "concurrency"; unique within the group
    kind: LimitKind
    limit: float  # bucket: capacity (burst); window: quota per window; concurrency: max in flight
    rate: float = 0.0  # bucket: tokens refilled per second
    window: float = 0.0  # window: length in seconds
    lease_ttl: float = 60.0  # concurrency: a lease not released within this is dropped

    def __post_init__(self) -> None:
        check_group(self.group)
        where = f"limit {self.group!r}/{self.name!r}"
        if self.kind not in get_args(LimitKind):
            raise ValueError(f"{where}: kind must be bucket, window or concurrency")
        if not (math.isfinite(self.limit) and self.limit >= 0):
            raise ValueError(f"{where}: limit must be a finite number >= 0, got {self.limit}")
        if self.kind == "bucket" and not (math.isfinite(self.rate) and self.rate > 0):
            raise ValueError(f"{where}: a bucket's rate must be positive, got {self.rate}")
        if self.kind == "window" and not (math.isfinite(self.window) and self.window >= 1e-3):
            raise ValueError(f"{where}: a window must be at least 1 ms, got {self.window}")
        if self.kind == "concurrency" and not (
            math.isfinite(self.lease_ttl) and self.lease_ttl >= 1e-3
        ):
            raise ValueError(f"{where}: lease_ttl must be at least 1 ms, got {self.lease_ttl}")


@dataclass(frozen=True, slots=True)
class LimitState:
    """Where one limit stands after a request (or, if it was rejected, without it)."""

    group: str
    name: str
    limit: float
    remaining: float  # bucket: whole tokens left; window: quota left; concurrency: free slots
    reset: float  # seconds until back to full (bucket); until the window ends; concurrency: 0


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of :meth:`Store.take`."""

    admitted: bool
    states: tuple[LimitState, ...]  # one per limit, in the order given
    retry_after: float  # 0 if admitted, else seconds until the blocking limits could admit it
    lease: str | None = None  # set when concurrency limits were taken: pass it to release()
    filling: bool | None = None  # take(lock=...): whether this call got the missing entry's lock


def check_take(limits: Sequence[Limit], cost: float, lease: str | None) -> None:
    """Refuse what :meth:`Store.take` cannot decide: a negative cost, a name twice in a group,
    a concurrency limit without a lease."""
    if not (math.isfinite(cost) and cost >= 0):
        raise ValueError(f"take: cost must be a finite number >= 0, got {cost}")
    seen: set[tuple[str, str]] = set()
    for limit in limits:
        if (limit.group, limit.name) in seen:
            raise ValueError(f"take: limit {limit.group!r}/{limit.name!r} is given twice")
        seen.add((limit.group, limit.name))
        if limit.kind == "concurrency" and not lease:
            raise ValueError(f"take: limit {limit.group!r}/{limit.name!r} needs a lease id")


def check_group(group: str) -> None:
    """A group is the hash tag of its Redis keys (``{group}``): an empty one, or one starting
    with ``}``, would be no tag, and the keys of one Lua call would fall in different slots."""
    if not group or group.startswith("}"):
        raise ValueError(f"group {group!r}: must be non-empty and not start with '}}'")


def check_cache_key(group: str, key: str) -> None:
    """A cache key ending in ``:lock`` would be another key's lock (``<key>:lock``)."""
    check_group(group)
    if key.endswith(":lock"):
        raise ValueError(f"cache key {key!r}: must not end in ':lock'")


class LimitsAndCache(Protocol):
    """What a store hands its limits and cache operations to (the Lua or in-memory engine)."""

    async def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> tuple[Verdict, bytes | None]: ...
    async def release(self, limits: Sequence[Limit], lease: str) -> None: ...
    async def cache_get(self, group: str, key: str) -> bytes | None: ...
    async def cache_set(
        self, group: str, key: str, value: bytes, ttl: float, *, unlock: bool = False
    ) -> None: ...
    async def cache_lock(self, group: str, key: str, ttl: float) -> bool: ...
    async def cache_unlock(self, group: str, key: str) -> None: ...
    async def cache_purge(self, pattern: str) -> int: ...


class DelegatedLimits:
    """The Store's limit and cache methods, handed to ``self._limits`` (both stores use it).
    Each hands back the engine's own coroutine: no coroutine of its own to run per call."""

    _limits: LimitsAndCache

    def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> Coroutine[Any, Any, tuple[Verdict, bytes | None]]:
        return self._limits.take(limits, cost=cost, lease=lease, cache=cache, lock=lock)

    def release(self, limits: Sequence[Limit], lease: str) -> Coroutine[Any, Any, None]:
        return self._limits.release(limits, lease)

    def cache_get(self, group: str, key: str) -> Coroutine[Any, Any, bytes | None]:
        return self._limits.cache_get(group, key)

    def cache_set(
        self, group: str, key: str, value: bytes, ttl: float, *, unlock: bool = False
    ) -> Coroutine[Any, Any, None]:
        return self._limits.cache_set(group, key, value, ttl, unlock=unlock)

    def cache_lock(self, group: str, key: str, ttl: float) -> Coroutine[Any, Any, bool]:
        return self._limits.cache_lock(group, key, ttl)

    def cache_unlock(self, group: str, key: str) -> Coroutine[Any, Any, None]:
        return self._limits.cache_unlock(group, key)

    def cache_purge(self, pattern: str) -> Coroutine[Any, Any, int]:
        return self._limits.cache_purge(pattern)


JOB_GROUP: Final = "workers"
"""The consumer group every job worker reads the queue in."""


class JobStore(Protocol):
    """The job queue and records (``gateway.jobs``): on Redis a stream with a consumer group
    (XREADGROUP, XACK, XAUTOCLAIM after a visibility timeout, a dead-letter stream), in memory
    the same state machine in this process. ``now`` is the gateway's clock (unix seconds) for
    the timestamps a job shows; idle times are the store's own.

    Every operation is atomic where it must be (Lua on Redis, one slot): submit with its
    idempotency key and the owner's queued count, start, finish, release, cancel.
    """

    async def job_submit(self, job: Job, *, max_queued: int) -> tuple[SubmitOutcome, Job | None]:
        """Store and enqueue ``job`` (status queued): ``("created", job)``. With an
        ``idempotency_key`` that the same owner already used for a job still kept:
        ``("existing", that job)``, nothing enqueued. With ``max_queued`` of the owner's jobs
        already queued: ``("full", None)``."""
        ...

    async def job_get(self, job_id: str) -> Job | None:
        """The job, or None (unknown, or expired after its result's time to live)."""
        ...

    async def job_list(
        self,
        *,
        owner: str | None = None,
        status: JobStatus | None = None,
        model: str | None = None,
        batch_id: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[Job], str | None]:
        """Jobs newest first (``owner`` None: every owner's), filtered, at most ``limit``,
        from after ``cursor``; and the cursor of the next page (None: no more)."""
        ...

    async def job_cancel(self, job_id: str, now: float, ttl: float) -> Job | None:
        """Cancel the job if it is queued (kept ``ttl`` seconds more); the job as it is
        after (another status: unchanged), None when unknown."""
        ...

    async def job_claim(
        self, consumer: str, count: int, now: float, *, block: float = 0.0
    ) -> list[Claimed]:
        """Up to ``count`` queued jobs, now ``running`` under ``consumer`` (attempts + 1).
        With ``block`` (seconds), when none is queued, wait up to that long for one to
        arrive (from any process sharing the store) and take it at once; ``now`` is the
        time of the call, and a job taken after a wait starts ``now`` plus the wait. A store
        may block less than asked (Redis Cluster: under its socket timeout)."""
        ...

    async def job_reclaim(
        self, consumer: str, idle: float, max_deliveries: int, count: int, now: float, ttl: float
    ) -> tuple[list[Claimed], list[str]]:
        """Take over up to ``count`` deliveries idle ``idle`` seconds or more (their worker
        died: XAUTOCLAIM); one delivered more than ``max_deliveries`` times goes to the
        dead-letter list instead and its job is failed (kept ``ttl`` seconds). The runs taken
        over, and the ids of the jobs dead-lettered."""
        ...

    async def job_touch(self, consumer: str, entries: Sequence[str]) -> None:
        """Keep ``consumer``'s deliveries from being reclaimed (their idle time starts over)."""

    async def job_release(
        self, claimed: Claimed, delay: float, now: float, *, attempt: bool
    ) -> bool:
        """Put a running job back in the queue after ``delay`` seconds; ``attempt=False``
        takes back the attempt its start counted (a rate limit said wait). False when the
        job is no longer running (another delivery finished it)."""
        ...

    async def job_finish(
        self,
        claimed: Claimed,
        status: JobStatus,
        now: float,
        ttl: float,
        *,
        result: bytes | None = None,
        error: bytes | None = None,
        error_status: int | None = None,
        version: str | None = None,
    ) -> Job | None:
        """Acknowledge the delivery and, if the job is still running, finish it (kept ``ttl``
        seconds); the finished job, or None when it was not running any more. ``version``: the
        version that answered."""
        ...

    async def job_promote(self, now: float) -> int:
        """Move the put-back jobs whose delay is over into the queue; their number."""
        ...

    async def job_schedule(self, now: float) -> tuple[int, float | None]:
        """:meth:`job_promote`, and when the next put-back job will be due (unix seconds;
        None: none is waiting): a worker promotes at that time instead of at every turn."""
        ...

    async def job_forsake(self, consumer: str, keep: Sequence[str]) -> int:
        """Put back the deliveries ``consumer`` holds whose job never started (a blocked claim
        cancelled as its answer came: delivered, never read), except the entries ``keep``,
        so that they run now rather than after the visibility timeout; their number."""
        ...

    async def job_depth(self) -> dict[str, int]:
        """Queued jobs per model (put-back ones included), models with none left out."""
        ...

    async def job_dead(self, limit: int = 100) -> list[DeadLetter]:
        """The newest ``limit`` dead letters, newest first."""
        ...


class Store(JobStore, BatchStore, WebhookStore, UsageStore, SeriesStore, SessionStore, Protocol):
    """Shared state of the gateway: tenants, API keys, idempotency records, audit, events,
    jobs, batch files, webhooks, usage counters, the replicas' live series and console sessions.

    Implemented by :class:`~gateway.store.redis.RedisStore` (shared by every gateway process) and
    :class:`~gateway.store.memory.MemoryStore` (one process); both pass one conformance suite,
    ``tests/system/store/test_conformance.py``. Every method of the Redis store raises
    :class:`StoreUnavailable` when Redis cannot be reached, except :meth:`ping`, which answers
    ``False``, and :meth:`subscribe`, which reconnects.
    """

    async def put_tenant(self, tenant: Tenant) -> None:
        """Create or replace the tenant named ``tenant.name``."""

    async def get_tenant(self, name: str) -> Tenant | None: ...

    async def list_tenants(self) -> list[Tenant]:
        """Every tenant, sorted by name."""

    async def delete_tenant(self, name: str) -> bool:
        """Delete the tenant and all its keys; ``True`` if the tenant existed."""

    async def put_key(self, key: APIKey) -> None:
        """Create or replace a key. ``last_used_at`` only moves forward: the stored value is kept
        when it is later than the given one, so a read-modify-write (revoke, rotate) does not
        lose a concurrent :meth:`touch_keys`."""

    async def get_key(self, key_id: str) -> APIKey | None: ...

    async def list_keys(self, tenant: str) -> list[APIKey]:
        """The tenant's keys, sorted by ``created_at``."""

    async def touch_keys(self, used: Mapping[str, float]) -> None:
        """Set each key's ``last_used_at`` to the later of the stored and the given time.

        Unknown ids are ignored: this never creates (or resurrects a deleted) key.
        """

    async def remember(self, key: str, value: str, ttl: float) -> str | None:
        """Atomic set-if-absent for ``ttl`` seconds (``ttl > 0``): stores ``value`` and returns
        ``None``, or returns the value already stored (Idempotency-Key)."""

    async def audit(self, entry: AuditEntry) -> None:
        """Append to the audit log, which keeps the newest :data:`AUDIT_CAP` entries."""

    async def audit_log(self, limit: int = 100) -> list[AuditEntry]:
        """The newest ``limit`` entries, newest first."""

    async def publish(self, channel: str, message: str) -> None:
        """Send ``message`` to every current subscriber of ``channel`` (at most once)."""

    def subscribe(self, channel: str) -> AsyncIterator[str]:
        """An async generator of the channel's messages.

        Yields :data:`RESYNC` once the subscription is active (so a message published after
        that is delivered), then messages. After a lost connection it reconnects with bounded
        backoff and yields :data:`RESYNC` again. It ends, releasing its connection, when the
        consumer closes it (``aclose()``, ``contextlib.aclosing``) or its task is cancelled.
        """
        ...

    async def take(
        self,
        limits: Sequence[Limit],
        *,
        cost: float = 1.0,
        lease: str | None = None,
        cache: tuple[str, str] | None = None,
        lock: float | None = None,
    ) -> tuple[Verdict, bytes | None]:
        """Admit a request of ``cost`` if every limit admits it, and take it from all of them;
        a rejected request takes nothing from any limit.

        Time is the store's clock (Redis ``TIME``, never the gateway's). The limits of one group
        are decided atomically; several groups are decided one at a time, sorted by group, and
        when a later group rejects, what the earlier ones took is given back. ``lease`` (a
        unique id, required with a concurrency limit) is what :meth:`release` frees; a lease
        already held is renewed. ``retry_after`` is the largest wait over the rejecting limits
        (``math.inf`` when the cost exceeds a limit itself; for a full concurrency limit, until
        its oldest lease expires, an upper bound). ``cache=(group, key)`` reads that cache
        entry in the same round trip and returns it (or ``None``) second; with no limits,
        ``take`` only reads the cache and admits. With ``lock`` (seconds) as well, an admitted
        request whose entry is missing also tries the entry's fill lock (as :meth:`cache_lock`)
        in that round trip, and ``Verdict.filling`` says whether it got it.
        """
        ...

    async def release(self, limits: Sequence[Limit], lease: str) -> None:
        """Free ``lease`` in every concurrency limit among ``limits`` (others are ignored)."""

    async def cache_get(self, group: str, key: str) -> bytes | None: ...

    async def cache_set(
        self, group: str, key: str, value: bytes, ttl: float, *, unlock: bool = False
    ) -> None:
        """Store ``value`` (bytes, kept exact) for ``ttl`` seconds (``ttl > 0``); with
        ``unlock``, release the entry's fill lock in the same round trip."""

    async def cache_lock(self, group: str, key: str, ttl: float) -> bool:
        """Take the entry's fill lock for ``ttl`` seconds; ``True`` if this call got it."""
        ...

    async def cache_unlock(self, group: str, key: str) -> None: ...

    async def cache_purge(self, pattern: str) -> int:
        """Delete the cache entries whose ``"<group>|<key>"`` matches the glob ``pattern``
        (:func:`fnmatch.fnmatchcase`), e.g. ``"t:acme|*"``, ``"*|fraud:3:*"``; their number."""
        ...

    async def lease(self, name: str, holder: str, ttl: float) -> bool:
        """Take the lease ``name`` for ``ttl`` seconds if it is free, or renew it if ``holder``
        holds it; ``True`` if ``holder`` holds it now (one rollout driver among replicas)."""
        ...

    async def release_lease(self, name: str, holder: str) -> None:
        """Free the lease if ``holder`` holds it."""

    async def rollout_state(self, model: str) -> tuple[int, str | None]:
        """The model's rollout state (JSON) and its revision; ``(0, None)`` when there is none."""
        ...

    async def rollout_swap(self, model: str, rev: int, state: str) -> bool:
        """Write the state if its revision is still ``rev`` (it becomes ``rev + 1``); ``False``
        when another writer got there first (compare and set)."""
        ...

    async def rollout_models(self) -> list[str]:
        """Every model that ever had a rollout state, sorted."""
        ...

    async def rollout_event(self, model: str, event: str, cap: int) -> None:
        """Append to the model's event log, which keeps the newest ``cap`` entries."""

    async def rollout_events(self, model: str, limit: int) -> list[str]:
        """The newest ``limit`` events, newest first."""
        ...

    async def rollout_count(
        self, model: str, step: str, counts: Mapping[str, Mapping[str, int]], ttl: float
    ) -> None:
        """Add ``counts`` (version → field → increment) to the figures of one rollout step;
        they are kept ``ttl`` seconds after the last addition."""

    async def rollout_figures(
        self, model: str, step: str, versions: Sequence[str]
    ) -> dict[str, dict[str, int]]:
        """The summed figures of one step, per version (empty for a version with none)."""
        ...

    async def ping(self) -> bool:
        """``True`` if the store answers (for ``/readyz``); never raises for an outage."""

    async def close(self) -> None:
        """Release connections. Subscriptions still open end at their next wait."""

"""The job record: what was submitted, who submitted it, and where it stands.

A job is a KServe v2 ``infer`` or TF Serving ``:predict`` request accepted with
``Prefer: respond-async``, kept as it was received (after inflating ``Content-Encoding``)
with the few headers needed to decode it again, and the caller as authenticated at submit
(its credentials are never re-checked: they may have expired by the time the job runs).

    queued ──► running ──► succeeded | failed
      │  ▲        │
      │  └────────┘ put back (a rate limit said wait; a retryable backend error, with backoff)
      └──► cancelled (DELETE while queued)
"""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, Final, Literal, Self, get_args

import orjson

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JOB_STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
DONE: Final = frozenset[JobStatus]({"succeeded", "failed", "cancelled"})
JobProtocol = Literal["v1", "v2"]
"""``v2``: KServe v2 ``/v2/models/{m}[/versions/{v}]/infer`` (JSON or binary tensors);
``v1``: TF Serving REST ``/v1/models/{m}[/versions/{v}]:predict``."""

DEAD_LETTER_ERROR: Final = (
    b'{"error":"the job was delivered too many times without finishing","code":"dead_lettered"}'
)
"""The error of a job moved to the dead-letter list (its status: 500)."""

KEPT_HEADERS: Final = ("content-type", "inference-header-content-length", "x-model-version")
"""The request headers a job keeps: what decoding its body again needs, and the pin."""


@dataclass(frozen=True, slots=True)
class CallerSnapshot:
    """The caller as authenticated at submit: the job's replay re-authorizes these scopes
    (against the tenant as it is at run time), it never re-authenticates."""

    subject: str
    tenant: str | None
    scopes: tuple[str, ...]
    issuer: str
    via: str  # "api_key", "jwt", "client_cert"
    credential_id: str | None = None  # the API key's id (per-key limits), else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {
            k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known
        }
        return cls(**values)


def new_job_id(now: float | None = None) -> str:
    """``j`` + 14 hex digits of microseconds + 16 random hex digits: unique, and sorted by
    creation time (the lists page through the ids in order)."""
    micros = int((time.time() if now is None else now) * 1_000_000)
    return f"j{micros:014x}{os.urandom(8).hex()}"


def fingerprint(
    model: str, pin: str | None, protocol: str, body: bytes, headers: tuple[tuple[str, str], ...]
) -> str:
    """What identifies a request for ``Idempotency-Key``: the same key with another
    fingerprint is a 409."""
    digest = hashlib.sha256()
    for part in (model, pin or "", protocol, orjson.dumps(headers).decode()):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Job:
    """One job. ``owner`` is who may see it: the tenant, or for a caller without one
    ``~<issuer>:<subject>``, or ``""`` for anonymous calls (a gateway without auth)."""

    id: str
    owner: str
    model: str
    protocol: JobProtocol
    body: bytes = field(repr=False)
    pin: str | None = None
    headers: tuple[tuple[str, str], ...] = ()  # KEPT_HEADERS, lower-case names
    caller: CallerSnapshot | None = None
    status: JobStatus = "queued"
    attempts: int = 0  # runs started (a run put back by a rate limit does not count)
    created_at: float = 0.0
    started_at: float | None = None  # the latest run's start
    finished_at: float | None = None
    callback_url: str | None = None
    idempotency_key: str | None = None
    fingerprint: str = ""
    batch_id: str | None = None  # set by batch files: the batch this line belongs to
    custom_id: str | None = None  # and the line's own id
    result: bytes | None = field(default=None, repr=False)  # the protocol's JSON reply
    error: bytes | None = None  # the protocol's error JSON ({"error": "<message>", "code"})
    error_status: int | None = None  # the HTTP status that error would have had
    version: str | None = None  # the version that answered (the pin, or traffic's choice)

    @property
    def tenant(self) -> str | None:
        return self.caller.tenant if self.caller is not None else None

    @property
    def done(self) -> bool:
        return self.status in DONE

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k == name), None)

    def spec_json(self) -> str:
        """The immutable part (everything a run does not change), as JSON; the body base64."""
        data = asdict(self)
        for name in _STATE:
            data.pop(name)
        data["body"] = base64.b64encode(self.body).decode()
        return orjson.dumps(data).decode()

    @classmethod
    def from_parts(cls, spec: str | bytes, state: Mapping[str, str]) -> Self:
        """A job from :meth:`spec_json` and its state fields (as :meth:`state_fields`)."""
        data = orjson.loads(spec)
        known = {f.name for f in fields(cls)} - set(_STATE)
        values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
        values["body"] = base64.b64decode(data.get("body", ""))
        values["headers"] = tuple(tuple(pair) for pair in data.get("headers", ()))
        caller = data.get("caller")
        values["caller"] = CallerSnapshot.from_json(caller) if caller else None
        return cls(**values, **_parse_state(state))

    def state_fields(self) -> dict[str, str]:
        """The mutable part as text fields (a Redis hash; ``""`` for none)."""
        return {
            "status": self.status,
            "attempts": str(self.attempts),
            "started_at": _text(self.started_at),
            "finished_at": _text(self.finished_at),
            "result": (self.result or b"").decode(),
            "error": (self.error or b"").decode(),
            "error_status": _text(self.error_status),
            "version": self.version or "",
        }

    def with_state(self, state: Mapping[str, str]) -> Job:
        return replace(self, **_parse_state(state))


_STATE: Final = (
    "status", "attempts", "started_at", "finished_at", "result", "error", "error_status",
    "version",
)  # fmt: skip


def _text(value: float | int | None) -> str:
    return "" if value is None else repr(value)


def _parse_state(state: Mapping[str, str]) -> dict[str, Any]:
    def number(name: str) -> float | None:
        text = state.get(name) or ""
        return float(text) if text else None

    status = state.get("status") or "queued"
    if status not in JOB_STATUSES:
        raise ValueError(f"job: unknown status {status!r}")
    error_status = number("error_status")
    return {
        "status": status,
        "attempts": int(state.get("attempts") or 0),
        "started_at": number("started_at"),
        "finished_at": number("finished_at"),
        "result": (state.get("result") or "").encode() or None,
        "error": (state.get("error") or "").encode() or None,
        "error_status": int(error_status) if error_status is not None else None,
        "version": state.get("version") or None,
    }


@dataclass(frozen=True, slots=True)
class Claimed:
    """A job a worker took from the queue: ``entry`` is its delivery (the stream entry id),
    what :meth:`JobStore.job_finish`, ``job_release`` and ``job_touch`` name."""

    job: Job
    entry: str
    deliveries: int = 1


SubmitOutcome = Literal["created", "existing", "full"]


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A job whose delivery kept failing (the worker died on it every time): moved aside."""

    job_id: str
    owner: str
    model: str
    deliveries: int
    at: float

"""A stored job run as a Call of kind ``infer`` through the chain of the route table live now,
and its answer (or error) encoded as the submitted protocol's JSON.

The call carries the caller as authenticated at submit (``origin="job"``): the auth step
re-authorizes it without re-authenticating, against the tenant record as it is now (a tenant
disabled since submit fails the job). Every later step (traffic, rate limit, cache, the
backend) runs as for a live call, so a job spends its tenant's rate like one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial

import orjson

from gateway.auth.authenticator import Caller
from gateway.auth.jwt import Principal
from gateway.auth.keys import KeyVerifier
from gateway.auth.scopes import narrow
from gateway.call import Call, Decoder, Reply
from gateway.codecs import binary, v1, v2
from gateway.config.live import Runtime
from gateway.errors import BadGateway, BadRequest, GatewayError, Unauthorized
from gateway.headers import Headers
from gateway.jobs.model import Job
from gateway.telemetry.access_log import Observer
from gateway.telemetry.timing import CURRENT_TIMING, Timing


class StoredBody:
    """A job's body as a call's payload."""

    __slots__ = ("_body",)

    def __init__(self, body: bytes) -> None:
        self._body = body

    async def read(self) -> bytes:
        return self._body

    async def stream(self) -> AsyncIterator[bytes]:
        yield self._body

    @property
    def length(self) -> int | None:
        return len(self._body)


def decoder_for(protocol: str, headers: Headers) -> Decoder:
    """The codec a frontend of ``protocol`` decodes a request body with (400 when the
    headers cannot say how)."""
    if protocol == "v1":
        return v1.decode_request
    length = binary.header_length(headers.one(binary.HEADER.lower()), BadRequest)
    return v2.decode_request if length is None else partial(v2.decode_request, header_length=length)


def required_scopes(model: str, pin: str | None) -> tuple[str, ...]:
    """What an inference call needs, as the HTTP frontends ask it."""
    return (f"predict:{model}", f"pin:{model}") if pin else (f"predict:{model}",)


async def caller_of(job: Job, keys: KeyVerifier) -> Caller | None:
    """The submit's caller, with the tenant as it is now (its scopes narrow the caller's)."""
    snap = job.caller
    if snap is None:
        return None
    tenant = await keys.tenant(snap.tenant) if snap.tenant else None
    scopes = frozenset(snap.scopes)
    if tenant is not None:
        if tenant.disabled:
            raise Unauthorized(f"tenant {tenant.name!r} is disabled")
        scopes = narrow(scopes, tenant.scopes)
    principal = Principal(
        subject=snap.subject,
        tenant=snap.tenant,
        scopes=scopes,
        issuer=snap.issuer,
        expires_at=None,
        via=snap.via,
    )
    return Caller(principal, tenant)


@dataclass(frozen=True, slots=True)
class Answer:
    """What a run produced: the protocol's JSON reply, and the version that answered."""

    body: bytes
    version: str | None = None


async def replay(
    job: Job, runtime: Runtime, keys: KeyVerifier, request_id: str, observer: Observer | None = None
) -> Answer:
    """Run ``job`` once on ``runtime``; raises the GatewayError a live call would get.

    With ``observer``, the run is counted like a request (protocol ``job``: the request
    metrics, the access line with the job's path ``/jobs/{id}``), answered or not."""
    headers = Headers.of(job.headers)
    call = Call(
        "infer",
        request_id,
        headers,
        path=f"/jobs/{job.id}",
        model=job.model,
        pin=job.pin,
        required=required_scopes(job.model, job.pin),
        payload=StoredBody(job.body),
        decoder=decoder_for(job.protocol, headers),
        origin="job",
    )
    timing = Timing()
    token = CURRENT_TIMING.set(timing)
    status, sent = 500, 0
    try:
        call.caller = await caller_of(job, keys)
        reply = await runtime.chains["infer"](call)
        body = encode_reply(job, call, reply)
        status, sent = reply.status, len(body)
        return Answer(body, call.version)
    except GatewayError as exc:
        status = exc.status
        raise
    finally:
        CURRENT_TIMING.reset(token)
        if observer is not None:
            models = runtime.table.models
            observer.done(
                "POST", call.path, status, sent, request_id, timing, None, call, models, "job"
            )


def encode_reply(job: Job, call: Call, reply: Reply) -> bytes:
    """The reply as the submitted protocol's JSON (v2 binary requests get JSON too)."""
    asked = call.request
    if job.protocol == "v2":
        caller_id = asked.id if asked is not None else None
        if reply.v2_json is not None and caller_id is None:
            return reply.v2_json
        response, resolved = reply.tensors(), call.resolved
        if response is None or resolved is None:
            raise BadGateway("the call produced no tensors")
        return v2.encode_response(response, resolved.model, resolved.version, caller_id)
    response = reply.tensors()
    if response is None:
        raise BadGateway("the call produced no tensors")
    return v1.encode_response(response, columnar=asked.columnar if asked is not None else False)


def encode_error(exc: GatewayError) -> bytes:
    """The v1/v2 protocols' error object (both define ``error`` as a string)."""
    return orjson.dumps({"error": exc.message, "code": exc.code})

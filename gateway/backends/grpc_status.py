"""What a failed upstream RPC means: whether it may be tried again elsewhere, how it counts
against its replica, and the gateway error it becomes (the server's text kept, as
``upstream.raise_for_status`` keeps it for HTTP).

Only an RPC that never left the gateway is safe to repeat. grpcio tells that case apart by its
own status text: the channel could not connect ("failed to connect to all addresses": refused,
connect timeout, or no address resolved), so no byte of the request was sent. Everything else
may have run on the server: a status the server answered, a connection lost mid-call (also
UNAVAILABLE, "Stream removed"/"Socket closed"; on the wire it looks like a server's own
UNAVAILABLE, such as Triton's for a version not ready), a deadline.

    status (PROTOCOLS.md §5.2)              gateway error
    NOT_FOUND                               UpstreamError 404   unknown model or version
    INVALID_ARGUMENT, OUT_OF_RANGE          UpstreamError 400   the server judged the input
    FAILED_PRECONDITION                     UpstreamError 422   MLServer's 422
    RESOURCE_EXHAUSTED "larger than max"    UpstreamError 413   MLServer's 4 MiB default
    RESOURCE_EXHAUSTED (other)              UpstreamError 429
    UNAVAILABLE, never sent                 (retried) then NoHealthyReplica 503
    UNAVAILABLE (other)                     UpstreamError 503
    DEADLINE_EXCEEDED                       UpstreamTimeout 504
    any other (INTERNAL, UNKNOWN, ...)      BadGateway 502

A server kind may map the codes its own way (``Method.statuses``): TF Serving's, as its REST
API maps them (``tfserving_grpc``), so both of its wires answer with one status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

import grpc

from gateway.errors import BadGateway, GatewayError, UpstreamError, UpstreamTimeout

Outcome = Literal["ok", "retryable", "timeout", "error"]
"""How an attempt counts (``gateway_backend_attempts{outcome}``); all but ``ok`` count toward
the replica's outlier ejection, as for HTTP (where a reply's status never does)."""

# grpcio's own text when the channel could not connect (pick_first over the resolved addresses).
_NOT_SENT: Final = ("failed to connect to all addresses", "DNS resolution failed")
STATUS: Final[Mapping[grpc.StatusCode, int]] = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 422,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.UNAVAILABLE: 503,
}


def never_sent(code: grpc.StatusCode, details: str) -> bool:
    """Whether the RPC failed before it was sent, so another replica may safely take it."""
    return code == grpc.StatusCode.UNAVAILABLE and any(m in details for m in _NOT_SENT)


def outcome_of(code: grpc.StatusCode, details: str) -> Outcome:
    if never_sent(code, details):
        return "retryable"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return "timeout"
    if code == grpc.StatusCode.UNAVAILABLE:
        return "error"  # a connection lost mid-call, or the server's own UNAVAILABLE
    return "ok"  # the server answered, with a status


def error_of(
    code: grpc.StatusCode,
    details: str,
    backend: str,
    statuses: Mapping[grpc.StatusCode, int] = STATUS,
) -> GatewayError:
    """The gateway's error for an RPC that failed with ``code`` (not retried, or no longer):
    an ``UpstreamError`` with the HTTP status ``statuses`` gives the code (a server kind may
    map its codes its own way, as TF Serving's REST API does), else a ``BadGateway``."""
    text = details or code.name
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return UpstreamTimeout(f"backend {backend!r} did not answer in time: {text}")
    message = f"the model server answered {code.name}: {text}"
    status = statuses.get(code)
    if status is None:
        return BadGateway(message)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details:
        status = 413  # the request is over the server's message limit (PROTOCOLS.md §5.6)
    return UpstreamError(message, status=status)

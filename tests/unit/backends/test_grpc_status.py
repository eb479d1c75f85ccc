"""A failed upstream RPC: retried only if never sent, counted, and mapped to the gateway's
errors with the server's text (PROTOCOLS.md §5.2; the texts are the servers' own, observed)."""

from __future__ import annotations

import grpc
import pytest

from gateway.backends.grpc_status import error_of, never_sent, outcome_of
from gateway.backends.tfserving_grpc import TF_STATUS
from gateway.errors import BadGateway, GatewayError, UpstreamError, UpstreamTimeout

Code = grpc.StatusCode
REFUSED = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
    "Failed to connect to remote host: Connection refused"
)
SILENT = (
    "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:9: "
    "connection attempt timed out before receiving SETTINGS frame"
)
RESET = "Stream removed (recvmsg:Connection reset by peer (104))"
NOT_READY = "Request for unknown model: 'linear' version 2 is not at ready state"


@pytest.mark.parametrize(
    ("code", "details", "sent"),
    [
        (Code.UNAVAILABLE, REFUSED, False),
        (Code.UNAVAILABLE, SILENT, False),
        (Code.UNAVAILABLE, "DNS resolution failed for nowhere.invalid:8001", False),
        (Code.UNAVAILABLE, RESET, True),  # the server may have run it
        (Code.UNAVAILABLE, "Socket closed", True),
        (Code.UNAVAILABLE, NOT_READY, True),  # Triton's own UNAVAILABLE
        (Code.DEADLINE_EXCEEDED, "Deadline Exceeded", True),
        (Code.INTERNAL, "failed to connect to all addresses", True),  # only UNAVAILABLE
    ],
)
def test_only_an_rpc_never_sent_is_retried(code: Code, details: str, sent: bool) -> None:
    assert never_sent(code, details) is not sent


@pytest.mark.parametrize(
    ("code", "details", "outcome"),
    [
        (Code.UNAVAILABLE, REFUSED, "retryable"),
        (Code.DEADLINE_EXCEEDED, "Deadline Exceeded", "timeout"),
        (Code.UNAVAILABLE, RESET, "error"),
        (Code.NOT_FOUND, "Model linear with version 9 not found", "ok"),  # the server answered
        (Code.INTERNAL, "X has 3 features", "ok"),
    ],
)
def test_how_an_attempt_counts(code: Code, details: str, outcome: str) -> None:
    assert outcome_of(code, details) == outcome


@pytest.mark.parametrize(
    ("code", "details", "error", "status"),
    [
        (
            Code.NOT_FOUND,
            "Request for unknown model: 'linear' version 9 is not found",
            UpstreamError,
            404,
        ),
        (Code.INVALID_ARGUMENT, "unexpected shape for input 'INPUT0'", UpstreamError, 400),
        (Code.OUT_OF_RANGE, "index 9", UpstreamError, 400),
        (Code.FAILED_PRECONDITION, "model not ready", UpstreamError, 422),
        (
            Code.RESOURCE_EXHAUSTED,
            "SERVER: Received message larger than max (4800038 vs. 4194304)",
            UpstreamError,
            413,
        ),
        (Code.RESOURCE_EXHAUSTED, "too many requests", UpstreamError, 429),
        (Code.UNAVAILABLE, NOT_READY, UpstreamError, 503),
        (Code.DEADLINE_EXCEEDED, "Deadline Exceeded", UpstreamTimeout, 504),
        (Code.INTERNAL, "X has 3 features, but LinearRegression is expecting 4", BadGateway, 502),
        (Code.UNKNOWN, "Unexpected <class 'mlserver.errors.ModelNotFound'>", BadGateway, 502),
        (Code.UNIMPLEMENTED, "Method not found!", BadGateway, 502),
        (
            Code.UNAUTHENTICATED,
            "no credentials",
            BadGateway,
            502,
        ),  # the gateway's, not the caller's
        (Code.DATA_LOSS, "", BadGateway, 502),
    ],
)
def test_statuses_map_to_the_gateways_errors_keeping_the_text(
    code: Code, details: str, error: type[GatewayError], status: int
) -> None:
    mapped = error_of(code, details, "triton")
    assert type(mapped) is error
    assert mapped.status == status
    assert (details or code.name) in mapped.message
    if error is not UpstreamTimeout:
        assert mapped.message.startswith(f"the model server answered {code.name}: ")


@pytest.mark.parametrize(
    ("code", "default", "tf"),
    [
        (Code.FAILED_PRECONDITION, 422, 400),  # TF: 'Serving signature key "s" not found.'
        (Code.NOT_FOUND, 404, 404),
        (Code.INVALID_ARGUMENT, 400, 400),
        (Code.PERMISSION_DENIED, 502, 403),
        (Code.UNAUTHENTICATED, 502, 401),
        (Code.ABORTED, 502, 409),
        (Code.CANCELLED, 502, 499),
        (Code.UNIMPLEMENTED, 502, 502),  # TF REST's 501: a 5xx, which the gateway makes 502
        (Code.INTERNAL, 502, 502),
        (Code.UNAVAILABLE, 503, 503),
    ],
)
def test_tf_serving_maps_its_codes_as_its_rest_api_does(code: Code, default: int, tf: int) -> None:
    """Both wires of a TF Serving backend answer one status (http_server.cc ToHTTPStatusCode)."""
    assert error_of(code, "text", "b").status == default
    mapped = error_of(code, "text", "b", TF_STATUS)
    assert mapped.status == tf
    assert mapped.message == f"the model server answered {code.name}: text"

"""Every error the gateway raises on purpose, in one tree.

Each carries a status (HTTP, mapped to a gRPC code by the gRPC frontends), a stable
machine-readable ``code``, a message for people and the headers to send with it. Third-party
errors are mapped to these where they enter our code (``raise ... from exc``). Rendering belongs
to the frontends (``gateway.edge``): the v1/v2 inference endpoints answer the protocols' own
``{"error": "<message>", "code", "request_id"}``, everything else
``{"error": {"code", "message"}, "request_id"}``.

    GatewayError                      base of everything below
    ├── BadRequest                400 bad_request        malformed input (JSON, headers, tensors)
    │   ├── UnsupportedMethod     400 unsupported_method a TF Serving method the backend lacks
    │   ├── InvalidCallback       400 invalid_callback   a Callback-URL that is not a usable URL
    │   └── InvalidBatch          400 invalid_batch      a batch file with bad lines (names them)
    ├── Unauthorized              401 unauthorized       no or bad credentials
    ├── Forbidden                 403 forbidden          credentials without the scope
    │   └── CallbackNotAllowed    403 callback_not_allowed  a callback host or address refused
    ├── NotFound                  404 not_found          no such path, tenant, key, rollout
    │   ├── ModelNotFound         404 model_not_found
    │   └── VersionNotFound       404 version_not_found
    ├── MethodNotAllowed          405 method_not_allowed
    ├── Conflict                  409 conflict           the state moved on (exists, revoked)
    ├── PayloadTooLarge           413 payload_too_large
    ├── UnsupportedMediaType      415 unsupported_media_type
    ├── InvalidBody               422 invalid_body       an admin body that does not validate
    ├── InvalidTensor             422 invalid_tensor     a tensor that does not fit the model
    ├── RateLimited               429 rate_limited       a limit refused the call (Retry-After)
    │   ├── QuotaExhausted        429 rate_limited       a quota window is spent (waiting won't do)
    │   └── JobQueueFull          429 job_queue_full     the tenant's queued-jobs limit is reached
    ├── InternalError             500 internal           a bug: logged with its traceback
    ├── BadGateway                502 bad_gateway        the model server answered nonsense
    ├── Unavailable               503 unavailable        cannot serve right now (Retry-After)
    │   ├── NoHealthyReplica      503 no_healthy_replica
    │   ├── Overloaded            503 overloaded         circuit breaker open, or batch queue full
    │   ├── ModelNotReady         503 model_not_ready
    │   ├── LimitsUnavailable     503 limits_unavailable fail_closed and the store is out
    │   └── StoreUnavailable      503 store_unavailable  the shared store does not answer
    ├── UpstreamTimeout           504 upstream_timeout
    ├── UpstreamError         4xx/503 upstream_error     the model server's error, status kept
    └── StartupError              the process cannot start (never rendered to a client)
        ├── ConfigError           routes.yaml is invalid; ``issues`` has each path and line
        ├── AuthSetupError        the auth section names a secret or key file that is missing
        └── SettingsError         a setting is missing or wrong (also a ValueError)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class UnsupportedMethod(BadRequest):
    """The call asks for a method (TF Serving's classify, regress) its backend kind lacks."""

    code = "unsupported_method"


class InvalidCallback(BadRequest):
    """A ``Callback-URL`` that is not an absolute http(s) URL the gateway can call."""

    code = "invalid_callback"


class InvalidBatch(BadRequest):
    """A batch file (``POST /batches``) with bad lines: the message names the first few by
    number, and nothing of the batch is queued."""

    code = "invalid_batch"


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class CallbackNotAllowed(Forbidden):
    """A ``Callback-URL`` whose host is not on the tenant's allow-list, or resolves to an
    address the operator did not allow (loopback, private, link-local...)."""

    code = "callback_not_allowed"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class Conflict(GatewayError):
    status, code = 409, "conflict"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class InvalidBody(GatewayError):
    """An admin API body that parses but does not validate (names each field)."""

    status, code = 422, "invalid_body"


class InvalidTensor(GatewayError):
    """The request parses, but a tensor does not fit the model's declared inputs."""

    status, code = 422, "invalid_tensor"


class RateLimited(GatewayError):
    status, code = 429, "rate_limited"


class QuotaExhausted(RateLimited):
    """A quota window of the tenant's plan is spent: an async job fails on it instead of
    waiting (a rate or concurrency refusal only delays the job). Same code as its base."""


class JobQueueFull(RateLimited):
    code = "job_queue_full"


class InternalError(GatewayError):
    """Something the gateway did not expect: the traceback is logged, the client sees this."""

    status, code = 500, "internal"


class BadGateway(GatewayError):
    """The upstream answered something the gateway cannot use."""

    status, code = 502, "bad_gateway"


class Unavailable(GatewayError):
    status, code = 503, "unavailable"


class NoHealthyReplica(Unavailable):
    code = "no_healthy_replica"


class Overloaded(Unavailable):
    """Too much at once: the backend's circuit breaker is open (too many requests in flight)
    or a model version's batch queue is full (``gateway.batching``)."""

    code = "overloaded"


class ModelNotReady(Unavailable):
    code = "model_not_ready"


class LimitsUnavailable(Unavailable):
    """Rate limits cannot be checked (the store is out and the mode is ``fail_closed``)."""

    code = "limits_unavailable"


class StoreUnavailable(Unavailable):
    """The shared store cannot be reached (connection refused, timed out, cluster down)."""

    code = "store_unavailable"


class UpstreamTimeout(GatewayError):
    status, code = 504, "upstream_timeout"


class UpstreamError(GatewayError):
    """The model server answered with an error; its status and message are kept."""

    code = "upstream_error"

    def __init__(
        self, message: str, *, status: int, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message, headers=headers)
        self.status = status


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in routes.yaml: its dotted path, its line when known, what is wrong."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        return f"{where}{self.path or '<root>'}: {self.message}"


class StartupError(GatewayError):
    """The gateway cannot start (or apply a new route table) as configured."""


class ConfigError(StartupError):
    """routes.yaml could not be loaded; ``issues`` lists every problem with path and line."""

    code = "invalid_config"

    def __init__(self, source: str, issues: list[ConfigIssue]) -> None:
        super().__init__(f"{source}: " + "; ".join(str(i) for i in issues))
        self.source = source
        self.issues = issues


class AuthSetupError(StartupError):
    """The ``auth:`` section names a secret or key file that is not there."""

    code = "auth_setup"


class SettingsError(StartupError, ValueError):
    """A process setting (flag or ``GATEWAY_*`` variable) is missing or wrong."""

    code = "settings"

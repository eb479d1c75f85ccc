"""The gateway's one error hierarchy and its single JSON renderer.

Every failure a client can see is a :class:`GatewayError` carrying its HTTP status, a stable
machine-readable ``code`` and a human message. Third-party errors are mapped to these where they
enter our code (``raise ... from exc``); one handler in :mod:`gateway.app` renders them all as::

    {"error": {"code": "...", "message": "..."}, "request_id": "..."}
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson
from starlette.responses import Response


class GatewayError(Exception):
    """Base of every error the gateway renders to a client."""

    status: int = 500
    code: str = "internal"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers: dict[str, str] = dict(headers or {})


class BadRequest(GatewayError):
    status, code = 400, "bad_request"


class Unauthorized(GatewayError):
    status, code = 401, "unauthorized"


class Forbidden(GatewayError):
    status, code = 403, "forbidden"


class NotFound(GatewayError):
    status, code = 404, "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class VersionNotFound(NotFound):
    code = "version_not_found"


class MethodNotAllowed(GatewayError):
    status, code = 405, "method_not_allowed"


class PayloadTooLarge(GatewayError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    status, code = 415, "unsupported_media_type"


class InvalidTensor(GatewayError):
    """The request parses, but a tensor does not fit the model's declared inputs."""

    status, code = 422, "invalid_tensor"


class BadGateway(GatewayError):
    """The upstream answered something the gateway cannot use."""

    status, code = 502, "bad_gateway"


class NoHealthyReplica(GatewayError):
    status, code = 503, "no_healthy_replica"


class Overloaded(GatewayError):
    """The backend's circuit breaker is open (too many requests in flight)."""

    status, code = 503, "overloaded"


class UpstreamTimeout(GatewayError):
    status, code = 504, "upstream_timeout"


class UpstreamError(GatewayError):
    """The model server answered with an error; its status and message are kept."""

    code = "upstream_error"


def error_response(
    exc: GatewayError, request_id: str, extra_headers: Mapping[str, str] | None = None
) -> Response:
    body = {"error": {"code": exc.code, "message": exc.message}, "request_id": request_id}
    headers = {**exc.headers, **(extra_headers or {})}
    return Response(
        orjson.dumps(body), status_code=exc.status, headers=headers, media_type="application/json"
    )

"""Errors as HTTP answers, in the shape each endpoint's protocol defines.

- ``protocol``: the v1 and v2 inference endpoints (KServe v2 and TF Serving REST define
  ``error`` as a string; tritonclient and kserve print it), with ``code`` and ``request_id``
  beside it: ``{"error": "<message>", "code": "...", "request_id": "..."}``;
- ``gateway``: admin, ops and everything else:
  ``{"error": {"code": "...", "message": "..."}, "request_id": "..."}``.

OAuth2's token endpoint keeps RFC 6749's own shape (``gateway.edge.oauth``).
"""

from __future__ import annotations

from typing import Literal

import orjson

from gateway.edge.answer import Answer, raw_headers
from gateway.errors import GatewayError

ErrorShape = Literal["protocol", "gateway"]
PROTOCOL_PREFIXES = ("/v1/", "/v2/")


def shape_of(path: str) -> ErrorShape:
    """The shape for a path no route claims: the protocols' below ``/v1/`` and ``/v2/``."""
    return "protocol" if path.startswith(PROTOCOL_PREFIXES) or path in ("/v1", "/v2") else "gateway"


def error_answer(exc: GatewayError, request_id: str, shape: ErrorShape) -> Answer:
    """The error's answer, for either lane."""
    if shape == "protocol":
        body: dict[str, object] = {"error": exc.message, "code": exc.code}
    else:
        body = {"error": {"code": exc.code, "message": exc.message}}
    body["request_id"] = request_id
    return Answer(orjson.dumps(body), exc.status, headers=raw_headers(exc.headers.items()))

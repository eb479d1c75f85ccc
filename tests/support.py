"""What many tests share: free loopback ports and the routes.yaml builder."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent  # the repository's root


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def error_of(response: httpx.Response) -> tuple[str, str]:
    """(code, message) of an error answer, after checking it has its endpoint's shape: on the
    v1/v2 inference endpoints the protocols' ``{"error": "<message>", "code", "request_id"}``
    (a string, as KServe v2 and TF Serving define it), elsewhere the gateway's
    ``{"error": {"code", "message"}, "request_id"}``."""
    body = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"], body
    if response.request.url.path.startswith(("/v1/", "/v2/")):
        assert isinstance(body["error"], str), body
        return body["code"], body["error"]
    assert set(body["error"]) == {"code", "message"}, body
    return body["error"]["code"], body["error"]["message"]

"""The Call an HTTP inference request becomes (``InferenceHTTP._call``): every field it fills,
and the defaults of those it leaves to the chain. It builds the Call positionally (for speed),
so a field added to or moved in ``Call`` must not shift what lands where: each one is pinned."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

from gateway.auth.client_certs import client_cert_of
from gateway.call import Call
from gateway.codecs import v2
from gateway.edge.body import HTTPPayload
from gateway.edge.calls import InferenceHTTP
from gateway.edge.http import Exchange
from gateway.settings import Settings
from gateway.state import State
from gateway.telemetry.timing import Timing
from tests.certs import CA

_DEFAULTS = {
    "source": None,
    "request": None,
    "route": None,
    "deadline": None,
    "origin": "live",
    "caller": None,
    "auth_failure": None,
    "resolved": None,
    "limited": None,
    "probe": None,
    "cache": None,
    "batch": None,
}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _frontend() -> InferenceHTTP:
    return InferenceHTTP(cast(State, SimpleNamespace(settings=Settings())))


def _left_to_the_chain(call: Call) -> dict[str, object]:
    return {name: getattr(call, name) for name in _DEFAULTS}


def test_a_pinned_inference_over_tls_fills_every_field(tmp_path: Path) -> None:
    pem = CA(tmp_path).client("svc-a").cert.read_text()
    extensions = {"tls": {"client_cert_chain": [pem]}}
    raw = [(b"content-length", b"12"), (b"content-encoding", b"gzip")]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v2/models/m/versions/3/infer",
        "path_params": {"model": "m", "version": "3"},
        "scheme": "https",
        "client": ("10.0.0.7", 5555),
        "extensions": extensions,
        "headers": raw,
    }
    exchange = Exchange("rid-1", Timing())
    call = _frontend()._call(scope, _receive, exchange, "infer", v2.decode_request, payload=False)
    assert (call.kind, call.request_id, call.headers.raw) == ("infer", "rid-1", raw)
    assert (call.method, call.path, call.query, call.scheme) == (
        "POST",
        "/v2/models/m/versions/3/infer",
        "",
        "https",
    )
    assert call.peer == "10.0.0.7"
    assert call.client_cert is not None
    assert call.client_cert == client_cert_of(extensions)
    assert (call.model, call.pin, call.required) == ("m", "3", ("predict:m", "pin:m"))
    assert isinstance(call.payload, HTTPPayload)
    assert (call.payload.length, call.payload._encoding) == (12, "gzip")
    assert call.decoder is v2.decode_request
    assert _left_to_the_chain(call) == _DEFAULTS


def test_a_description_without_body_client_or_tls_takes_the_header_pin() -> None:
    raw = [(b"x-model-version", b"7")]
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v2/models/m",
        "path_params": {"model": "m"},
        "headers": raw,
    }
    exchange = Exchange("rid-2", Timing())
    call = _frontend()._call(scope, _receive, exchange, "metadata", None, payload=False)
    assert (call.kind, call.request_id, call.method, call.path) == (
        "metadata",
        "rid-2",
        "GET",
        "/v2/models/m",
    )
    assert (call.query, call.scheme, call.peer, call.client_cert) == ("", "http", None, None)
    assert (call.model, call.pin, call.required) == ("m", "7", ("metadata:m", "pin:m"))
    assert (call.payload, call.decoder) == (None, None)
    assert _left_to_the_chain(call) == _DEFAULTS

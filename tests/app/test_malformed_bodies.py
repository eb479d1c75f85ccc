"""Malformed and hostile bodies through the real HTTP path, on every endpoint that reads one:
KServe v2 infer (JSON and binary tensor data), TF Serving REST ``:predict``, ``:classify`` and
``:regress`` (to a TF Serving backend over REST and over gRPC, where the gateway reads the
examples), gzip and deflate bodies, the admin API and the OAuth2 token endpoint. Each is a 4xx
in its endpoint's error shape, never a 500, and the gateway goes on serving (issue 12, defect
2: JSON nested 100,000 deep was a 500)."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.doubles.plugin import TFServingHandle
from tests.fakes import FakeReplica
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    auth_routes,
    backend,
    demo_routes,
    error_of,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio

DEEP = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000
V2_ROW = {"inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4]}]}
JSON = {"Content-Type": "application/json"}


def _v2_with(data: bytes) -> bytes:
    return b'{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":' + data + b"}]}"


@pytest.fixture
async def gateway(
    start_gateway: StartGateway, demo_backend: str, tfserving_server: TFServingHandle
) -> RunningGateway:
    """``linear`` on the demo server (KServe v2); ``tfs`` and ``tfsg`` the TF Serving double's
    ``linear`` over REST and over gRPC."""
    served = versions("demo", "1", name="linear", version="1")
    on_tfs = versions("tfs", "1", name="linear", version=1)
    on_tfsg = versions("tfsg", "1", name="linear", version=1)
    grpc_url = f"grpc://{tfserving_server.grpc_url}"
    text = routes_yaml(
        {
            "demo": backend("triton", demo_backend, timeout="10s"),
            "tfs": backend("tfserving", tfserving_server.url, timeout="10s"),
            "tfsg": backend("tfserving", grpc_url, protocol="grpc", timeout="10s"),
        },
        {"linear": model(served), "tfs": model(on_tfs), "tfsg": model(on_tfsg)},
    )
    return await start_gateway(text)


async def _still_serves(gateway: RunningGateway) -> None:
    ok = await gateway.client.post("/v2/models/linear/infer", json=V2_ROW)
    assert ok.status_code == 200, ok.text


def _client_error(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    _, message = error_of(response)
    return message


# -- JSON nested 100,000 deep, on every endpoint --------------------------------------------------

DEEP_CASES: list[tuple[str, str, bytes, dict[str, str]]] = [
    ("v2 json", "/v2/models/linear/infer", DEEP, JSON),
    ("v2 json object", "/v2/models/linear/infer", DEEP_OBJECT, JSON),
    ("v2 json data", "/v2/models/linear/infer", _v2_with(DEEP), JSON),
    (
        "v2 binary header",
        "/v2/models/linear/infer",
        DEEP + bytes(16),
        {"Inference-Header-Content-Length": str(len(DEEP))},
    ),
    ("v1 predict", "/v1/models/linear:predict", DEEP, JSON),
    ("v1 instances", "/v1/models/linear:predict", b'{"instances":' + DEEP + b"}", JSON),
    ("v1 inputs", "/v1/models/linear:predict", b'{"inputs":' + DEEP_OBJECT + b"}", JSON),
    ("classify over gRPC", "/v1/models/tfsg:classify", DEEP, JSON),
    ("regress over gRPC", "/v1/models/tfsg:regress", b'{"examples":' + DEEP + b"}", JSON),
    ("v2 gzip", "/v2/models/linear/infer", gzip.compress(DEEP), {"Content-Encoding": "gzip"}),
    (
        "v1 deflate",
        "/v1/models/linear:predict",
        zlib.compress(DEEP),
        {"Content-Encoding": "deflate"},
    ),
]


@pytest.mark.parametrize(("path", "body", "headers"), [c[1:] for c in DEEP_CASES],
                         ids=[c[0] for c in DEEP_CASES])  # fmt: skip
async def test_json_nested_100000_deep_is_a_400(
    gateway: RunningGateway, path: str, body: bytes, headers: dict[str, str]
) -> None:
    response = await gateway.client.post(path, content=body, headers=headers)
    assert response.status_code == 400, response.text[:300]
    assert "nested too deeply" in _client_error(response)
    await _still_serves(gateway)


async def test_tf_serving_rest_examples_deep_are_not_a_gateway_error(
    gateway: RunningGateway,
) -> None:
    """To a TF Serving REST backend the examples go as they came: its answer is passed on,
    and the gateway itself fails nothing."""
    for method in ("classify", "regress"):
        response = await gateway.client.post(f"/v1/models/tfs:{method}", content=DEEP)
        assert response.status_code != 500 or error_of(response)[0] == "upstream_error"
    await _still_serves(gateway)


async def test_admin_and_oauth_bodies_nested_deep_are_400(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    gateway = await start_gateway(
        auth_routes(backend.url), admin_token=ADMIN_TOKEN, secret="server-secret-" + "x" * 32
    )
    for path, body in (
        ("/admin/tenants", DEEP_OBJECT),
        ("/admin/cache/purge", DEEP),
        ("/admin/tenants", b'{"name": "\\ud800"}'),  # a lone surrogate: no codec writes it
    ):
        response = await gateway.client.post(path, content=body, headers={**ADMIN, **JSON})
        assert response.status_code == 400, response.text[:300]
        assert error_of(response)[0] == "bad_request"
    for content_type in ("application/x-www-form-urlencoded", "application/json"):
        response = await gateway.client.post(
            "/oauth2/token", content=DEEP_OBJECT, headers={"Content-Type": content_type}
        )
        assert response.status_code == 400, response.text[:300]
        assert response.json()["error"] in ("invalid_request", "unsupported_grant_type")
    refused = await gateway.client.get("/admin/audit", params={"limit": "²"}, headers=ADMIN)
    assert refused.status_code == 400, refused.text  # str.isdigit("²"), int("²") fails: a 500
    assert (await gateway.client.get("/admin/tenants", headers=ADMIN)).status_code == 200


# -- compressed bodies that do not inflate -------------------------------------------------------

BAD_CODINGS: list[tuple[str, bytes]] = [
    ("gzip", b"\x1f\x8b\x08\x00garbage"),
    ("gzip", gzip.compress(b'{"inputs": []}')[:-6]),  # cut short
    ("gzip", b""),
    ("deflate", b"\x00\x01\x02\x03"),
    ("deflate", zlib.compress(b"{}") + b"trailing"),
    ("br", b"\x00"),
]


@pytest.mark.parametrize(("coding", "body"), BAD_CODINGS)
@pytest.mark.parametrize("path", ["/v2/models/linear/infer", "/v1/models/linear:predict"])
async def test_bodies_that_do_not_inflate_are_4xx(
    gateway: RunningGateway, path: str, coding: str, body: bytes
) -> None:
    response = await gateway.client.post(path, content=body, headers={"Content-Encoding": coding})
    _client_error(response)
    await _still_serves(gateway)


@pytest.mark.parametrize("length", [b"\xb2", b"1\xb9", b"-4", b"0x10", b""])
async def test_a_header_length_that_is_no_number_is_a_400(
    gateway: RunningGateway, length: bytes
) -> None:
    """``Inference-Header-Content-Length: ²`` (latin-1 \\xb2, a digit to str.isdigit that
    int() refuses) was a 500."""
    headers = [(b"Inference-Header-Content-Length", length)]
    response = await gateway.client.post(
        "/v2/models/linear/infer", content=DEEP[:10], headers=headers
    )
    assert response.status_code == 400, response.text
    await _still_serves(gateway)


async def test_raw_deflate_in_small_chunks_inflates(gateway: RunningGateway) -> None:
    """A raw deflate body whose first chunk is one byte: zlib takes that byte and refuses the
    next, and the body was refused instead of read as raw deflate."""
    deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    body = deflater.compress(json.dumps(V2_ROW).encode()) + deflater.flush()

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(len(body)):
            yield body[i : i + 1]

    response = await gateway.client.post(
        "/v2/models/linear/infer", content=chunks(), headers={"Content-Encoding": "deflate"}
    )
    assert response.status_code == 200, response.text


# -- JSON values at the edges of what parsers take ------------------------------------------------

ODD_VALUES: list[tuple[str, bytes]] = [
    ("1e999999", b"1e999999"),
    ("-1e999999", b"-1e999999"),
    ("huge int", b"1" * 100_000),
    ("int past uint64", b"1" + b"0" * 30),
    ("int past 4300 digits", b"9" * 4301),
    ("lone surrogate", b'"\\ud800"'),
    ("lone low surrogate", b'"\\udfff"'),
    ("NaN", b"NaN"),
    ("Infinity", b"-Infinity"),
    ("10 MB string", b'"' + b"a" * 10_000_000 + b'"'),
]


def _v1(value: bytes) -> bytes:
    return b'{"instances":[[' + value + b",1,2,3]]}"


def _v2(value: bytes) -> bytes:
    return _v2_with(b"[" + value + b",1,2,3]")


@pytest.mark.parametrize("value", [v for _, v in ODD_VALUES], ids=[n for n, _ in ODD_VALUES])
@pytest.mark.parametrize("where", ["v1", "v2", "v2 name", "v1 column", "tfsg classify"])
async def test_odd_json_values_are_never_a_500(
    gateway: RunningGateway, where: str, value: bytes
) -> None:
    path, body = {
        "v1": ("/v1/models/linear:predict", _v1(value)),
        "v2": ("/v2/models/linear/infer", _v2(value)),
        "v2 name": (
            "/v2/models/linear/infer",
            b'{"inputs":[{"name":' + value + b',"shape":[1],"datatype":"FP32","data":[1]}]}',
        ),
        "v1 column": ("/v1/models/linear:predict", b'{"inputs":{"INPUT0":[[' + value + b"]]}}"),
        "tfsg classify": ("/v1/models/tfsg:classify", b'{"examples":[{"x":[' + value + b"]}]}"),
    }[where]
    response = await gateway.client.post(path, content=body, headers=JSON)
    if response.status_code != 200:
        _client_error(response)
    await _still_serves(gateway)


@pytest.mark.parametrize(
    "body",
    [
        b'{"instances":[[1,2,3,4]],"instances":[[5,6,7,8]]}',  # duplicate keys: the last wins
        b'\xef\xbb\xbf{"instances":[[1,2,3,4]]}',  # a UTF-8 byte order mark
        b'{"instances":[[1,2,3,4]]}\x00',
        b'{"instances":[["\xff",1,2,3]]}',  # not UTF-8
        b'{"instances":[{"b64":"\\u00e9"}]}',  # base64 that is not ASCII (was a 500)
        b'{"inputs":[{"name":"INPUT0","shape":[1],"datatype":"BYTES","data":["\\u00e9"],'
        b'"parameters":{"content_type":"base64"}}]}',
    ],
)
async def test_duplicate_keys_bom_and_bad_bytes(gateway: RunningGateway, body: bytes) -> None:
    path = (
        "/v2/models/linear/infer" if body.startswith(b'{"inputs"') else "/v1/models/linear:predict"
    )
    response = await gateway.client.post(path, content=body, headers=JSON)
    if response.status_code != 200:
        _client_error(response)
    await _still_serves(gateway)


# -- gRPC: bytes that are not the message, and messages nested past protobuf's limit ----------


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _deep_tensor(depth: int) -> bytes:
    """A TensorProto holding a variant holding a TensorProto... ``depth`` times (TensorProto
    field 15 ``variant_val``, VariantTensorDataProto field 3 ``tensors``)."""
    tensor = _varint(1 << 3) + _varint(1)  # dtype DT_FLOAT
    for _ in range(depth):
        tensor = _field(15, _field(3, tensor))
    return tensor


def _deep_group(depth: int) -> bytes:
    """Unknown fields: ``depth`` nested groups (field 99), which a parser must descend."""
    return _varint(99 << 3 | 3) * depth + _varint(99 << 3 | 4) * depth


GARBAGE = [
    b"\xff" * 64,
    b"\x0a\xff\xff\xff\xff\x0f",  # a string field whose length runs past the end
    b"\x0a\x05ab",  # cut short
    _deep_group(10_000),
]
GRPC_CASES = [
    ("/inference.GRPCInferenceService/ModelInfer", body) for body in GARBAGE
] + [
    ("/tensorflow.serving.PredictionService/Predict", body)
    for body in [*GARBAGE, _field(2, _field(1, b"x") + _field(2, _deep_tensor(200)))]
] + [
    ("/tensorflow.serving.PredictionService/Classify", body) for body in GARBAGE
]  # fmt: skip


async def test_grpc_bytes_that_do_not_parse_are_invalid_argument(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    port = free_port()
    gateway = await start_gateway(demo_routes(demo_backend), grpc_port=port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        for method, body in GRPC_CASES:
            call: Any = channel.unary_unary(method)  # bytes as they are, no serializer
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await call(body, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (
                method,
                body[:20],
                caught.value.code(),
                caught.value.details(),
            )
        stream: Any = channel.stream_stream("/inference.GRPCInferenceService/ModelStreamInfer")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stream(iter([b"\xff" * 16]), timeout=10):
                pass
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        live: Any = channel.unary_unary("/inference.GRPCInferenceService/ServerLive")
        assert await live(b"", timeout=10) == b"\x08\x01"  # live: true
    await _still_serves(gateway)

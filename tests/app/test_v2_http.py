"""KServe v2 over HTTP as its real clients use it: tritonclient (defaults: binary tensors; JSON;
gzip and deflate both ways; the asyncio client) and kserve's REST client, against the demo
server (binary-capable, like Triton) and the echo server; server metadata and health; the
binary extension's framing errors; compressed bodies and their limit."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
import tritonclient.http.aio as triton_aio

from gateway.codecs import raw
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import EchoServer, FakeReplica
from tests.support import (
    INPUT0,
    V2,
    backend,
    demo_routes,
    error_of,
    kserve_calls,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio

ROW = np.array([[1, 2, 3, 4]], dtype=np.float32)
EXPECTED = [[1.0, 9.0]]  # version 1 of the demo model: [x0, x1 + x2 + x3]


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    server = await EchoServer().start()
    yield server
    await server.stop()


def echo_routes(url: str, kind: str = "triton", **options: Any) -> str:
    return routes_yaml(
        {"echo": backend(kind, url, timeout="10s", **options)},
        {"echo": model(versions("echo", "1", name="echo"))},
    )


async def in_thread(
    gateway: RunningGateway, work: Callable[[triton.InferenceServerClient], Any]
) -> Any:
    """tritonclient.http is synchronous: run it in a thread, against the gateway in this loop."""

    def run() -> Any:
        client = triton.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            return work(client)
        finally:
            client.close()

    return await asyncio.to_thread(run)


def infer_row(
    client: triton.InferenceServerClient, binary: bool = True, **options: Any
) -> list[list[float]]:
    tensor = triton.InferInput("INPUT0", list(ROW.shape), "FP32")
    tensor.set_data_from_numpy(ROW, binary_data=binary)
    outputs = [triton.InferRequestedOutput("OUTPUT0", binary_data=binary)]
    result = client.infer("linear", [tensor], outputs=outputs, **options)
    values: list[list[float]] = result.as_numpy("OUTPUT0").tolist()
    return values


async def test_tritonclient_server_and_model_endpoints(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))

    def check(client: triton.InferenceServerClient) -> dict[str, Any]:
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("linear")
        assert client.is_model_ready("linear", "2")
        assert not client.is_model_ready("nope")
        metadata: dict[str, Any] = client.get_server_metadata()
        meta = client.get_model_metadata("linear")
        assert meta["inputs"] == [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}]
        return metadata

    metadata = await in_thread(gateway, check)
    assert metadata["name"] == "model-gateway"
    assert "binary_tensor_data" in metadata["extensions"]
    live = await gateway.client.get("/v2/health/live")
    assert (live.status_code, live.content) == (200, b"")


@pytest.mark.parametrize(
    ("binary", "options"),
    [
        (True, {}),  # tritonclient's defaults: binary both ways
        (False, {}),  # JSON both ways
        (True, {"request_compression_algorithm": "gzip"}),
        (False, {"request_compression_algorithm": "deflate"}),
        (True, {"response_compression_algorithm": "gzip"}),
        (False, {"response_compression_algorithm": "deflate"}),
    ],
    ids=["binary", "json", "gzip-request", "deflate-request", "gzip-reply", "deflate-reply"],
)
async def test_tritonclient_infers_in_every_encoding(
    start_gateway: StartGateway, demo_backend: str, binary: bool, options: dict[str, str]
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    assert await in_thread(gateway, lambda c: infer_row(c, binary, **options)) == EXPECTED


async def test_tritonclient_asyncio_client(start_gateway: StartGateway, demo_backend: str) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    client = triton_aio.InferenceServerClient(gateway.url.removeprefix("http://"))
    try:
        assert await client.is_server_live()
        tensor = triton_aio.InferInput("INPUT0", list(ROW.shape), "FP32")
        tensor.set_data_from_numpy(ROW)
        result = await client.infer("linear", [tensor], model_version="2")
        assert result.as_numpy("OUTPUT0").tolist() == [[2.0, 18.0]]
    finally:
        await client.close()


async def test_kserve_rest_client_binary_and_json(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    calls = [
        {"shape": [1, 4], "data": [1, 2, 3, 4], "binary": b, "id": "r-7"} for b in (True, False)
    ]
    results = await kserve_calls("rest", gateway.url, "linear", calls)
    assert results == [{"ok": True, "id": "r-7", "outputs": {"OUTPUT0": EXPECTED}}] * 2


DATATYPES = [
    ("BOOL", np.array([[True, False, True]])),
    ("UINT8", np.array([[0, 255, 7]], dtype=np.uint8)),
    ("UINT64", np.array([[2**64 - 1, 0, 1]], dtype=np.uint64)),
    ("INT8", np.array([[-128, 127, 0]], dtype=np.int8)),
    ("INT16", np.array([[-32768, 1, 2]], dtype=np.int16)),
    ("INT32", np.array([[-(2**31), 2**31 - 1, 0]], dtype=np.int32)),
    ("INT64", np.array([[-(2**63), 2**63 - 1, 5]], dtype=np.int64)),
    ("FP16", np.array([[0.5, -2.0, 65504.0]], dtype=np.float16)),
    ("FP32", np.array([[0.1, float("inf"), -1.5]], dtype=np.float32)),
    ("FP64", np.array([[0.1, 1e300, -0.0]], dtype=np.float64)),
    ("BYTES", np.array([[b"a", b"\x00\xffbin", b"text"]], dtype=np.object_)),
]


@pytest.mark.parametrize(("datatype", "values"), DATATYPES, ids=[d for d, _ in DATATYPES])
@pytest.mark.parametrize("kind", ["triton", "kserve"])  # binary toward the backend, or JSON
async def test_every_datatype_survives_binary_in_and_out(
    start_gateway: StartGateway, echo: EchoServer, datatype: str, values: Any, kind: str
) -> None:
    gateway = await start_gateway(echo_routes(echo.url, kind))

    def roundtrip(client: triton.InferenceServerClient) -> Any:
        tensor = triton.InferInput("x", list(values.shape), datatype)
        tensor.set_data_from_numpy(values)
        result = client.infer("echo", [tensor], outputs=[triton.InferRequestedOutput("x")])
        return result.as_numpy("x")

    got = await in_thread(gateway, roundtrip)
    assert got.shape == values.shape
    assert got.tolist() == values.tolist()
    headers, _ = echo.requests[-1]
    sent = headers.get("Content-Type")
    assert sent == ("application/octet-stream" if kind == "triton" else "application/json")


async def test_a_large_binary_tensor_never_becomes_python_numbers(
    start_gateway: StartGateway, echo: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await start_gateway(echo_routes(echo.url), max_body_bytes=64 * 1024 * 1024)
    image = np.random.default_rng(7).random((1, 3, 224, 224), dtype=np.float32)
    lists: list[str] = []
    real = raw.to_list

    def counting(datatype: str, data: Any, count: int, what: str) -> list[Any]:
        lists.append(what)
        return real(datatype, data, count, what)

    monkeypatch.setattr("gateway.codecs.tensors.to_list", counting)

    def roundtrip(client: triton.InferenceServerClient) -> Any:
        tensor = triton.InferInput("image", list(image.shape), "FP32")
        tensor.set_data_from_numpy(image)
        return client.infer("echo", [tensor]).as_numpy("image")

    got = await in_thread(gateway, roundtrip)
    assert np.array_equal(got, image)
    assert lists == []  # bytes in, bytes to the backend, bytes back, bytes out


async def test_binary_framing_errors_are_400s(
    start_gateway: StartGateway, echo: EchoServer
) -> None:
    gateway = await start_gateway(echo_routes(echo.url))
    header = (
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[2],'
        b'"parameters":{"binary_data_size":8}}]}'
    )
    data = np.array([1, 2], dtype=np.float32).tobytes()
    cases = [
        (str(len(header) + 100), header + data, "the body has only"),
        ("abc", header + data, "must be a whole number"),
        ("0", data, "is not supported here"),
        (str(len(header)), header + data[:4], "runs past the end of the body"),
        (str(len(header)), header + data + b"xx", "belong to none"),
        (str(len(header)), header.replace(b"8}", b"4}") + data[:4], "take 8 bytes, got 4"),
    ]
    for length, body, fragment in cases:
        response = await gateway.client.post(
            "/v2/models/echo/infer",
            content=body,
            headers={"Inference-Header-Content-Length": length},
        )
        assert response.status_code == 400, response.text
        assert fragment in error_of(response)[1]
    ok = await gateway.client.post(
        "/v2/models/echo/infer",
        content=header + data,
        headers={"Inference-Header-Content-Length": str(len(header))},
    )
    assert ok.status_code == 200
    assert ok.json()["outputs"][0]["data"] == [1.0, 2.0]  # asked nothing binary: JSON back


async def test_compressed_bodies_are_bounded_after_inflating(
    start_gateway: StartGateway, echo: EchoServer
) -> None:
    gateway = await start_gateway(echo_routes(echo.url), max_body_bytes=1024 * 1024)
    bomb = gzip.compress(b"0" * (200 * 1024 * 1024), compresslevel=9)  # 200 MB in ~200 KB
    assert len(bomb) < 1024 * 1024
    response = await gateway.client.post(
        "/v2/models/echo/infer", content=bomb, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413
    assert "inflates to more than the limit" in error_of(response)[1]
    body = b'{"inputs":[{"name":"x","datatype":"INT32","shape":[1],"data":[3]}]}'
    raw_deflate = zlib.compressobj(wbits=-15)
    cases = [
        ({"Content-Encoding": "br"}, body, 415),
        ({"Content-Encoding": "gzip"}, b"not gzip at all", 400),
        ({"Content-Encoding": "gzip"}, gzip.compress(body)[:-12], 400),  # cut short
        ({"Content-Encoding": "deflate"}, zlib.compress(body), 200),
        ({"Content-Encoding": "deflate"}, raw_deflate.compress(body) + raw_deflate.flush(), 200),
        ({"Content-Encoding": "gzip, identity"}, gzip.compress(body), 200),
    ]
    for headers, content, status in cases:
        answer = await gateway.client.post(
            "/v2/models/echo/infer", content=content, headers=headers
        )
        assert answer.status_code == status, (headers, answer.text)
    large = (
        b'{"inputs":[{"name":"x","datatype":"INT32","shape":[1000],"data":['
        + b",".join([b"7"] * 1000)
        + b"]}]}"
    )
    zipped = await gateway.client.post(
        "/v2/models/echo/infer", content=large, headers={"Accept-Encoding": "gzip"}
    )
    assert zipped.headers["Content-Encoding"] == "gzip"  # httpx inflates it for us
    assert zipped.json()["outputs"][0]["data"] == [7] * 1000


# -- a v2 JSON call to a v2 JSON backend: the caller's body relayed, the reply's header rewritten

CALLER_BODY = (
    b'{ "id": "caller-1", "parameters": {"p": true},\n "inputs": [{"name": "INPUT0", '
    b'"shape": [1, 4], "datatype": "FP32", "data": [1, 2, 3, 4], "parameters": {"x": 1}}] }'
)
SERVER_REPLY = (
    b'{"model_name":"native","model_version":"7","id":"srv-9","outputs":[{"name":"OUTPUT0",'
    b'"datatype":"FP32","shape":[1,2],"data":[1.0,9.0]}]}'
)


async def relay_gateway(
    start_gateway: StartGateway, fake: FakeReplica, kind: str = "kserve"
) -> RunningGateway:
    served = versions("fake", "1", name="native", version="7", inputs=[INPUT0])
    fake_backend = backend(kind, fake.url, retries={"attempts": 1})
    return await start_gateway(routes_yaml({"fake": fake_backend}, {"m": model(served)}))


def inferred(fake: FakeReplica) -> list[tuple[str, bytes]]:
    return [(r.path, b) for r, b in zip(fake.seen, fake.bodies, strict=True) if r.method == "POST"]


@pytest.mark.parametrize("kind", ["kserve", "triton"])
async def test_the_callers_body_goes_as_it_came_and_the_reply_is_renamed(
    start_gateway: StartGateway, kind: str
) -> None:
    fake = await FakeReplica(body=SERVER_REPLY).start()
    try:
        gateway = await relay_gateway(start_gateway, fake, kind)
        answer = await gateway.client.post("/v2/models/m/infer", content=CALLER_BODY)
        anonymous = await gateway.client.post(
            "/v2/models/m/infer", content=CALLER_BODY.replace(b'"id": "caller-1", ', b"")
        )
    finally:
        await fake.stop()
    path = "/v2/models/native/versions/7/infer"
    assert inferred(fake) == [  # byte for byte: the naming is the URL's
        (path, CALLER_BODY),
        (path, CALLER_BODY.replace(b'"id": "caller-1", ', b"")),
    ]
    outputs = b'"outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[1,2],"data":[1.0,9.0]}]}'
    assert answer.status_code == 200
    assert answer.content == b'{"model_name":"m","model_version":"1","id":"caller-1",' + outputs
    # no id from the caller: the server's, as before
    assert anonymous.content == b'{"model_name":"m","model_version":"1","id":"srv-9",' + outputs


@pytest.mark.parametrize(
    ("reply", "status", "expected"),
    [
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":["a",1.0]}]}',
            502,
            "outputs[0].data holds str values, which a FP32 tensor cannot hold",
            id="str-in-fp32",
        ),
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"FP32","shape":[3],"data":[1.0,2.0]}]}',
            502,
            "outputs[0]: shape [3] needs 3 values, got 2",
            id="count",
        ),
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1.0,NaN]}]}',
            200,
            '{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"FP32",'
            '"shape":[2],"data":[1.0,NaN]}]}',
            id="nan",
        ),
        pytest.param(  # nested, parameters first: written as the gateway writes tensors
            b'{"outputs":[{"parameters":{"k":1},"shape":[1,2],"name":"y","datatype":"INT8",'
            b'"data":[[1,2]]}]}',
            200,
            '{"model_name":"m","model_version":"1","outputs":[{"name":"y","datatype":"INT8",'
            '"shape":[1,2],"data":[1,2],"parameters":{"k":1}}]}',
            id="nested",
        ),
    ],
)
async def test_a_backend_reply_is_checked_as_before(
    start_gateway: StartGateway, reply: bytes, status: int, expected: str
) -> None:
    fake = await FakeReplica(body=reply).start()
    try:
        gateway = await relay_gateway(start_gateway, fake)
        answer = await gateway.client.post("/v2/models/m/infer", json=V2)
    finally:
        await fake.stop()
    assert answer.status_code == status
    if status == 200:
        assert answer.text == expected
    else:
        assert error_of(answer) == ("bad_gateway", expected)

"""A v2 server's infer replies as the KServe HTTP adapter reads them, from a raw server: JSON,
binary tensor data (its length header in any case), and every malformed reply a 502 (a 4xx
keeps its status), whatever path the reading takes."""

from __future__ import annotations

import aiohttp
import pytest

from gateway.backends.h1.client import Client
from gateway.backends.kserve_http import V2HTTP
from gateway.backends.pool import ReplicaPool
from gateway.backends.upstream import Target
from gateway.codecs.tensors import InferenceRequest, Tensor
from gateway.config.model import Backend
from gateway.errors import BadGateway, GatewayError, UpstreamError
from tests.rawhttp import RawServer, answering, reply

pytestmark = pytest.mark.anyio

_HEAD = (
    b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2],"parameters":{"binary_data_size":8}}]}'
)
_DATA = b"\x00\x00\x80\x3f\x00\x00\x00\x40"  # 1.0, 2.0 little-endian
_JSON = (
    b'{"model_name":"m","outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[1.0,2.0]}]}'
)


async def _infer(answer: bytes) -> list[float]:
    """One inference through a real pool to a raw server answering ``answer``."""
    server = await RawServer(answering(answer)).start()
    client = Client()
    try:
        async with aiohttp.ClientSession() as session:
            backend = Backend.model_validate({"kind": "triton", "urls": [server.url]})
            wire = V2HTTP(ReplicaPool("test", backend, session, client), "never")
            request = InferenceRequest([Tensor("x", "FP32", [1], [1.0])])
            response = await wire.infer(request, Target("m", "1", "m", None))
            return list(response.outputs[0].data)
    finally:
        await client.close()
        await server.stop()


def _binary(length: str, name: str = "Inference-Header-Content-Length") -> bytes:
    body = _HEAD + _DATA
    return reply(200, body, [("Content-Length", str(len(body))), (name, length)])


@pytest.mark.parametrize(
    "answer",
    [
        reply(200, _JSON, [("Content-Length", str(len(_JSON))), ("Content-Type", "x")]),
        _binary(str(len(_HEAD))),
        _binary(str(len(_HEAD)), "inference-header-content-length"),
        _binary(f" {len(_HEAD)} ", "INFERENCE-HEADER-CONTENT-LENGTH"),
    ],
)
async def test_json_and_binary_replies_are_read(answer: bytes) -> None:
    assert await _infer(answer) == [1.0, 2.0]


@pytest.mark.parametrize(
    ("answer", "error", "fragment"),
    [
        (_binary("abc"), BadGateway, "must be a whole number"),
        (_binary("\xb2"), BadGateway, "must be a whole number"),
        (_binary("0"), BadGateway, "is not supported here"),
        (_binary("9999"), BadGateway, "the body has only"),
        (_binary(str(len(_HEAD) - 1)), BadGateway, "reply"),
        (reply(200, b"not json"), BadGateway, "not valid JSON"),
        (reply(200, b'{"outputs":{}}'), BadGateway, "no 'outputs' list"),
        (reply(200, b'{"outputs":[{"name":"y"}]}'), BadGateway, "outputs[0].datatype"),
        (reply(400, b'{"error":"bad input"}'), UpstreamError, "answered 400: bad input"),
        (reply(500, b"boom"), BadGateway, "answered 500: boom"),
    ],
)
async def test_malformed_and_error_replies(
    answer: bytes, error: type[GatewayError], fragment: str
) -> None:
    with pytest.raises(error) as raised:
        await _infer(answer)
    assert fragment in raised.value.message
    if error is UpstreamError:
        assert raised.value.status == 400

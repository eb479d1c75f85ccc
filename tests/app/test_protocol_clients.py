"""The real client libraries, as users run them against the gateway: tritonclient's and kserve's
HTTP clients get an error they can print from every inference-endpoint error (404, 400, 415,
422, 503; KServe v2 and TF Serving define ``error`` as a string: an object there made ``str()``
of tritonclient's exception raise ``TypeError``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import RunningGateway, StartGateway
from tests.support import V2, backend, free_port, kserve_calls, model, routes_yaml, versions

pytestmark = pytest.mark.anyio


def routes(demo: str) -> str:
    """The demo model, and ``gone`` on a backend nobody listens on (503 once probed)."""
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    dead = f"http://127.0.0.1:{free_port()}"
    health = {"interval": "100ms", "unhealthy_after": 1}
    return routes_yaml(
        {
            "demo": backend("triton", demo, timeout="5s"),
            "dead": backend("triton", dead, timeout="1s", health=health),
        },
        {"linear": model(served, default="1"), "gone": model(versions("dead", "1", name="gone"))},
    )


def triton_input(shape: list[int], binary: bool = False) -> triton.InferInput:
    tensor = triton.InferInput("INPUT0", shape, "FP32")
    tensor.set_data_from_numpy(np.ones(shape, dtype=np.float32), binary_data=binary)
    return tensor


async def triton_error(
    gateway: RunningGateway, call: Callable[[triton.InferenceServerClient], object]
) -> str:
    """``str()`` of the exception tritonclient raises (its client is synchronous: a thread)."""

    def run() -> str:
        client = triton.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            call(client)
        except InferenceServerException as exc:
            return str(exc)  # raised TypeError when the body's error was an object
        finally:
            client.close()
        raise AssertionError("tritonclient raised nothing")

    return await asyncio.to_thread(run)


async def until_unready(gateway: RunningGateway) -> None:
    for _ in range(100):
        reply = await gateway.client.post("/v2/models/gone/infer", json=V2)
        if reply.status_code == 503:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the dead backend never became unready")


async def test_tritonclient_prints_every_inference_error(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(routes(demo_backend))
    await until_unready(gateway)
    cases = [
        (lambda c: c.infer("nope", [triton_input([1, 4])]), "model 'nope' is not served here"),
        (
            lambda c: c.infer("linear", [triton_input([1, 4])], headers={"Content-Encoding": "br"}),
            "Content-Encoding 'br' is not supported",
        ),
        (lambda c: c.infer("linear", [triton_input([1, 3])]), "the model expects [-1, 4]"),
        (lambda c: c.infer("gone", [triton_input([1, 4])]), "no healthy replica"),
        (lambda c: c.get_model_metadata("nope"), "model 'nope' is not served here"),
    ]
    for call, fragment in cases:
        text = await triton_error(gateway, call)
        assert fragment in text, text

    # and the client still works against the same gateway
    def infer() -> list[list[float]]:
        client = triton.InferenceServerClient(gateway.url.removeprefix("http://"))
        try:
            result = client.infer("linear", [triton_input([1, 4])])
        finally:
            client.close()
        output: list[list[float]] = result.as_numpy("OUTPUT0").tolist()
        return output

    assert await asyncio.to_thread(infer) == [[1.0, 3.0]]


async def test_kserve_rest_client_prints_every_inference_error(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(routes(demo_backend))
    await until_unready(gateway)
    calls = [
        {"model": "nope", "shape": [1, 4], "binary": False},
        {"shape": [1, 3], "binary": False},
        {"model": "gone", "shape": [1, 4], "binary": False},
        {"shape": [1, 4], "binary": False},
    ]
    results = await kserve_calls("rest", gateway.url, "linear", calls)
    expected = [
        (404, "model 'nope' is not served here"),
        (422, "input 'INPUT0' has shape [1, 3]"),
        (503, "no healthy replica"),
    ]
    for result, (status, fragment) in zip(results, expected, strict=False):
        assert result["ok"] is False
        assert result["status"] == status
        assert result["text"].startswith(fragment), result["text"]  # the string, printed
    assert results[-1]["ok"] is True
    assert results[-1]["outputs"] == {"OUTPUT0": [[1.0, 3.0]]}

"""kserve's own clients, run in a process of their own by the tests.

``kserve`` registers KServe v2's ``inference.*`` messages in the default protobuf pool, and so
does ``tritonclient.grpc``: both in one process is a "duplicate symbol" error at import
(PROTOCOLS.md §5.6). The gateway keeps its copy in a private pool, so it lives beside either;
the tests that use tritonclient.grpc run in pytest's process, and kserve's clients here:

    python -m tests.clients.kserve_calls rest|grpc URL MODEL CALLS_JSON

CALLS_JSON: a list of ``{"shape": [...], "binary": bool, "id": str?, "model": str?,
"version": str?, "input": str?}`` (an FP32 tensor ``INPUT0``, or the name in ``"input"``, of
ones, or the values given in ``"data"``).
Prints a JSON list: per call ``{"ok": true, "id", "outputs": {name: values}}`` or
``{"ok": false, "status", "text"}`` with ``str()`` of the exception the client raised.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import grpc
import httpx
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig


def request(model: str, spec: dict[str, Any]) -> InferRequest:
    shape = spec["shape"]
    values = np.array(spec["data"], dtype=np.float32).reshape(shape) if "data" in spec else None
    tensor = InferInput(spec.get("input", "INPUT0"), shape, "FP32")
    data = values if values is not None else np.ones(shape, dtype=np.float32)
    tensor.set_data_from_numpy(data, binary_data=spec.get("binary", True))
    return InferRequest(
        model_name=spec.get("model", model),
        infer_inputs=[tensor],
        request_id=spec.get("id"),
        model_version=spec.get("version"),
    )


def outputs(answer: Any) -> dict[str, Any]:
    return {o.name: o.as_numpy().tolist() for o in answer.outputs}


async def rest(url: str, model: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    client = InferenceRESTClient(RESTConfig(protocol="v2", timeout=10))
    results: list[dict[str, Any]] = []
    try:
        for spec in calls:
            name = spec.get("model", model)
            try:
                answer = await client.infer(url, request(model, spec), model_name=name)
            except httpx.HTTPStatusError as exc:
                results.append({"ok": False, "status": exc.response.status_code, "text": str(exc)})
            else:
                results.append({"ok": True, "id": answer.id, "outputs": outputs(answer)})
    finally:
        await client.close()
    return results


async def grpc_calls(url: str, model: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    client = InferenceGRPCClient(url.removeprefix("http://"), timeout=10, retries=2)
    results: list[dict[str, Any]] = []
    try:
        for spec in calls:
            try:
                answer = await client.infer(request(model, spec))
            except grpc.RpcError as exc:
                code = exc.code().name if hasattr(exc, "code") else "UNKNOWN"
                results.append({"ok": False, "status": code, "text": str(exc.details())})
            else:
                results.append({"ok": True, "id": answer.id, "outputs": outputs(answer)})
    finally:
        await client.close()
    return results


def main() -> None:
    mode, url, model, calls = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    run = rest if mode == "rest" else grpc_calls
    print(json.dumps(asyncio.run(run(url, model, calls))))


if __name__ == "__main__":
    main()

"""``gateway demo``: the gateway on its embedded default plus a tiny in-process model server.

The demo model server speaks the Open Inference Protocol (KServe v2) like Triton does, so the
gateway in front of it runs exactly the code path it runs in production. The model is a 4→2
linear layer in plain Python: version 1 computes ``[x0, x1 + x2 + x3]``, version 2 twice that.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from pathlib import Path

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.app import create_app
from gateway.codecs import binary, v2
from gateway.codecs.tensors import InferenceResponse, Tensor
from gateway.edge.server import server_config
from gateway.errors import BadRequest, GatewayError
from gateway.settings import Settings

_WEIGHTS = ((1.0, 0.0, 0.0, 0.0), (0.0, 1.0, 1.0, 1.0))
_VERSIONS = ("1", "2")
_INPUT = {"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}
_OUTPUT = {"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, 2]}

DEMO_ROUTES = """\
# The demo's route table: edit it while `gateway demo` runs and watch it hot-reload.
backends:
  demo:
    kind: triton            # the demo server speaks KServe v2, as Triton does
    urls: [{url}]
    timeout: 5s
models:
  linear:
    default: "1"
    versions:
      "1": {{backend: demo, name: linear, version: "1"}}
      "2": {{backend: demo, name: linear, version: "2"}}
"""


def _error(message: str, status: int) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def _version(request: Request) -> str | None:
    version = request.path_params.get("version", _VERSIONS[-1])
    if request.path_params["model"] != "linear" or version not in _VERSIONS:
        return None
    return str(version)


async def _metadata(request: Request) -> Response:
    version = _version(request)
    if version is None:
        return _error(f"Request for unknown model: '{request.path_params['model']}'", 404)
    return JSONResponse(
        {
            "name": "linear",
            "versions": list(_VERSIONS),
            "platform": "python",
            "inputs": [_INPUT],
            "outputs": [_OUTPUT],
        }
    )


async def _ready(request: Request) -> Response:
    return Response(status_code=200 if _version(request) else 400)


async def _health(request: Request) -> Response:
    return Response(status_code=200)


async def _index(request: Request) -> Response:
    """Triton's model repository index (the gateway's health checks read it): every version
    of the one model, ready."""
    return JSONResponse(
        [{"name": "linear", "version": v, "state": "READY", "reason": ""} for v in _VERSIONS]
    )


async def _infer(request: Request) -> Response:
    """Inference as Triton answers it: JSON, or binary tensor data both ways (the gateway's
    own v2 codec reads and writes the wire)."""
    version = _version(request)
    if version is None:
        return _error(f"Request for unknown model: '{request.path_params['model']}'", 404)
    header = request.headers.get(binary.HEADER)
    try:
        length = binary.header_length(header, BadRequest)
        call = v2.decode_request(await request.body(), length)
    except GatewayError:
        return _error("failed to parse the request buffer", 400)
    tensor = call.inputs[0]
    if tensor.name != "INPUT0" or tensor.datatype != "FP32":
        return _error("expected input 'INPUT0' of datatype FP32", 400)
    shape = tensor.shape
    if len(shape) != 2 or shape[1] != 4:
        return _error(f"unexpected shape for input 'INPUT0', expected [-1,4], got {shape}", 400)
    try:
        raw = tensor.raw  # JSON values packed as FP32 here: one past its range is refused
    except GatewayError as exc:
        return _error(exc.message, 400)
    rows = np.frombuffer(raw, dtype="<f4").reshape(shape).astype("<f8")
    with np.errstate(invalid="ignore", over="ignore"):  # NaN and ±Infinity in, as IEEE says
        out = (rows @ np.array(_WEIGHTS).T) * float(version)
    result = Tensor("OUTPUT0", "FP32", [shape[0], 2], raw=out.astype("<f4").tobytes())
    reply = InferenceResponse(outputs=[result], id=call.id)
    wanted = binary.wanted_outputs(call)
    if wanted is None:
        return Response(v2.encode_response(reply, "linear", version), media_type="application/json")
    body, length = v2.encode_response_binary(reply, "linear", version, None, wanted)
    headers = {binary.HEADER: str(length)}
    return Response(body, media_type=binary.CONTENT_TYPE, headers=headers)


def demo_model_app() -> Starlette:
    """A minimal KServe v2 server for the demo model (and for quick tests)."""
    return Starlette(
        routes=[
            Route("/v2/health/live", _health),
            Route("/v2/health/ready", _health),
            Route("/v2/repository/index", _index, methods=["POST"]),
            Route("/v2/models/{model}", _metadata),
            Route("/v2/models/{model}/versions/{version}", _metadata),
            Route("/v2/models/{model}/ready", _ready),
            Route("/v2/models/{model}/versions/{version}/ready", _ready),
            Route("/v2/models/{model}/infer", _infer, methods=["POST"]),
            Route("/v2/models/{model}/versions/{version}/infer", _infer, methods=["POST"]),
        ]
    )


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def run_demo(host: str, port: int, grpc_port: int | None = None) -> None:
    model_port = _free_port()
    folder = Path(tempfile.mkdtemp(prefix="gateway-demo-"))
    routes = folder / "routes.yaml"
    routes.write_text(DEMO_ROUTES.format(url=f"http://127.0.0.1:{model_port}"), encoding="utf-8")
    grpc_port = port + 1 if grpc_port is None else grpc_port
    settings = Settings(config=routes, host=host, port=port, grpc_port=grpc_port or None)
    # log_config=None: the model server shares the gateway's logging (its queued handler,
    # telemetry.log_queue) rather than installing uvicorn's blocking one.
    model = uvicorn.Config(
        demo_model_app(), host="127.0.0.1", port=model_port, log_level="warning", log_config=None
    )
    model_server = uvicorn.Server(model)
    gateway_server = uvicorn.Server(
        server_config(settings, create_app(settings), log_level="warning")
    )
    base = f"http://{host}:{port}"
    print(f"model gateway demo on {base} (route table: {routes}; Ctrl-C stops)", flush=True)
    print("  try:", flush=True)
    print(
        f"  curl -s {base}/v2/models/linear/infer -H 'Content-Type: application/json' "
        """-d '{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'""",
        flush=True,
    )
    v1_body = """'{"instances":[[1,2,3,4]]}'"""
    print(f"  curl -s {base}/v1/models/linear/versions/2:predict -d {v1_body}", flush=True)
    if grpc_port:
        print(
            f"  gRPC (KServe v2, TF Serving): {host}:{grpc_port}, e.g. tritonclient.grpc",
            flush=True,
        )

    async def serve() -> None:
        await asyncio.gather(model_server.serve(), gateway_server.serve())

    # Ctrl-C is the demo's normal stop (uvicorn re-raises the signal once both servers are
    # down), not a failure: no traceback, which a log sink that stopped reading would block.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())

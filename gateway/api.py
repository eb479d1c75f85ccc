"""The unified inference API: TF-Serving-style v1 and Open Inference Protocol v2 over any backend.

Clients never learn which server kind serves a model: names, versions and errors come back in
the gateway's own terms, whatever the backend.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import aiohttp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway import v1_json, v2_json
from gateway.backends.tfserving import DTYPES
from gateway.chain import Context, Next
from gateway.config import version_sort_key
from gateway.dispatch import FastRoute, fast_route
from gateway.errors import GatewayError, ModelNotFound, NoHealthyReplica, NotFound
from gateway.http_body import read_body
from gateway.inference import InferenceRequest, TensorMeta, check_inputs
from gateway.runtime import Resolved, Runtime
from gateway.traffic import CHOOSE, VERSION_HEADER

if TYPE_CHECKING:
    from gateway.app import Gateway

Endpoint = Callable[[Request], Awaitable[Response]]
TF_DTYPES = {v2: tf for tf, v2 in DTYPES.items()}


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


def _context(request: Request) -> Context:
    ctx: Context = request.state.ctx
    return ctx


def _resolve(request: Request, runtime: Runtime, action: str, choose: bool) -> None:
    """Take the version the caller pinned: the path's, else the ``X-Model-Version`` header.

    Unpinned, the version is left to the traffic policy (``choose``), which runs after auth.
    Also states the scopes the call needs: ``<action>:<model>``, and ``pin:<model>`` when the
    caller chose the version.
    """
    ctx = _context(request)
    version = request.path_params.get("version") or request.headers.get(VERSION_HEADER) or None
    model = request.path_params["model"]
    ctx.model, ctx.pinned = model, version is not None
    ctx.required = (f"{action}:{model}", f"pin:{model}") if version else (f"{action}:{model}",)
    if version is not None:
        resolved = runtime.resolve(model, version)
        ctx.version = resolved.version
        request.state.resolved = resolved
    elif model not in runtime.table.models:
        raise ModelNotFound(f"model {model!r} is not served here")
    elif choose:
        ctx.extra[CHOOSE] = True


def through_chain(
    endpoint: Next, action: str, *, resolve: bool = True, choose: bool = True
) -> Endpoint:
    """A Starlette endpoint that runs the policy chain around ``endpoint``.

    The runtime is taken once: this request finishes on the table it started with. With
    ``choose``, an unpinned request's version is chosen by the traffic policy.
    """

    async def handler(request: Request) -> Response:
        gateway = _gateway(request)
        runtime = gateway.reloader.current
        request.state.runtime = runtime
        request.state.endpoint = endpoint
        if resolve:
            try:
                _resolve(request, runtime, action, choose)
            except NotFound as exc:
                # Unknown names are only revealed to callers who pass authentication.
                request.state.endpoint = _raise_later(exc)
        return await gateway.chain(request, _context(request))

    return handler


def _raise_later(exc: NotFound) -> Next:
    async def endpoint(request: Request, ctx: Context) -> Response:
        raise exc

    return endpoint


async def run_endpoint(request: Request, ctx: Context) -> Response:
    """The chain's terminal step: the endpoint chosen for this request."""
    endpoint: Next = request.state.endpoint
    return await endpoint(request, ctx)


async def predict_v1(request: Request, ctx: Context) -> Response:
    request.state.protocol = "v1"
    return await forward(request, ctx)


async def infer_v2(request: Request, ctx: Context) -> Response:
    request.state.protocol = "v2"
    return await forward(request, ctx)


async def forward(request: Request, ctx: Context) -> Response:
    """The chain's terminal step: decode, fit to the model's inputs, call the backend, encode."""
    gateway = _gateway(request)
    resolved: Resolved = request.state.resolved
    body = await read_body(request, gateway.settings.max_body_bytes)
    codec = v1_json if request.state.protocol == "v1" else v2_json
    inference: InferenceRequest = codec.decode_request(body)
    live = resolved.backend
    signature = await live.signature(resolved.target)
    check_inputs(inference, signature)
    result = await live.adapter.infer(inference, resolved.target, signature)
    if inference.protocol == "v1":
        content = v1_json.encode_response(result, columnar=inference.columnar)
    else:
        result.id = inference.id if inference.id is not None else result.id
        content = v2_json.encode_response(result, resolved.model, resolved.version)
    return Response(
        content, media_type="application/json", headers={VERSION_HEADER: resolved.version}
    )


async def _ready(resolved: Resolved) -> bool:
    """Ask one replica, live, whether this version is ready (the kind's real readiness check)."""
    pool = resolved.backend.pool
    try:
        replica = pool.choose(resolved.target.key, set())
    except NoHealthyReplica:
        return False
    try:
        async with asyncio.timeout(resolved.backend.spec.health.timeout):
            return await resolved.backend.adapter.probe(replica, resolved.target)
    except (TimeoutError, OSError, ValueError, aiohttp.ClientError, GatewayError):
        return False  # an unreachable or confused server is simply not ready


async def status_v1(request: Request, ctx: Context) -> Response:
    """TF Serving's model status: every version (or the pinned one), newest first."""
    runtime: Runtime = request.state.runtime
    model = request.path_params["model"]
    pinned = request.path_params.get("version")
    spec = runtime.table.models[model]
    versions = [pinned] if pinned else sorted(spec.versions, key=version_sort_key, reverse=True)
    resolved = [runtime.resolve(model, v) for v in versions]
    states = await asyncio.gather(*(_ready(r) for r in resolved))
    return JSONResponse(
        {
            "model_version_status": [
                {
                    "version": r.version,
                    "state": "AVAILABLE" if ok else "UNAVAILABLE",
                    "status": {"error_code": "OK" if ok else "UNAVAILABLE", "error_message": ""},
                }
                for r, ok in zip(resolved, states, strict=True)
            ]
        }
    )


async def metadata_v2(request: Request, ctx: Context) -> Response:
    runtime: Runtime = request.state.runtime
    resolved: Resolved = request.state.resolved
    spec = runtime.table.models[resolved.model]
    signature = await resolved.backend.signature(resolved.target)
    body: dict[str, Any] = {
        "name": resolved.model,
        "versions": sorted(spec.versions, key=version_sort_key),
        "platform": "",
        "inputs": [m.as_json() for m in signature.inputs] if signature else [],
        "outputs": [m.as_json() for m in signature.outputs] if signature else [],
    }
    return JSONResponse(body, headers={VERSION_HEADER: resolved.version})


async def metadata_v1(request: Request, ctx: Context) -> Response:
    """TF Serving's metadata shape (``signature_def`` nested twice, dim sizes as strings)."""
    resolved: Resolved = request.state.resolved
    signature = await resolved.backend.signature(resolved.target)

    def tensors(metas: tuple[TensorMeta, ...]) -> dict[str, Any]:
        return {
            m.name: {
                "dtype": TF_DTYPES.get(m.datatype, "DT_INVALID"),
                "tensor_shape": {
                    "dim": [{"size": str(d), "name": ""} for d in m.shape or ()],
                    "unknown_rank": m.shape is None,
                },
                "name": m.name,
            }
            for m in metas
        }

    serving_default = {
        "inputs": tensors(signature.inputs) if signature else {},
        "outputs": tensors(signature.outputs) if signature else {},
        "method_name": "tensorflow/serving/predict",
        "defaults": {},
    }
    return JSONResponse(
        {
            "model_spec": {
                "name": resolved.model,
                "signature_name": "",
                "version": resolved.version,
            },
            "metadata": {"signature_def": {"signature_def": {"serving_default": serving_default}}},
        },
        headers={VERSION_HEADER: resolved.version},
    )


async def ready_v2(request: Request, ctx: Context) -> Response:
    resolved: Resolved = request.state.resolved
    ready = await _ready(resolved)
    if not ready:
        raise GatewayError(
            f"model {resolved.model!r} version {resolved.version!r} is not ready",
            status=503,
            code="model_not_ready",
        )
    return JSONResponse({"name": resolved.model, "ready": True})


_PREDICT_1, _INFER_2 = through_chain(predict_v1, "predict"), through_chain(infer_v2, "predict")


def fast_routes() -> list[FastRoute]:
    """The inference endpoints, served by the dispatcher's fast lane (the same handlers)."""
    return [
        fast_route("/v2/models/{model}/infer", _INFER_2),
        fast_route("/v2/models/{model}/versions/{version}/infer", _INFER_2),
        fast_route("/v1/models/{model}:predict", _PREDICT_1),
        fast_route("/v1/models/{model}/versions/{version}:predict", _PREDICT_1),
    ]


def routes() -> list[BaseRoute]:
    predict_1, infer_2 = _PREDICT_1, _INFER_2
    status = through_chain(status_v1, "metadata", choose=False)  # lists every version
    meta_1, meta_2 = through_chain(metadata_v1, "metadata"), through_chain(metadata_v2, "metadata")
    ready = through_chain(ready_v2, "metadata")
    return [
        Route("/v1/models/{model}:predict", predict_1, methods=["POST"]),
        Route("/v1/models/{model}/versions/{version}:predict", predict_1, methods=["POST"]),
        Route("/v1/models/{model}", status, methods=["GET"]),
        Route("/v1/models/{model}/versions/{version}", status, methods=["GET"]),
        Route("/v1/models/{model}/metadata", meta_1, methods=["GET"]),
        Route("/v1/models/{model}/versions/{version}/metadata", meta_1, methods=["GET"]),
        Route("/v2/models/{model}/infer", infer_2, methods=["POST"]),
        Route("/v2/models/{model}/versions/{version}/infer", infer_2, methods=["POST"]),
        Route("/v2/models/{model}", meta_2, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}", meta_2, methods=["GET"]),
        Route("/v2/models/{model}/ready", ready, methods=["GET"]),
        Route("/v2/models/{model}/versions/{version}/ready", ready, methods=["GET"]),
    ]

"""The inference APIs over HTTP: KServe v2 (Open Inference Protocol) and TF Serving REST.

Each endpoint turns its request into a :class:`~gateway.call.Call` (the model and the version
the caller pinned, the scopes it needs, the body as a payload with the protocol's JSON codec),
runs the chain of the call's kind on the route table it took, and encodes the reply in its own
protocol. Clients never learn which server kind serves a model: names, versions and errors
come back in the protocol's own terms, whatever the backend. Errors take the protocol's shape
(``{"error": "<message>", ...}``).
"""

from __future__ import annotations

import logging

from starlette.requests import Request
from starlette.responses import Response

from gateway.call import Call, CallKind, Decoder, Reply
from gateway.codecs import v1, v2
from gateway.codecs.tensors import ModelInfo, dumps
from gateway.edge.body import HTTPPayload
from gateway.edge.errors import ErrorShape
from gateway.edge.http import Exchange, Route, raw_headers
from gateway.errors import BadGateway, ModelNotReady
from gateway.headers import Headers
from gateway.state import State
from gateway.traffic.choose import VERSION_HEADER

logger = logging.getLogger("gateway")
_JSON = "application/json"
_PIN = VERSION_HEADER.lower()


class InferenceHTTP:
    def __init__(self, state: State) -> None:
        self.state = state
        self.limit = state.settings.max_body_bytes
        self.errors: ErrorShape = "protocol"
        if state.settings.inference_errors == "legacy":
            self.errors = "gateway"
            logger.warning(
                "GATEWAY_INFERENCE_ERRORS=legacy is deprecated: the v1/v2 endpoints answer "
                '{"error": {"code", "message"}}, which KServe v2 and TF Serving clients cannot '
                'read; move clients to {"error": "<message>", "code": ...} and unset it'
            )

    def routes(self) -> list[Route]:
        """The inference endpoints first: the router tries them first."""
        v1_model, v2_model = "/v1/models/{model}", "/v2/models/{model}"
        pinned = "/versions/{version}"
        routes: list[tuple[str, object, str]] = [
            (f"{v2_model}/infer", self.infer_v2, "POST"),
            (f"{v2_model}{pinned}/infer", self.infer_v2, "POST"),
            (f"{v1_model}:predict", self.predict_v1, "POST"),
            (f"{v1_model}{pinned}:predict", self.predict_v1, "POST"),
            (v1_model, self.status_v1, "GET"),
            (f"{v1_model}{pinned}", self.status_v1, "GET"),
            (f"{v1_model}/metadata", self.metadata_v1, "GET"),
            (f"{v1_model}{pinned}/metadata", self.metadata_v1, "GET"),
            (v2_model, self.metadata_v2, "GET"),
            (f"{v2_model}{pinned}", self.metadata_v2, "GET"),
            (f"{v2_model}/ready", self.ready_v2, "GET"),
            (f"{v2_model}{pinned}/ready", self.ready_v2, "GET"),
        ]
        return [Route(p, e, (m,), errors=self.errors) for p, e, m in routes]  # type: ignore[arg-type]

    # -- the endpoints ----------------------------------------------------------------------

    async def infer_v2(self, request: Request, exchange: Exchange) -> Response:
        call, reply = await self._run(request, exchange, "infer", v2.decode_request)
        resolved = call.resolved
        caller_id = call.request.id if call.request is not None else None
        if reply.v2_json is not None and caller_id is None:
            return _answer(reply.v2_json, reply)  # already this answer's v2 JSON (the cache)
        response = reply.tensors()
        if resolved is None or response is None:
            raise BadGateway("the call produced no tensors")
        body = v2.encode_response(response, resolved.model, resolved.version, caller_id)
        return _answer(body, reply)

    async def predict_v1(self, request: Request, exchange: Exchange) -> Response:
        call, reply = await self._run(request, exchange, "infer", v1.decode_request)
        response = reply.tensors()
        if response is None:
            raise BadGateway("the call produced no tensors")
        columnar = call.request.columnar if call.request is not None else False
        return _answer(v1.encode_response(response, columnar=columnar), reply)

    async def status_v1(self, request: Request, exchange: Exchange) -> Response:
        _, reply = await self._run(request, exchange, "status")
        return _answer(v1.encode_status(_info(reply)), reply)

    async def metadata_v1(self, request: Request, exchange: Exchange) -> Response:
        _, reply = await self._run(request, exchange, "metadata")
        return _answer(v1.encode_metadata(_info(reply)), reply)

    async def metadata_v2(self, request: Request, exchange: Exchange) -> Response:
        _, reply = await self._run(request, exchange, "metadata")
        return _answer(v2.encode_metadata(_info(reply)), reply)

    async def ready_v2(self, request: Request, exchange: Exchange) -> Response:
        _, reply = await self._run(request, exchange, "ready")
        info = _info(reply)
        if not all(ok for _, ok in info.ready):
            raise ModelNotReady(f"model {info.model!r} version {info.version!r} is not ready")
        return _answer(dumps({"name": info.model, "ready": True}), reply)

    # -- HTTP → Call → chain ----------------------------------------------------------------

    async def _run(
        self, request: Request, exchange: Exchange, kind: CallKind, decoder: Decoder | None = None
    ) -> tuple[Call, Reply]:
        """Build the call, run its chain on the route table taken now (the whole call runs on
        it, whatever reloads meanwhile), and return both."""
        scope = request.scope
        params: dict[str, str] = scope["path_params"]
        headers = Headers(scope["headers"])
        model = params["model"]
        pin = params.get("version") or headers.one(_PIN) or None
        action = "predict" if kind == "infer" else "metadata"
        required = (f"{action}:{model}", f"pin:{model}") if pin else (f"{action}:{model}",)
        client = scope.get("client")
        call = Call(
            kind,
            exchange.request_id,
            headers,
            method=scope["method"],
            path=scope["path"],
            scheme=scope.get("scheme", "http"),
            peer=client[0] if client else None,
            model=model,
            pin=pin,
            required=required,
            payload=HTTPPayload(request, self.limit) if decoder is not None else None,
            decoder=decoder,
        )
        runtime = self.state.reloader.current
        exchange.call, exchange.models = call, runtime.table.models
        return call, await runtime.chains[kind](call)


def _info(reply: Reply) -> ModelInfo:
    if reply.info is None:
        raise BadGateway("the call produced no model description")
    return reply.info


def _answer(body: bytes, reply: Reply) -> Response:
    response = Response(body, status_code=reply.status, media_type=_JSON)
    if reply.headers:
        response.raw_headers += raw_headers(reply.headers)
    return response

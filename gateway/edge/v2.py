"""KServe v2 (the Open Inference Protocol) over HTTP: server metadata and health, model
metadata and readiness, and inference in JSON or with binary tensor data, both ways.

- ``GET /v2`` names the server and its extensions; ``/v2/health/live`` and
  ``/v2/health/ready`` answer 200 with an empty body (the spec's), as Triton does.
- An inference request with ``Inference-Header-Content-Length`` is a JSON header and binary
  tensors (``codecs.binary``); the reply is binary for the outputs the caller asked so
  (``binary_data_output``, per-output ``binary_data``), with ``Inference-Header-Content-Length``
  and ``application/octet-stream``, else JSON. The caller's ``id`` is echoed and the request's
  and reply's ``parameters`` kept.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope

from gateway import __version__
from gateway.call import Decoder
from gateway.codecs import binary, v2
from gateway.codecs.tensors import dumps
from gateway.edge.answer import Answer
from gateway.edge.calls import InferenceHTTP, answer, info_of
from gateway.edge.http import Exchange, Route
from gateway.errors import BadGateway, BadRequest, ModelNotReady
from gateway.headers import Headers

EXTENSIONS = ("binary_tensor_data", "parameters")
_HEADER = binary.HEADER.lower().encode("latin-1")


class KServeHTTP(InferenceHTTP):
    def routes(self) -> list[Route]:
        model, pinned = "/v2/models/{model}", "/v2/models/{model}/versions/{version}"
        shape = self.errors
        return [
            Route(f"{model}/infer", self.infer, ("POST",), shape, direct=self.infer_on),
            Route(f"{pinned}/infer", self.infer, ("POST",), shape, direct=self.infer_on),
            Route(model, self.metadata, ("GET",), shape),
            Route(pinned, self.metadata, ("GET",), shape),
            Route(f"{model}/ready", self.ready, ("GET",), shape),
            Route(f"{pinned}/ready", self.ready, ("GET",), shape),
            Route("/v2", self.server, ("GET",), shape),
            Route("/v2/health/live", self.live, ("GET",), shape, observe=False),
            Route("/v2/health/ready", self.live, ("GET",), shape, observe=False),
        ]

    async def infer(self, request: Request, exchange: Exchange) -> Answer:
        return await self.infer_on(request.scope, request.receive, exchange)

    async def infer_on(self, scope: Scope, receive: Receive, exchange: Exchange) -> Answer:
        """Inference, on either lane (the direct lane calls it without a request object)."""
        headers = Headers(scope["headers"])  # one view (one index) for every step
        given = headers.value(_HEADER)
        decoder: Decoder = v2.decode_request
        if given is not None:
            length = binary.header_length(given.decode("latin-1"), BadRequest)
            if length is not None:
                decoder = partial(v2.decode_request, header_length=length)
        if self.wants_job(scope, headers):
            return await self.submit(scope, receive, exchange, "v2", decoder, headers)
        call, pending = self.start(scope, receive, exchange, "infer", decoder, headers)
        reply = await pending
        resolved, asked = call.resolved, call.request
        caller_id = asked.id if asked is not None else None
        wanted = binary.wanted_outputs(asked)
        if wanted is None and reply.v2_json is not None and caller_id is None:
            return answer(scope, reply.v2_json, reply)  # this answer's v2 JSON (the cache)
        response = reply.tensors()
        if resolved is None or response is None:
            raise BadGateway("the call produced no tensors")
        model, version = resolved.model, resolved.version
        if wanted is None:
            return answer(scope, v2.encode_response(response, model, version, caller_id), reply)
        body, length = v2.encode_response_binary(response, model, version, caller_id, wanted)
        extra = [(binary.HEADER, str(length))]
        return answer(scope, body, reply, binary.CONTENT_TYPE, extra)

    async def metadata(self, request: Request, exchange: Exchange) -> Answer:
        _, reply = await self.run(request, exchange, "metadata")
        return answer(request.scope, v2.encode_metadata(info_of(reply)), reply)

    async def ready(self, request: Request, exchange: Exchange) -> Answer:
        _, reply = await self.run(request, exchange, "ready")
        info = info_of(reply)
        if not all(ok for _, ok in info.ready):
            raise ModelNotReady(f"model {info.model!r} version {info.version!r} is not ready")
        return answer(request.scope, dumps({"name": info.model, "ready": True}), reply)

    async def server(self, request: Request, exchange: Exchange) -> Answer:
        body = {"name": "model-gateway", "version": __version__, "extensions": list(EXTENSIONS)}
        return answer(request.scope, dumps(body))

    async def live(self, request: Request, exchange: Exchange) -> Response:
        """Live and ready alike: a route table is loaded as soon as the gateway serves."""
        return Response(status_code=200)

"""TF Serving's REST API over HTTP: ``:predict`` (rows or columns), model status and signature
metadata, whatever server kind serves the model; ``:classify`` and ``:regress`` (``tf.Example``
features) to TF Serving backends, which have them (another kind: a 400 naming the method).
``signature_name`` goes to the server; another signature than ``serving_default`` is checked
by the server, not against the default signature's inputs."""

from __future__ import annotations

from typing import Literal

from starlette.requests import Request
from starlette.types import Receive, Scope

from gateway.codecs import v1
from gateway.edge.answer import Answer
from gateway.edge.calls import InferenceHTTP, answer, info_of
from gateway.edge.http import Exchange, Route
from gateway.errors import BadGateway, MethodNotAllowed
from gateway.headers import Headers

METHODS = ("predict", "classify", "regress")


class TFServingHTTP(InferenceHTTP):
    def routes(self) -> list[Route]:
        model, pinned = "/v1/models/{model}", "/v1/models/{model}/versions/{version}"
        shape = self.errors
        return [
            Route(f"{model}:predict", self.predict, ("POST",), shape, direct=self.predict_on),
            Route(f"{pinned}:predict", self.predict, ("POST",), shape, direct=self.predict_on),
            Route(f"{model}:classify", self.classify, ("POST",), shape),
            Route(f"{pinned}:classify", self.classify, ("POST",), shape),
            Route(f"{model}:regress", self.regress, ("POST",), shape),
            Route(f"{pinned}:regress", self.regress, ("POST",), shape),
            Route(model, self.status, ("GET",), shape),
            Route(pinned, self.status, ("GET",), shape),
            Route(f"{model}/metadata", self.metadata, ("GET",), shape),
            Route(f"{pinned}/metadata", self.metadata, ("GET",), shape),
        ]

    async def predict(self, request: Request, exchange: Exchange) -> Answer:
        return await self.predict_on(request.scope, request.receive, exchange)

    async def predict_on(self, scope: Scope, receive: Receive, exchange: Exchange) -> Answer:
        """``:predict``, on either lane (the direct lane calls it without a request object)."""
        headers = Headers(scope["headers"])  # one view (one index) for every step
        if self.wants_job(scope, headers):
            return await self.submit(scope, receive, exchange, "v1", v1.decode_request, headers)
        decoder = v1.decode_request
        call, pending = self.start(scope, receive, exchange, "infer", decoder, headers)
        reply = await pending
        response = reply.tensors()
        if response is None:
            raise BadGateway("the call produced no tensors")
        columnar = call.request.columnar if call.request is not None else False
        return answer(scope, v1.encode_response(response, columnar=columnar), reply)

    async def classify(self, request: Request, exchange: Exchange) -> Answer:
        return await self._examples(request, exchange, "classify")

    async def regress(self, request: Request, exchange: Exchange) -> Answer:
        return await self._examples(request, exchange, "regress")

    async def _examples(
        self, request: Request, exchange: Exchange, kind: Literal["classify", "regress"]
    ) -> Answer:
        """The body goes to TF Serving as it came; its answer comes back as it is."""
        _, reply = await self.run(request, exchange, kind, payload=True)
        if reply.body is None:
            raise BadGateway("the call produced no answer")
        return answer(request.scope, reply.body, reply)

    async def status(self, request: Request, exchange: Exchange) -> Answer:
        name, _, method = request.path_params["model"].rpartition(":")
        if name and method in METHODS:  # GET /v1/models/m:predict reads as model "m:predict"
            raise MethodNotAllowed(f"{method} takes POST", headers={"Allow": "POST"})
        _, reply = await self.run(request, exchange, "status")
        return answer(request.scope, v1.encode_status(info_of(reply)), reply)

    async def metadata(self, request: Request, exchange: Exchange) -> Answer:
        _, reply = await self.run(request, exchange, "metadata")
        return answer(request.scope, v1.encode_metadata(info_of(reply)), reply)

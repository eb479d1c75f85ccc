"""KServe v2 over gRPC (``inference.GRPCInferenceService``): the frontend for tritonclient.grpc,
kserve's gRPC client and every other v2 gRPC client.

ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelInfer and
ModelStreamInfer (each message its own call; an error answers in-band in ``error_message`` and
the stream goes on, as Triton's does). Every model RPC is a Call through the same chain as
HTTP: credentials from ``authorization`` / ``x-api-key`` metadata, the version pinned by
``model_version``, the cache shared with HTTP (the same tensors hit the same entry whichever
protocol asked). Inputs may be typed contents or ``raw_input_contents``; outputs are always
``raw_output_contents``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc

from gateway import __version__
from gateway.call import Call, Reply
from gateway.codecs import v2_grpc
from gateway.codecs.tensors import ModelInfo
from gateway.codecs.v2_proto import SERVICE, Messages, messages
from gateway.edge.grpc import Lane, Scope
from gateway.errors import BadGateway, GatewayError
from gateway.state import State

EXTENSIONS = ("binary_tensor_data", "parameters")
Context = grpc.aio.ServicerContext[Any, Any]


class KServeGRPC:
    def __init__(self, state: State, lane: Lane, pb: Messages) -> None:
        self.state = state
        self.lane = lane
        self.pb = pb

    async def ServerLive(self, request: Any, context: Context) -> Any:  # noqa: N802
        return self.pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Context) -> Any:  # noqa: N802
        return self.pb.ServerReadyResponse(ready=True)  # a route table is loaded once we serve

    async def ServerMetadata(self, request: Any, context: Context) -> Any:  # noqa: N802
        return self.pb.ServerMetadataResponse(
            name="model-gateway", version=__version__, extensions=list(EXTENSIONS)
        )

    async def ModelReady(self, request: Any, context: Context) -> Any:  # noqa: N802
        async def work(scope: Scope) -> Any:
            call = scope.new_call("ready", request.name, request.version or None)
            info = _info(await self._run(scope, call))
            return self.pb.ModelReadyResponse(ready=all(ok for _, ok in info.ready))

        return await self.lane.rpc(context, f"/{SERVICE}/ModelReady", work, request=request)

    async def ModelMetadata(self, request: Any, context: Context) -> Any:  # noqa: N802
        async def work(scope: Scope) -> Any:
            call = scope.new_call("metadata", request.name, request.version or None)
            return v2_grpc.encode_metadata(_info(await self._run(scope, call)))

        return await self.lane.rpc(context, f"/{SERVICE}/ModelMetadata", work, request=request)

    async def ModelInfer(self, request: Any, context: Context) -> Any:  # noqa: N802
        work = self._infer(request)
        return await self.lane.rpc(context, f"/{SERVICE}/ModelInfer", work, request=request)

    async def ModelStreamInfer(  # noqa: N802
        self, requests: AsyncIterator[Any], context: Context
    ) -> AsyncIterator[Any]:
        async for request in requests:
            try:
                answer = await self.lane.rpc(
                    context,
                    f"/{SERVICE}/ModelStreamInfer",
                    self._infer(request),
                    abort=False,
                    request=request,
                )
            except GatewayError as exc:
                yield self.pb.ModelStreamInferResponse(error_message=exc.message)
            else:
                yield self.pb.ModelStreamInferResponse(infer_response=answer)

    def _infer(self, request: Any) -> Any:
        async def work(scope: Scope) -> Any:
            call = scope.new_call("infer", request.model_name, request.model_version or None)
            call.source = lambda: v2_grpc.decode_request(request)
            reply = await self._run(scope, call)
            response = reply.tensors()
            resolved = call.resolved
            if response is None or resolved is None:
                raise BadGateway("the call produced no tensors")
            asked = call.request.id if call.request is not None else None
            return v2_grpc.encode_response(response, resolved.model, resolved.version, asked)

        return work

    async def _run(self, scope: Scope, call: Call) -> Reply:
        runtime = self.state.reloader.current
        scope.models = runtime.table.models
        reply = await runtime.chains[call.kind](call)
        self.lane.answered(scope, reply)
        return reply


def _info(reply: Reply) -> ModelInfo:
    if reply.info is None:
        raise BadGateway("the call produced no model description")
    return reply.info


def servicers(state: State, lane: Lane) -> list[tuple[Any, Any, str]]:
    """The service as grpcio's generic handlers, with the private pool's message classes."""
    pb = messages()
    servicer = KServeGRPC(state, lane, pb)

    def unary(method: Any, request: Any, response: Any) -> grpc.RpcMethodHandler[Any, Any]:
        return grpc.unary_unary_rpc_method_handler(
            method,
            request_deserializer=request.FromString,
            response_serializer=response.SerializeToString,
        )

    handlers = {
        "ServerLive": unary(servicer.ServerLive, pb.ServerLiveRequest, pb.ServerLiveResponse),
        "ServerReady": unary(servicer.ServerReady, pb.ServerReadyRequest, pb.ServerReadyResponse),
        "ServerMetadata": unary(
            servicer.ServerMetadata, pb.ServerMetadataRequest, pb.ServerMetadataResponse
        ),
        "ModelReady": unary(servicer.ModelReady, pb.ModelReadyRequest, pb.ModelReadyResponse),
        "ModelMetadata": unary(
            servicer.ModelMetadata, pb.ModelMetadataRequest, pb.ModelMetadataResponse
        ),
        "ModelInfer": unary(servicer.ModelInfer, pb.ModelInferRequest, pb.ModelInferResponse),
        "ModelStreamInfer": grpc.stream_stream_rpc_method_handler(
            servicer.ModelStreamInfer,
            request_deserializer=pb.ModelInferRequest.FromString,
            response_serializer=pb.ModelStreamInferResponse.SerializeToString,
        ),
    }
    generic = grpc.method_handlers_generic_handler(SERVICE, handlers)

    def add(_: Any, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((generic,))

    return [(add, servicer, SERVICE)]

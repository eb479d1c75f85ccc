"""Request bytes that do not parse as the RPC's message: INVALID_ARGUMENT, not UNKNOWN.

grpcio turns an exception from a request deserializer (protobuf's ``DecodeError``: bytes that
are not the message, or nested past protobuf's recursion limit) into ``UNKNOWN`` with the
exception's text, before any servicer or the lane sees the RPC. :class:`DecodeGuard` wraps
every method handler of the server: its deserializer hands on an :class:`Undecoded` instead
of raising, and its behaviour answers that through the lane (a 400: ``INVALID_ARGUMENT``,
observed and logged like every other refused RPC). Handlers of another style (neither a
coroutine nor an async generator function) are left as they are.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import grpc
from google.protobuf.message import DecodeError

from gateway.errors import BadRequest

Context = grpc.aio.ServicerContext[Any, Any]


class Lane(Protocol):
    """``edge.grpc.Lane``, which builds its server with the guard (no import: a cycle)."""

    async def rpc(
        self,
        context: Context,
        method: str,
        work: Callable[[Any], Awaitable[Any]],
        *,
        abort: bool = True,
        request: Any = None,
    ) -> Any: ...


class Undecoded:
    """What the tolerant deserializer hands on for bytes the message class refused."""

    __slots__ = ("error", "method")

    def __init__(self, method: str, error: Exception) -> None:
        self.method = method
        self.error = error

    async def refuse(self, lane: Lane, context: Context) -> None:
        """Abort the RPC with INVALID_ARGUMENT, through the lane."""

        async def work(scope: Any) -> None:
            raise BadRequest(f"the request does not parse as {self.method}'s message: {self.error}")

        await lane.rpc(context, self.method, work)


class DecodeGuard(grpc.aio.ServerInterceptor):
    """Answers undecodable requests with INVALID_ARGUMENT (see the module's docstring)."""

    def __init__(self, lane: Lane) -> None:
        self.lane = lane

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None:
            return handler
        guarded: grpc.RpcMethodHandler[Any, Any] = guard(
            handler, handler_call_details.method, self.lane
        )
        return guarded


def guard(handler: Any, method: str, lane: Lane) -> Any:
    """``handler`` (grpcio's RpcMethodHandler namedtuple) with a tolerant deserializer and a
    behaviour that refuses what it could not decode."""
    deserialize = handler.request_deserializer

    def tolerant(data: bytes) -> Any:
        try:
            return deserialize(data)
        except DecodeError as exc:
            return Undecoded(method, exc)

    name = {
        (False, False): "unary_unary",
        (False, True): "unary_stream",
        (True, False): "stream_unary",
        (True, True): "stream_stream",
    }[(bool(handler.request_streaming), bool(handler.response_streaming))]
    inner = getattr(handler, name)
    wrapped = _streamed(inner, lane) if handler.request_streaming else _unary(inner, lane)
    if wrapped is None:
        return handler
    return handler._replace(request_deserializer=tolerant, **{name: wrapped})


def _unary(inner: Any, lane: Lane) -> Any:
    if inspect.iscoroutinefunction(inner):

        async def respond(request: Any, context: Context) -> Any:
            if isinstance(request, Undecoded):
                await request.refuse(lane, context)
            return await inner(request, context)

        return respond
    if inspect.isasyncgenfunction(inner):

        async def stream(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(request, Undecoded):
                await request.refuse(lane, context)
            async for response in inner(request, context):
                yield response

        return stream
    return None


def _streamed(inner: Any, lane: Lane) -> Any:
    async def checked(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
        async for request in requests:
            if isinstance(request, Undecoded):
                await request.refuse(lane, context)
            yield request

    if inspect.iscoroutinefunction(inner):

        async def respond(requests: AsyncIterator[Any], context: Context) -> Any:
            return await inner(checked(requests, context), context)

        return respond
    if inspect.isasyncgenfunction(inner):

        async def stream(requests: AsyncIterator[Any], context: Context) -> AsyncIterator[Any]:
            async for response in inner(checked(requests, context), context):
                yield response

        return stream
    return None

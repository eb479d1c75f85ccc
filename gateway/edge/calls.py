"""What the HTTP inference frontends share: an HTTP request turned into a Call and run through
its chain on the route table taken once, and a reply answered with the caller's coding.

The endpoints are ``edge.v2`` (KServe v2) and ``edge.v1`` (TF Serving REST). Errors take the
protocols' shape (``{"error": "<message>", ...}``), unless the deprecated
``GATEWAY_INFERENCE_ERRORS=legacy`` asks for the earlier object.

Everything here works on the request's ASGI scope and ``receive`` callable, not on a Starlette
``Request``, and answers an :class:`~gateway.edge.answer.Answer`: so the direct lane
(``edge.direct``), which has no request object, and the ASGI lane run the same code.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable

from starlette.requests import Request
from starlette.types import Receive, Scope

from gateway.auth.client_certs import client_cert_of
from gateway.call import ANSWER_KINDS, Call, CallKind, Decoder, Reply
from gateway.codecs.tensors import ModelInfo, dumps
from gateway.edge.answer import JSON, Answer, raw_headers
from gateway.edge.body import HTTPPayload
from gateway.edge.encoding import COMPRESS_FROM, accepted, compress
from gateway.edge.errors import ErrorShape
from gateway.edge.http import Exchange
from gateway.edge.prefer import prefers_async
from gateway.errors import BadGateway
from gateway.headers import Headers
from gateway.jobs.admission import admit, check_quota
from gateway.jobs.model import KEPT_HEADERS, JobProtocol
from gateway.jobs.service import owner_of, snapshot
from gateway.state import State
from gateway.traffic.choose import VERSION_HEADER

logger = logging.getLogger("gateway")
_PIN = VERSION_HEADER.lower()
_PIN_WIRE = _PIN.encode("latin-1")


class InferenceHTTP:
    """The base of the inference frontends: calls in, answers out."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.limit = state.settings.max_body_bytes
        self.errors: ErrorShape = "protocol"
        if state.settings.inference_errors == "legacy":
            self.errors = "gateway"

    def wants_job(self, scope: Scope, headers: Headers | None = None) -> bool:
        """``Prefer: respond-async`` on a gateway that takes jobs (``headers``: the view of
        the scope's headers the caller already made)."""
        if not self.state.runtime.table.jobs.enabled:
            return False
        if headers is None:
            headers = Headers(scope["headers"])
        # nearly every call sends no Prefer: no parse for those
        return headers.first(b"prefer") is not None and prefers_async(headers)

    async def submit(
        self,
        scope: Scope,
        receive: Receive,
        exchange: Exchange,
        protocol: JobProtocol,
        decoder: Decoder,
        headers: Headers | None = None,
    ) -> Answer:
        """Accept the request as an async job: 202, ``Location: /jobs/{id}``. Checked now as
        the live call would be: credentials and scopes, the model (404), the body (400), the
        tenant's quota and queue limit (429); the same ``Idempotency-Key`` gives the same job
        (200, or 409 with another request)."""
        call = self._call(scope, receive, exchange, "infer", decoder, headers, payload=True)
        runtime = self.state.reloader.current
        exchange.call, exchange.models = call, runtime.table.models
        model = call.model or ""
        caller = await admit(runtime, call)
        runtime.resolve(model, call.pin)  # 404 for a model or version not served
        await call.inference()  # a malformed body is a 400 now, never a failed job later
        await check_quota(runtime, caller, model)
        headers = call.headers
        tenant = caller.principal.tenant if caller is not None else None
        callback = headers.one("callback-url")
        if callback is not None:
            callback = await self.state.jobs.sink.check_callback(tenant, callback)
        body = await call.payload.read() if call.payload is not None else b""
        kept = [(name, value) for name in KEPT_HEADERS if (value := headers.one(name))]
        if call.pin and not any(name == _PIN for name, _ in kept):
            kept.append((_PIN, call.pin))
        job, created = await self.state.jobs.submit(
            model=model,
            pin=call.pin,
            protocol=protocol,
            body=body,
            headers=kept,
            caller=snapshot(caller),
            owner=owner_of(caller),
            callback_url=callback,
            idempotency_key=headers.one("idempotency-key"),
        )
        shown = {
            "id": job.id,
            "status": job.status,
            "model": job.model,
            "created_at": job.created_at,
        }
        location = f"/jobs/{job.id}".encode("latin-1")
        answered = [(b"location", location), (b"preference-applied", b"respond-async")]
        return Answer(dumps(shown), 202 if created else 200, headers=answered)

    def _call(
        self,
        scope: Scope,
        receive: Receive,
        exchange: Exchange,
        kind: CallKind,
        decoder: Decoder | None,
        headers: Headers | None = None,
        *,
        payload: bool,
    ) -> Call:
        params: dict[str, str] = scope["path_params"]
        if headers is None:
            headers = Headers(scope["headers"])
        model = params["model"]
        pin = params.get("version")
        if not pin:
            asked = headers.value(_PIN_WIRE)
            pin = asked.decode("latin-1") if asked else None
        action = "predict" if kind in ANSWER_KINDS else "metadata"
        required = (f"{action}:{model}", f"pin:{model}") if pin else (f"{action}:{model}",)
        client = scope.get("client")
        extensions = scope.get("extensions")
        has_body = decoder is not None or payload
        read = HTTPPayload.of(headers, receive, self.limit, inflate=True) if has_body else None
        # Positional, in Call's field order: matching ten keywords against its 27 fields cost
        # more than the rest of its construction (5 k instructions, 1 % of a v2 request).
        # tests/unit/edge/test_calls.py pins every field.
        return Call(
            kind,
            exchange.request_id,
            headers,
            scope["method"],  # method
            scope["path"],  # path
            "",  # query: none on these routes
            scope.get("scheme", "http"),  # scheme
            client[0] if client else None,  # peer
            client_cert_of(extensions) if extensions else None,  # client_cert
            model,
            pin,
            required,
            read,  # payload
            decoder,
        )

    async def run(
        self,
        request: Request,
        exchange: Exchange,
        kind: CallKind,
        decoder: Decoder | None = None,
        *,
        payload: bool = False,
    ) -> tuple[Call, Reply]:
        """:meth:`start` on a Starlette request's scope, and its reply awaited."""
        call, reply = self.start(
            request.scope, request.receive, exchange, kind, decoder, payload=payload
        )
        return call, await reply

    def start(
        self,
        scope: Scope,
        receive: Receive,
        exchange: Exchange,
        kind: CallKind,
        decoder: Decoder | None = None,
        headers: Headers | None = None,
        *,
        payload: bool = False,
    ) -> tuple[Call, Awaitable[Reply]]:
        """Build the call and start its chain on the route table taken now (the whole call
        runs on it, whatever reloads meanwhile): the call, and its reply for the caller to
        await (``headers``: the view of the scope's headers the caller already made, shared
        by every step). A plain method handing back the chain's own awaitable: no coroutine
        of its own around it (one frame fewer per inference request)."""
        call = self._call(scope, receive, exchange, kind, decoder, headers, payload=payload)
        runtime = self.state.reloader.current
        exchange.call, exchange.models = call, runtime.table.models
        return call, runtime.chains[kind](call)


def info_of(reply: Reply) -> ModelInfo:
    if reply.info is None:
        raise BadGateway("the call produced no model description")
    return reply.info


def answer(
    scope: Scope,
    body: bytes,
    reply: Reply | None = None,
    media_type: str = JSON,
    headers: list[tuple[str, str]] | None = None,
) -> Answer:
    """The reply's body with its headers, compressed when the client accepts it and the body
    is worth it."""
    extra = list(headers) if headers else []
    if len(body) >= COMPRESS_FROM:
        extra.append(("Vary", "Accept-Encoding"))
        coding = accepted(Headers(scope["headers"]).get("accept-encoding"))
        if coding is not None:
            body = compress(body, coding)
            extra.append(("Content-Encoding", coding))
    if reply is not None and reply.headers:
        extra.extend(reply.headers)
    raw = raw_headers(extra) if extra else []
    return Answer(body, reply.status if reply else 200, media_type, raw)

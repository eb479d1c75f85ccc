"""Batch files over HTTP: ``POST /batches`` (a JSONL file of requests), ``GET /batches``,
``GET /batches/{id}``, ``GET /batches/{id}/results`` (JSONL) and ``DELETE /batches/{id}``.

The caller's credentials are the inference ones, checked for every line as a live call's
(``predict:<model>``, and ``pin:<model>`` with a version). A caller sees only its own
batches; another tenant's batch id is a 404 like an unknown one. Errors take the gateway
shape ``{"error": {"code", "message"}, "request_id"}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from gateway.admin.access import query_limit
from gateway.auth.authenticator import CHALLENGE, Caller
from gateway.auth.client_certs import client_cert_of
from gateway.batches.lines import read_lines
from gateway.batches.model import Batch
from gateway.config.live import Runtime
from gateway.edge.answer import raw_headers
from gateway.edge.body import HTTPPayload
from gateway.edge.http import Exchange, Route
from gateway.errors import NotFound, Unauthorized
from gateway.headers import Headers
from gateway.jobs.admission import check_quota
from gateway.jobs.service import owner_of, snapshot
from gateway.state import State

JSON = "application/json"
JSONL = "application/jsonl"


class BatchesHTTP:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/batches", self.create, ("POST",)),
            Route("/batches", self.list, ("GET",)),
            Route("/batches/{batch_id}", self.show, ("GET",)),
            Route("/batches/{batch_id}", self.cancel, ("DELETE",)),
            Route("/batches/{batch_id}/results", self.results, ("GET",)),
        ]

    async def caller(self, request: Request, runtime: Runtime) -> Caller | None:
        """The caller (None: anonymous; 401 without credentials where auth requires them)."""
        auth = runtime.auth
        if auth is None:
            return None
        headers = Headers(request.scope["headers"])
        caller = await auth.authenticate(headers, client_cert_of(request.scope.get("extensions")))
        if caller is None and auth.config.required:
            raise Unauthorized("credentials required", headers=CHALLENGE)
        return caller

    async def owner(self, request: Request) -> str:
        return owner_of(await self.caller(request, self.state.runtime))

    async def create(self, request: Request, exchange: Exchange) -> Response:
        """Submit a batch file (JSONL, one request a line); 202 and its id."""
        runtime = self.state.runtime
        config = runtime.table.jobs
        if not config.enabled:
            raise NotFound("batch files are off here (jobs.enabled is false)")
        caller = await self.caller(request, runtime)
        body = await HTTPPayload(
            request.scope["headers"], request.receive, config.max_batch_bytes, inflate=True
        ).read()
        lines = await read_lines(body, runtime, caller, config.max_batch_lines)
        for model in sorted({line.model for line in lines}):
            await check_quota(runtime, caller, model)
        batches = self.state.batches
        batch = await batches.create(lines, snapshot(caller), owner_of(caller))
        response = _json(await batches.view(batch), 202)
        response.raw_headers += raw_headers([("Location", f"/batches/{batch.id}")])
        return response

    async def list(self, request: Request, exchange: Exchange) -> Response:
        """The caller's batches, newest first (``limit``, ``cursor``)."""
        return await list_batches(self.state, request, await self.owner(request))

    async def show(self, request: Request, exchange: Exchange) -> Response:
        """A batch: its status and counts per line state."""
        batches = self.state.batches
        batch = await batches.get(request.path_params["batch_id"], await self.owner(request))
        return _json(await batches.view(batch))

    async def results(self, request: Request, exchange: Exchange) -> Response:
        """The results as JSONL, in input order (unfinished lines with their status only)."""
        batch = await self.state.batches.get(
            request.path_params["batch_id"], await self.owner(request)
        )
        return results_response(self.state, batch)

    async def cancel(self, request: Request, exchange: Exchange) -> Response:
        """Cancel what has not run: unfed lines and queued jobs (409 once done)."""
        batches = self.state.batches
        batch = await batches.cancel(request.path_params["batch_id"], await self.owner(request))
        return _json(await batches.view(batch))


async def list_batches(state: State, request: Request, owner: str | None) -> Response:
    """One page of batches (``owner`` None: every tenant's, for the admin API)."""
    query = request.query_params
    batches, cursor = await state.batches.list(
        owner, limit=query_limit(request, 50, 1000), cursor=query.get("cursor") or None
    )
    shown = [await summary(state, batch, tenant=owner is None) for batch in batches]
    return _json({"batches": shown, "next_cursor": cursor})


async def summary(state: State, batch: Batch, *, tenant: bool = False) -> dict[str, Any]:
    shown = await state.batches.view(batch)
    if tenant and batch.owner:
        shown["tenant"] = batch.owner
    return shown


def results_response(state: State, batch: Batch) -> Response:
    return StreamingResponse(state.batches.results(batch), media_type=JSONL)


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type=JSON)

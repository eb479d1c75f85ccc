"""The admin API of batch files: every tenant's batches, one batch, its results, cancelling it."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.access import AdminAccess
from gateway.edge.batches import list_batches, results_response, summary
from gateway.edge.http import Exchange, Route
from gateway.state import State


class BatchesAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/admin/batches", self.list, ("GET",)),
            Route("/admin/batches/{batch_id}", self.show, ("GET",)),
            Route("/admin/batches/{batch_id}", self.cancel, ("DELETE",)),
            Route("/admin/batches/{batch_id}/results", self.results, ("GET",)),
        ]

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        return await list_batches(self.state, request, request.query_params.get("tenant"))

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        batch = await self.state.batches.get(request.path_params["batch_id"], None)
        return _json(await summary(self.state, batch, tenant=True))

    async def results(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        batch = await self.state.batches.get(request.path_params["batch_id"], None)
        return results_response(self.state, batch)

    async def cancel(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        batch = await self.state.batches.cancel(request.path_params["batch_id"], None)
        await self.access.audit(exchange.request_id, actor, "batch.cancel", f"batch:{batch.id}")
        return _json(await summary(self.state, batch, tenant=True))


def _json(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")

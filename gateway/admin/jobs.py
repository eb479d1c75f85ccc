"""The admin API of async jobs: every tenant's jobs, one job, cancelling it, the queue's
depth, dead letters."""

from __future__ import annotations

from dataclasses import asdict

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.access import AdminAccess, query_limit
from gateway.edge.http import Exchange, Route
from gateway.edge.jobs import list_jobs
from gateway.jobs.service import view
from gateway.state import State


class JobsAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/admin/jobs", self.list, ("GET",)),
            Route("/admin/jobs/dead", self.dead, ("GET",)),
            Route("/admin/jobs/depth", self.depth, ("GET",)),
            Route("/admin/jobs/{job_id}", self.show, ("GET",)),
            Route("/admin/jobs/{job_id}", self.cancel, ("DELETE",)),
        ]

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        tenant = request.query_params.get("tenant")
        return await list_jobs(self.state, request, tenant if tenant is not None else None)

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        job = await self.state.jobs.get(request.path_params["job_id"], None)
        return Response(
            orjson.dumps({**view(job), "tenant": job.owner}), media_type="application/json"
        )

    async def cancel(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        job = await self.state.jobs.cancel(request.path_params["job_id"], None)
        await self.access.audit(exchange.request_id, actor, "job.cancel", f"job:{job.id}")
        return Response(
            orjson.dumps({**view(job), "tenant": job.owner}), media_type="application/json"
        )

    async def depth(self, request: Request, exchange: Exchange) -> Response:
        """Jobs queued (not yet running), per model."""
        await self.access.require(request)
        depth = await self.state.services.store.job_depth()
        return Response(orjson.dumps({"depth": depth}), media_type="application/json")

    async def dead(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        letters = await self.state.services.store.job_dead(query_limit(request, 100, 1000))
        body = {"dead": [asdict(letter) for letter in letters]}
        return Response(orjson.dumps(body), media_type="application/json")

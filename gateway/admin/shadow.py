"""``GET /admin/shadow``: what shadow traffic has shown, per model and shadow version.

Counts are this worker process's (each worker mirrors its own share); Prometheus has the same
numbers as ``gateway_shadow_*`` for the whole fleet.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.edge.http import Exchange, Route
from gateway.state import State


class ShadowAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/admin/shadow", self.report, ("GET",))]

    async def report(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        runtime = self.state.reloader.current
        configured = {
            name: {"version": spec.shadow.version, "share": spec.shadow.share}
            for name, spec in runtime.table.models.items()
            if spec.shadow is not None
        }
        worker = self.state.services.shadow
        return JSONResponse(
            {"configured": configured, "models": worker.snapshot() if worker else {}}
        )

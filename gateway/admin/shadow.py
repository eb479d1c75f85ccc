"""``GET /admin/shadow``: what shadow traffic has shown, per model and shadow version.

Counts are this worker process's (each worker mirrors its own share); Prometheus has the same
numbers as ``gateway_shadow_*`` for the whole fleet. Models come by name a page at a time
(``gateway.admin.pages``): a model is on the page in both ``configured`` and ``models``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.admin.pages import page
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
        seen = worker.snapshot() if worker else {}
        chosen = page(request, sorted(configured.keys() | seen.keys()))
        return JSONResponse(
            {
                "configured": {
                    name: configured[name] for name in chosen.names if name in configured
                },
                "models": {name: seen[name] for name in chosen.names if name in seen},
                "next_cursor": chosen.next_cursor,
            }
        )

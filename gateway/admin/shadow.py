"""``GET /admin/shadow``: what shadow traffic has shown, per model and shadow version.

Counts are the fleet's: every worker mirrors and compares its own share, publishes its running
totals with its live series every step, and this sums the live replicas' (this one's as they
are now, the others' as of their last publish: a step, 5 s by default, behind;
``gateway.traffic.shadow_fleet``). Prometheus has the same numbers as ``gateway_shadow_*``.
Models come by name a page at a time (``gateway.admin.pages``): a model is on the page in both
``configured`` and ``models``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.admin.pages import page
from gateway.edge.http import Exchange, Route
from gateway.state import State
from gateway.traffic import shadow_fleet


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
        series = self.state.series
        texts = await series.summaries()
        if worker is not None:
            texts[series.replica] = shadow_fleet.summary(worker)  # this replica's, fresh
        seen = shadow_fleet.merge(texts.values())
        chosen = page(request, sorted(configured.keys() | seen.keys()))
        return JSONResponse(
            {
                "configured": {
                    name: configured[name] for name in chosen.names if name in configured
                },
                "models": {name: seen[name] for name in chosen.names if name in seen},
                "replicas": len(texts),
                "next_cursor": chosen.next_cursor,
            }
        )

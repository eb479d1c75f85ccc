"""The operators' endpoints: liveness, readiness and Prometheus metrics (not observed: they
are neither traced, counted nor logged)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.edge.http import Exchange, Route
from gateway.state import State
from gateway.telemetry import metrics


class OpsHTTP:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, ("GET",), observe=False),
            Route("/readyz", self.readyz, ("GET",), observe=False),
            Route("/metrics", self.metrics, ("GET",), observe=False),
        ]

    async def healthz(self, request: Request, exchange: Exchange) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request, exchange: Exchange) -> Response:
        """Ready once a route table is loaded. A store that does not answer is declared as
        degraded (cached keys and tokens still work; new keys and admin changes do not), not
        as unready: taking every replica out of rotation would turn a Redis blip into a full
        outage."""
        status = self.state.reloader.status
        store_ok = await self.state.services.store.ping()
        return JSONResponse(
            {
                "status": "ready" if store_ok else "degraded",
                "config": status.digest,
                "last_reload_ok": status.last_ok,
                "store": "ok" if store_ok else "unreachable",
            }
        )

    async def metrics(self, request: Request, exchange: Exchange) -> Response:
        body, media_type = metrics.render(self.state.registry)
        return Response(body, media_type=media_type)

"""``GET /admin/series``: the fleet's live series, per model and version (the console's charts).

Query: ``model`` and ``version`` keep one model or version (exact names), ``minutes`` the last
minutes only (a whole number from 1 to 1440, at most the window; default the whole window).
The answer is ``gateway.telemetry.series.view.SeriesView``. A rollout's gate thresholds and
step figures are in ``GET /admin/rollouts/{model}`` (``plan.gates``, ``figures``).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.edge.http import Exchange, Route
from gateway.errors import BadRequest
from gateway.state import State

MAX_MINUTES = 1440


class SeriesAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.series = state.series
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/admin/series", self.show, ("GET",))]

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        query = request.query_params
        minutes = query.get("minutes")
        if minutes is not None and not (
            minutes.isascii() and minutes.isdigit() and 1 <= int(minutes) <= MAX_MINUTES
        ):
            raise BadRequest(f"minutes must be a whole number from 1 to {MAX_MINUTES}")
        view = await self.series.read(
            query.get("model") or None,
            query.get("version") or None,
            int(minutes) if minutes is not None else None,
        )
        return JSONResponse(view)

"""``GET /admin/shadow``: what shadow traffic has shown, per model and shadow version.

Counts are this worker process's (each worker mirrors its own share); Prometheus has the same
numbers as ``gateway_shadow_*`` for the whole fleet.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.admin import require_admin
from gateway.shadow import ShadowWorker


async def shadow_report(request: Request) -> Response:
    await require_admin(request)
    worker: ShadowWorker = request.app.state.shadow
    runtime = request.app.state.gateway.reloader.current
    configured = {
        name: {"version": spec.shadow.version, "share": spec.shadow.share}
        for name, spec in runtime.table.models.items()
        if spec.shadow is not None
    }
    return JSONResponse({"configured": configured, "models": worker.snapshot()})


def routes() -> list[BaseRoute]:
    return [Route("/admin/shadow", shadow_report, methods=["GET"])]

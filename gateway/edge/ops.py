"""The operators' endpoints: liveness, readiness and Prometheus metrics (not observed: they
are neither traced, counted nor logged), and the API's description: ``/openapi.json``
(``edge.openapi``) and ``/docs`` (Swagger UI, ``edge.openapi_docs``).

Both are public and need no credential, like the protocols' own metadata endpoints. What the
document shows depends on where it is read: the admin API is described only where it can be
reached (on ``GATEWAY_ADMIN_PORT`` when one is set, else when the admin API is enabled by
``GATEWAY_ADMIN_TOKEN`` or an ``auth:`` section); the served models and their inputs are
listed unless the route table requires credentials, in which case only the admin port's
document lists them (the ``{model}`` templates and generic schemas remain public).
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.edge.http import Exchange, Route
from gateway.edge.openapi import OpenAPIDocument, View
from gateway.edge.openapi_docs import PAGE, SwaggerAssets
from gateway.errors import Unavailable
from gateway.state import State
from gateway.telemetry import metrics


class OpsHTTP:
    def __init__(self, state: State) -> None:
        self.state = state
        self.document: OpenAPIDocument | None = None
        self.assets = SwaggerAssets()

    def routes(self) -> list[Route]:
        return [
            Route("/healthz", self.healthz, ("GET",), observe=False),
            Route("/readyz", self.readyz, ("GET",), observe=False),
            Route("/metrics", self.metrics, ("GET",), observe=False),
            Route("/openapi.json", self.openapi, ("GET",)),
            Route("/docs", self.docs, ("GET",)),
            Route("/docs/{asset}", self.docs_asset, ("GET",)),
        ]

    def describe(self, routes: list[Route]) -> None:
        """Serve the description of ``routes`` (every route of the worker, these included)."""
        self.document = OpenAPIDocument(routes)

    def view(self, request: Request) -> View:
        """What this reader is shown (see the module's docstring)."""
        settings = self.state.settings
        runtime = self.state.reloader.current
        server = request.scope.get("server")
        on_admin_port = settings.admin_port is not None and (
            server is not None and server[1] == settings.admin_port
        )
        if settings.admin_port is not None:
            admin = on_admin_port
        else:
            admin = bool(settings.admin_token) or runtime.auth is not None
        auth = runtime.table.auth
        return View(admin=admin, models=auth is None or not auth.required or on_admin_port)

    async def openapi(self, request: Request, exchange: Exchange) -> Response:
        if self.document is None:
            raise Unavailable("the API description is not built yet", headers={"Retry-After": "1"})
        runtime = self.state.reloader.current
        body = await self.document.render(runtime, self.view(request))
        return Response(body, media_type="application/json")

    async def docs(self, request: Request, exchange: Exchange) -> Response:
        return Response(PAGE, media_type="text/html; charset=utf-8")

    async def docs_asset(self, request: Request, exchange: Exchange) -> Response:
        content, media_type = await self.assets.get(request.path_params["asset"])
        return Response(
            content, media_type=media_type, headers={"Cache-Control": "public, max-age=86400"}
        )

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

"""The admin API of the running gateway: its route table's status and reload, the response
cache's purge, and the audit log. ``GET /admin/config`` gives the backends' status by name a
page at a time (``gateway.admin.pages``); the reload status comes with every page."""

from __future__ import annotations

import dataclasses

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess, query_limit, read_body
from gateway.admin.pages import SortedNames, page
from gateway.caching.keys import purge_pattern
from gateway.config.types import Strict
from gateway.edge.http import Exchange, Route
from gateway.errors import InvalidBody
from gateway.state import State


class PurgeBody(Strict):
    model: str | None = None
    version: str | None = None
    tenant: str | None = None


class ConfigAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access
        self._backends = SortedNames()

    def routes(self) -> list[Route]:
        return [
            Route("/admin/config", self.config, ("GET",)),
            Route("/admin/config/reload", self.reload, ("POST",)),
            Route("/admin/audit", self.audit_log, ("GET",)),
            Route("/admin/cache/purge", self.purge_cache, ("POST",)),
        ]

    async def config(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        reloader = self.state.reloader
        runtime = reloader.current
        backends = runtime.backends
        chosen = page(request, self._backends.of(runtime, backends))
        return JSONResponse(
            {
                "status": reloader.status.as_json(),
                "backends": {name: backends[name].pool.state() for name in chosen.names},
                "next_cursor": chosen.next_cursor,
            }
        )

    async def reload(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        status = await self.state.reloader.reload("admin")
        target = f"config:{status.digest}"
        await self.access.audit(
            exchange.request_id, actor, "config.reload", target, ok=status.last_ok
        )
        return JSONResponse(status.as_json(), status_code=200 if status.last_ok else 422)

    async def purge_cache(self, request: Request, exchange: Exchange) -> Response:
        """Drop cached answers by model, version and/or tenant (all of them with ``{}``)."""
        actor = await self.access.require(request)
        body = await read_body(request, PurgeBody)
        if body.version is not None and body.model is None:
            raise InvalidBody("a version needs its model")
        pattern = purge_pattern(body.model, body.version, body.tenant)
        purged = await self.state.services.store.cache_purge(pattern)
        await self.access.audit(
            exchange.request_id, actor, "cache.purge", f"cache:{pattern}", purged=purged
        )
        return JSONResponse({"purged": purged, "pattern": pattern})

    async def audit_log(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        limit = query_limit(request, 100, 10_000)
        entries = await self.state.services.store.audit_log(limit)
        return JSONResponse({"entries": [dataclasses.asdict(e) for e in entries]})

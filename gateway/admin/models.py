"""``GET /admin/models``: the running route table's models, a page at a time, each version with
its backend and whether it can take requests here now.

A model's entry: ``name``, ``default`` (the version a call without a pin gets, unless a split
or rollout says otherwise) and ``versions``, each ``{"version", "backend", "ready"}``;
``ready`` is this worker's view: a replica of the backend is not ejected and is ready for
that model version (the health checks' latest answer). Pages as ``gateway.admin.pages``.
"""

from __future__ import annotations

import weakref
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess
from gateway.admin.pages import SortedNames, page
from gateway.backends.replica import TargetKey
from gateway.config.live import Runtime
from gateway.edge.http import Exchange, Route
from gateway.state import State


class ModelsAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access
        self._names = SortedNames()
        self._keys: tuple[weakref.ref[Runtime] | None, dict[tuple[str, str], TargetKey]] = (
            None,
            {},
        )

    def routes(self) -> list[Route]:
        return [Route("/admin/models", self.list, ("GET",))]

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        runtime = self.state.reloader.current
        models = runtime.table.models
        chosen = page(request, self._names.of(runtime, models))
        keys = self._target_keys(runtime)
        listed: list[dict[str, Any]] = []
        for name in chosen.names:
            spec = models[name]
            versions = [
                {
                    "version": version,
                    "backend": entry.backend,
                    "ready": runtime.backends[entry.backend].serving(keys[(name, version)]),
                }
                for version, entry in spec.versions.items()
            ]
            listed.append({"name": name, "default": spec.default_version, "versions": versions})
        return JSONResponse({"models": listed, "next_cursor": chosen.next_cursor})

    def _target_keys(self, runtime: Runtime) -> dict[tuple[str, str], TargetKey]:
        """Each (model, version)'s key on its backend, indexed once per route table."""
        indexed, keys = self._keys
        if indexed is None or indexed() is not runtime:
            keys = {
                (target.model, target.version): target.key
                for live in runtime.backends.values()
                for target in live.targets
            }
            self._keys = (weakref.ref(runtime), keys)
        return keys

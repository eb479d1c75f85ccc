"""The admin API of progressive rollouts: status, pause, resume, promote, abort, events.

Every command is audited and recorded, with who sent it, in the model's rollout event log.
``GET /admin/rollouts`` lists them by model name a page at a time (``gateway.admin.pages``).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess, query_limit
from gateway.admin.pages import page
from gateway.edge.http import Exchange, Route
from gateway.errors import NotFound
from gateway.state import State
from gateway.traffic.rollout import ACTIONS, Action


class RolloutsAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.controller = state.rollouts
        self.access = access

    def routes(self) -> list[Route]:
        return [
            Route("/admin/rollouts", self.list, ("GET",)),
            Route("/admin/rollouts/{model}", self.show, ("GET",)),
            Route("/admin/rollouts/{model}/events", self.events, ("GET",)),
            Route("/admin/rollouts/{model}/{action}", self.command, ("POST",)),
        ]

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        chosen = page(request, await self.controller.models())
        rollouts: list[dict[str, Any]] = []
        for model in chosen.names:
            try:
                rollouts.append(await self.controller.status(model))
            except NotFound:
                continue
        return JSONResponse({"rollouts": rollouts, "next_cursor": chosen.next_cursor})

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        return JSONResponse(await self.controller.status(request.path_params["model"]))

    async def command(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        model, action = request.path_params["model"], request.path_params["action"]
        if action not in ACTIONS:
            raise NotFound(f"no rollout action {action!r} ({', '.join(ACTIONS)})")
        command: Action = action
        state = await self.controller.command(model, command, actor)
        await self.access.audit(
            exchange.request_id,
            actor,
            f"rollout.{action}",
            f"rollout:{model}",
            status=state.status,
            step=state.step,
        )
        return JSONResponse(await self.controller.status(model))

    async def events(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        limit = query_limit(request, 100, 1000)
        model = request.path_params["model"]
        events = await self.controller.events(model, limit)
        return JSONResponse({"model": model, "events": events})

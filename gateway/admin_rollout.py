"""The admin API of progressive rollouts: status, pause, resume, promote, abort, events.

Every command is audited and recorded, with who sent it, in the model's rollout event log.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.admin import _audit, require_admin
from gateway.errors import BadRequest, NotFound
from gateway.rollout import ACTIONS, Action, RolloutController

if TYPE_CHECKING:
    from gateway.app import Gateway


def _controller(request: Request) -> RolloutController:
    gateway: Gateway = request.app.state.gateway
    controller = gateway.services.traffic
    if not isinstance(controller, RolloutController):
        raise NotFound("rollouts are not enabled on this gateway")
    return controller


async def list_rollouts(request: Request) -> Response:
    await require_admin(request)
    controller = _controller(request)
    rollouts: list[dict[str, Any]] = []
    for model in await controller.models():
        try:
            rollouts.append(await controller.status(model))
        except NotFound:
            continue
    return JSONResponse({"rollouts": rollouts})


async def show_rollout(request: Request) -> Response:
    await require_admin(request)
    return JSONResponse(await _controller(request).status(request.path_params["model"]))


async def rollout_command(request: Request) -> Response:
    actor = await require_admin(request)
    model, action = request.path_params["model"], request.path_params["action"]
    if action not in ACTIONS:
        raise NotFound(f"no rollout action {action!r} ({', '.join(ACTIONS)})")
    command: Action = action
    controller = _controller(request)
    state = await controller.command(model, command, actor)
    await _audit(
        request,
        actor,
        f"rollout.{action}",
        f"rollout:{model}",
        status=state.status,
        step=state.step,
    )
    return JSONResponse(await controller.status(model))


async def rollout_events(request: Request) -> Response:
    await require_admin(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 1000:
        raise BadRequest("limit must be a whole number from 1 to 1000")
    model = request.path_params["model"]
    events = await _controller(request).events(model, int(limit))
    return JSONResponse({"model": model, "events": events})


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/rollouts", list_rollouts, methods=["GET"]),
        Route("/admin/rollouts/{model}", show_rollout, methods=["GET"]),
        Route("/admin/rollouts/{model}/events", rollout_events, methods=["GET"]),
        Route("/admin/rollouts/{model}/{action}", rollout_command, methods=["POST"]),
    ]

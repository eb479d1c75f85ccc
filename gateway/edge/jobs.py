"""Following async jobs over HTTP: ``GET /jobs/{id}``, ``GET /jobs``, ``DELETE /jobs/{id}``.

The caller's credentials are the inference ones; a caller sees only its own jobs (its
tenant's), and another tenant's job id is a 404 like an unknown one. Errors take the gateway
shape ``{"error": {"code", "message"}, "request_id"}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.access import query_limit
from gateway.auth.authenticator import CHALLENGE
from gateway.auth.client_certs import client_cert_of
from gateway.edge.http import Exchange, Route
from gateway.errors import BadRequest, Unauthorized
from gateway.headers import Headers
from gateway.jobs.model import JOB_STATUSES, Job, JobStatus
from gateway.jobs.service import owner_of, view
from gateway.state import State

JSON = "application/json"


class JobsHTTP:
    def __init__(self, state: State) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        return [
            Route("/jobs", self.list, ("GET",)),
            Route("/jobs/{job_id}", self.show, ("GET",)),
            Route("/jobs/{job_id}", self.cancel, ("DELETE",)),
        ]

    async def owner(self, request: Request) -> str:
        """Whose jobs the caller sees (401 without credentials where auth requires them)."""
        auth = self.state.runtime.auth
        if auth is None:
            return ""
        headers = Headers(request.scope["headers"])
        caller = await auth.authenticate(headers, client_cert_of(request.scope.get("extensions")))
        if caller is None and auth.config.required:
            raise Unauthorized("credentials required", headers=CHALLENGE)
        return owner_of(caller)

    async def show(self, request: Request, exchange: Exchange) -> Response:
        """A job: its status, attempts, timings, and once done its result or error."""
        owner = await self.owner(request)
        job = await self.state.jobs.get(request.path_params["job_id"], owner)
        return _json(view(job))

    async def list(self, request: Request, exchange: Exchange) -> Response:
        """The caller's jobs, newest first (``status``, ``model``, ``limit``, ``cursor``)."""
        owner = await self.owner(request)
        return await list_jobs(self.state, request, owner)

    async def cancel(self, request: Request, exchange: Exchange) -> Response:
        """Cancel a queued job (409 once it runs or is done)."""
        owner = await self.owner(request)
        job = await self.state.jobs.cancel(request.path_params["job_id"], owner)
        return _json(view(job))


async def list_jobs(state: State, request: Request, owner: str | None) -> Response:
    """One page of jobs (``owner`` None: every tenant's, for the admin API); results are
    left out, ``GET /jobs/{id}`` has them."""
    query = request.query_params
    status = query.get("status") or None
    if status is not None and status not in JOB_STATUSES:
        raise BadRequest(f"status must be one of {', '.join(JOB_STATUSES)}")
    wanted: JobStatus | None = status
    jobs, cursor = await state.jobs.list(
        owner,
        status=wanted,
        model=query.get("model") or None,
        batch_id=query.get("batch_id") or None,
        limit=query_limit(request, 50, 1000),
        cursor=query.get("cursor") or None,
    )
    return _json({"jobs": [summary(job) for job in jobs], "next_cursor": cursor})


def summary(job: Job) -> dict[str, Any]:
    shown = view(job)
    shown.pop("result", None)
    if owner := job.owner:
        shown["tenant"] = owner
    return shown


def _json(body: Any) -> Response:
    return Response(orjson.dumps(body), media_type=JSON)

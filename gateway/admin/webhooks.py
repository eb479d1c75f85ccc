"""The admin API of webhooks: a tenant's signing secret (created or rotated and shown once,
described without it, deleted) and the dead letters (listed, redelivered)."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin import idempotency
from gateway.admin.access import AdminAccess, query_limit, read_body
from gateway.admin.tenants import TenantsAPI
from gateway.config.types import Duration, Strict
from gateway.edge.http import Exchange, Route
from gateway.errors import InternalError, NotFound
from gateway.headers import Headers
from gateway.state import State
from gateway.store import Delivery
from gateway.webhooks.keyring import Minted, mint, secret_view
from gateway.webhooks.service import Webhooks


class SecretBody(Strict):
    grace: Duration | None = Field(
        default=None,
        description="How long the previous secret keeps signing (both signatures are sent); "
        "default 1h. To stop a leaked secret at once, delete it, then create a new one.",
    )


def delivery_view(delivery: Delivery) -> dict[str, Any]:
    """A delivery without its body (which may hold a job's result)."""
    return {
        "id": delivery.id,
        "tenant": delivery.tenant,
        "url": delivery.url,
        "type": delivery.event_type,
        "attempts": delivery.attempts,
        "last_status": delivery.last_status,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "dead_at": delivery.dead_at,
    }


class WebhooksAPI:
    def __init__(self, state: State, access: AdminAccess, tenants: TenantsAPI) -> None:
        self.access = access
        self.tenants = tenants
        self.store = state.services.store
        self.secret = state.services.secret
        if state.services.webhooks is None:
            raise InternalError("the admin API needs the webhooks service")
        self.webhooks: Webhooks = state.services.webhooks

    def routes(self) -> list[Route]:
        return [
            Route("/admin/tenants/{name}/webhook-secret", self.show, ("GET",)),
            Route("/admin/tenants/{name}/webhook-secret", self.issue, ("POST",)),
            Route("/admin/tenants/{name}/webhook-secret", self.delete, ("DELETE",)),
            Route("/admin/webhooks/dead", self.dead, ("GET",)),
            Route("/admin/webhooks/dead/{id}/retry", self.retry, ("POST",)),
        ]

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        tenant = await self.tenants.tenant_or_404(request.path_params["name"])
        record = await self.webhooks.keyring.describe(tenant.name)
        return JSONResponse({"tenant": tenant.name, **secret_view(record)})

    async def issue(self, request: Request, exchange: Exchange) -> Response:
        """A new secret (shown in this answer only); a previous one keeps signing for
        ``grace``. With ``Idempotency-Key``, a retried call answers the same secret."""
        actor = await self.access.require(request)
        tenant = await self.tenants.tenant_or_404(request.path_params["name"])
        body = await read_body(request, SecretBody)
        grace = 3600.0 if body.grace is None else body.grace
        minted = mint()
        result = {
            "tenant": tenant.name,
            "secret": minted.secret,
            "secret_id": minted.secret_id,
            "created_at": minted.created_at,
            "grace": grace,
        }
        headers = Headers(request.scope["headers"])
        scope = f"webhook-secret:{tenant.name}"
        replayed = await idempotency.remember(self.store, self.secret, headers, scope, result)
        if replayed is not None:
            await self._install_replayed(tenant.name, replayed)
            return JSONResponse(replayed, status_code=201, headers={"Idempotent-Replayed": "true"})
        record = await self.webhooks.keyring.install(tenant.name, minted, grace)
        rotated = record.previous_id is not None
        await self.access.audit(
            exchange.request_id,
            actor,
            "webhook_secret.rotate" if rotated else "webhook_secret.create",
            f"tenant:{tenant.name}",
            secret_id=record.secret_id,
            previous_id=record.previous_id,
            grace=grace,
        )
        return JSONResponse({**result, **secret_view(record)}, status_code=201)

    async def _install_replayed(self, tenant: str, replayed: dict[str, Any]) -> None:
        """If the first call died before installing its secret, install it now (unless a
        later secret replaced it since)."""
        current = await self.webhooks.keyring.describe(tenant)
        known = () if current is None else (current.secret_id, current.previous_id)
        if replayed["secret_id"] in known:
            return
        if current is not None and current.created_at > replayed["created_at"]:
            return
        minted = Minted(replayed["secret"], replayed["secret_id"], replayed["created_at"])
        await self.webhooks.keyring.install(tenant, minted, replayed["grace"])

    async def delete(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        tenant = await self.tenants.tenant_or_404(request.path_params["name"])
        if not await self.webhooks.keyring.delete(tenant.name):
            raise NotFound(f"tenant {tenant.name!r} has no webhook secret")
        await self.access.audit(
            exchange.request_id, actor, "webhook_secret.delete", f"tenant:{tenant.name}"
        )
        return Response(status_code=204)

    async def dead(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        limit = query_limit(request, 100, 1000)
        dead = await self.webhooks.dead(limit)
        return JSONResponse({"deliveries": [delivery_view(d) for d in dead]})

    async def retry(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        delivery_id = request.path_params["id"]
        revived = await self.webhooks.redeliver(delivery_id)
        if revived is None:
            raise NotFound(f"no dead webhook {delivery_id!r}")
        await self.access.audit(
            exchange.request_id,
            actor,
            "webhook.redeliver",
            f"webhook:{delivery_id}",
            tenant=revived.tenant,
        )
        return JSONResponse({**delivery_view(revived), "status": "queued"}, status_code=202)

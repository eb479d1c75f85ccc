"""The admin API of tenants: create, show, change, delete. A tenant's keys: ``admin.keys``."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from pydantic import Field, field_validator
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin.access import AdminAccess, read_body
from gateway.auth.keys import CHANNEL
from gateway.config.types import Strict
from gateway.edge.http import Exchange, Route
from gateway.errors import Conflict, InvalidBody, NotFound
from gateway.state import State
from gateway.store import Tenant
from gateway.webhooks.callbacks import normalize_pattern

NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"


class TenantBody(Strict):
    name: str = Field(pattern=NAME)
    plan: str | None = None
    models: list[str] = []
    scopes: list[str] = []
    metadata: dict[str, str] = {}
    disabled: bool = False
    callback_hosts: list[str] = Field(
        default=[],
        description="Hosts a Callback-URL may name: exact, or '*.example.com' for subdomains.",
    )

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return _callback_hosts(value)


class TenantPatch(Strict):
    """The fields to change; a field left out stays. ``plan: null`` removes the plan; the
    other fields cannot be null (``[]`` or ``{}`` clears them)."""

    plan: str | None = None
    models: list[str] | None = None
    scopes: list[str] | None = None
    metadata: dict[str, str] | None = None
    disabled: bool | None = None
    callback_hosts: list[str] | None = None

    @field_validator("callback_hosts")
    @classmethod
    def _hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _callback_hosts(value)

    @field_validator("models", "scopes", "metadata", "disabled", "callback_hosts", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # None here is an explicit null in the body (a left-out field is not validated).
        if value is None:
            raise ValueError("may not be null")
        return value


def _callback_hosts(hosts: list[str]) -> list[str]:
    """Each entry normalized as callback URLs' hosts are (lower case, IDNA), once."""
    return list(dict.fromkeys(normalize_pattern(h) for h in hosts))


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "plan": tenant.plan,
        "models": list(tenant.models),
        "scopes": list(tenant.scopes),
        "metadata": dict(tenant.metadata),
        "disabled": tenant.disabled,
        "created_at": tenant.created_at,
        "callback_hosts": list(tenant.callback_hosts),
    }


class TenantsAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access
        self.store = state.services.store

    def routes(self) -> list[Route]:
        return [
            Route("/admin/tenants", self.list, ("GET",)),
            Route("/admin/tenants", self.create, ("POST",)),
            Route("/admin/tenants/{name}", self.show, ("GET",)),
            Route("/admin/tenants/{name}", self.update, ("PATCH",)),
            Route("/admin/tenants/{name}", self.delete, ("DELETE",)),
        ]

    async def tenant_or_404(self, name: str) -> Tenant:
        tenant = await self.store.get_tenant(name)
        if tenant is None:
            raise NotFound(f"no tenant {name!r}")
        return tenant

    def _check_plan(self, plan: str | None) -> None:
        plans = self.state.reloader.current.table.plans
        if plan is not None and plan not in plans:
            known = ", ".join(sorted(plans)) or "none defined"
            raise InvalidBody(f"unknown plan {plan!r} ({known})")

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        tenants = await self.store.list_tenants()
        return JSONResponse({"tenants": [tenant_view(t) for t in tenants]})

    async def create(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        body = await read_body(request, TenantBody)
        self._check_plan(body.plan)
        if await self.store.get_tenant(body.name) is not None:
            raise Conflict(f"tenant {body.name!r} exists")
        tenant = Tenant(
            name=body.name,
            plan=body.plan,
            models=tuple(body.models),
            scopes=tuple(body.scopes),
            metadata=body.metadata,
            created_at=time.time(),
            disabled=body.disabled,
            callback_hosts=tuple(body.callback_hosts),
        )
        await self.store.put_tenant(tenant)
        target = f"tenant:{tenant.name}"
        await self.access.audit(
            exchange.request_id, actor, "tenant.create", target, plan=tenant.plan
        )
        return JSONResponse(tenant_view(tenant), status_code=201)

    async def show(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        tenant = await self.tenant_or_404(request.path_params["name"])
        return JSONResponse(tenant_view(tenant))

    async def update(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        tenant = await self.tenant_or_404(request.path_params["name"])
        patch = await read_body(request, TenantPatch)
        changes = patch.model_dump(exclude_unset=True)
        if "plan" in changes:
            self._check_plan(patch.plan)
        for field in ("models", "scopes", "callback_hosts"):
            if field in changes:
                changes[field] = tuple(changes[field])
        updated = dataclasses.replace(tenant, **changes)
        await self.store.put_tenant(updated)
        await self.store.publish(CHANNEL, f"tenant:{tenant.name}")
        await self.access.audit(
            exchange.request_id,
            actor,
            "tenant.update",
            f"tenant:{tenant.name}",
            fields=sorted(changes),
        )
        return JSONResponse(tenant_view(updated))

    async def delete(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        name = request.path_params["name"]
        if not await self.store.delete_tenant(name):
            raise NotFound(f"no tenant {name!r}")
        await self.store.publish(CHANNEL, f"tenant:{name}")
        await self.access.audit(exchange.request_id, actor, "tenant.delete", f"tenant:{name}")
        return Response(status_code=204)

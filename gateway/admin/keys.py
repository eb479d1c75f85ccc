"""The admin API of API keys: list a tenant's, create (shown once), rotate with a grace
period, revoke. Every replica drops a changed key at once (the store's invalidation channel)."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.admin import idempotency
from gateway.admin.access import AdminAccess, read_body
from gateway.admin.tenants import TenantsAPI
from gateway.auth.keys import CHANNEL, hash_secret, make_key, split_key
from gateway.config.types import Duration, Strict
from gateway.edge.http import Exchange, Route
from gateway.errors import Conflict, InternalError, NotFound
from gateway.headers import Headers
from gateway.state import State
from gateway.store import APIKey


class KeyBody(Strict):
    name: str = Field(default="", max_length=128)
    scopes: list[str] = []
    expires_in: Duration | None = None


class RotateBody(Strict):
    grace: Duration = Field(default=3600.0, description="How long the old key keeps working.")
    expires_in: Duration | None = None


def key_view(key: APIKey) -> dict[str, Any]:
    now = time.time()
    if key.revoked_at is not None:
        status = "revoked"
    elif key.expires_at is not None and key.expires_at <= now:
        status = "expired"
    elif key.rotated_to is not None:
        status = "rotating"
    else:
        status = "active"
    return {
        "key_id": key.key_id,
        "tenant": key.tenant,
        "name": key.name,
        "scopes": list(key.scopes),
        "status": status,
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
        "rotated_to": key.rotated_to,
    }


class KeysAPI:
    def __init__(self, state: State, access: AdminAccess, tenants: TenantsAPI) -> None:
        self.access = access
        self.tenants = tenants
        self.store = state.services.store
        self.secret = state.services.secret

    def routes(self) -> list[Route]:
        return [
            Route("/admin/tenants/{name}/keys", self.list, ("GET",)),
            Route("/admin/tenants/{name}/keys", self.create, ("POST",)),
            Route("/admin/keys/{key_id}/rotate", self.rotate, ("POST",)),
            Route("/admin/keys/{key_id}/revoke", self.revoke, ("POST",)),
        ]

    async def list(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        tenant = await self.tenants.tenant_or_404(request.path_params["name"])
        keys = await self.store.list_keys(tenant.name)
        return JSONResponse({"keys": [key_view(k) for k in keys]})

    async def create(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        tenant = await self.tenants.tenant_or_404(request.path_params["name"])
        body = await read_body(request, KeyBody)
        now = time.time()
        new = make_key(
            self.secret,
            tenant=tenant.name,
            scopes=tuple(body.scopes),
            created_at=now,
            expires_at=now + body.expires_in if body.expires_in else None,
            name=body.name,
        )
        result = {"key": new.key, **key_view(new.record)}
        replayed = await self._remember(request, f"create:{tenant.name}", result)
        if replayed is not None:
            return await self._replay(replayed)
        await self.store.put_key(new.record)
        await self.store.publish(CHANNEL, f"key:{new.record.key_id}")
        target = f"key:{new.record.key_id}"
        await self.access.audit(
            exchange.request_id, actor, "key.create", target, tenant=tenant.name
        )
        return JSONResponse(result, status_code=201)

    async def rotate(self, request: Request, exchange: Exchange) -> Response:
        """A new key now; the old one keeps working until ``grace`` runs out."""
        actor = await self.access.require(request)
        old = await self.store.get_key(request.path_params["key_id"])
        if old is None:
            raise NotFound(f"no key {request.path_params['key_id']!r}")
        if old.revoked_at is not None:
            raise Conflict("a revoked key cannot be rotated")
        body = await read_body(request, RotateBody)
        now = time.time()
        new = make_key(
            self.secret,
            tenant=old.tenant,
            scopes=old.scopes,
            created_at=now,
            expires_at=now + body.expires_in if body.expires_in else None,
            name=old.name,
        )
        grace_until = now + body.grace
        result = {"key": new.key, **key_view(new.record), "previous_expires_at": grace_until}
        replayed = await self._remember(request, f"rotate:{old.key_id}", result)
        if replayed is not None:
            return await self._replay(replayed, rotated_from=old.key_id)
        await self._apply_rotation(old, new.record, grace_until)
        await self.access.audit(
            exchange.request_id,
            actor,
            "key.rotate",
            f"key:{old.key_id}",
            new_key=new.record.key_id,
            grace=body.grace,
        )
        return JSONResponse(result, status_code=201)

    async def revoke(self, request: Request, exchange: Exchange) -> Response:
        actor = await self.access.require(request)
        key = await self.store.get_key(request.path_params["key_id"])
        if key is None:
            raise NotFound(f"no key {request.path_params['key_id']!r}")
        if key.revoked_at is None:
            key = dataclasses.replace(key, revoked_at=time.time())
            await self.store.put_key(key)
            await self.store.publish(CHANNEL, f"key:{key.key_id}")  # every replica drops it now
            await self.access.audit(
                exchange.request_id, actor, "key.revoke", f"key:{key.key_id}", tenant=key.tenant
            )
        return JSONResponse(key_view(key))

    async def _apply_rotation(self, old: APIKey, new: APIKey, grace_until: float) -> None:
        store = self.store
        await store.put_key(new)
        expires = grace_until if old.expires_at is None else min(old.expires_at, grace_until)
        await store.put_key(dataclasses.replace(old, expires_at=expires, rotated_to=new.key_id))
        await store.publish(CHANNEL, f"key:{old.key_id}")
        await store.publish(CHANNEL, f"key:{new.key_id}")

    async def _remember(
        self, request: Request, scope: str, result: dict[str, Any]
    ) -> dict[str, Any] | None:
        headers = Headers(request.scope["headers"])
        return await idempotency.remember(self.store, self.secret, headers, scope, result)

    async def _replay(self, result: dict[str, Any], rotated_from: str | None = None) -> Response:
        """The first call's reply again; if that call died before writing the key, write it
        now."""
        if await self.store.get_key(result["key_id"]) is None:
            parts = split_key(result["key"])
            if parts is None:  # sealed by us: cannot happen unless the secret changed
                raise InternalError("the remembered reply of this Idempotency-Key is unreadable")
            record = APIKey(
                key_id=result["key_id"],
                tenant=result["tenant"],
                secret_hash=hash_secret(self.secret, parts[1]),
                scopes=tuple(result["scopes"]),
                created_at=result["created_at"],
                expires_at=result["expires_at"],
                name=result["name"],
            )
            old = await self.store.get_key(rotated_from) if rotated_from else None
            if old is not None:
                await self._apply_rotation(old, record, result["previous_expires_at"])
            else:
                await self.store.put_key(record)
        return JSONResponse(result, status_code=201, headers={"Idempotent-Replayed": "true"})

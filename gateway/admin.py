"""The admin API: config status and reload, tenants, API keys, the audit log.

Its credential is its own: ``GATEWAY_ADMIN_TOKEN`` as a bearer token, or any credential the
running auth section accepts that carries the ``admin`` scope. Every change is audited (who,
what, when; never a secret). A key's secret is shown once, in the reply that creates it.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import os
import re
import time
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth.keys import CHANNEL, hash_secret, make_key, split_key
from gateway.auth.scopes import allowed
from gateway.caching import purge_pattern
from gateway.chain import Context
from gateway.config_types import Duration, Strict
from gateway.errors import BadRequest, Forbidden, GatewayError, NotFound, Unauthorized
from gateway.store import APIKey, AuditEntry, Tenant

if TYPE_CHECKING:
    from gateway.app import Gateway

_NAME = r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$"
_IDEMPOTENCY_TTL = 24 * 3600.0


class TenantBody(Strict):
    name: str = Field(pattern=_NAME)
    plan: str | None = None
    models: list[str] = []
    scopes: list[str] = []
    metadata: dict[str, str] = {}
    disabled: bool = False


class TenantPatch(Strict):
    plan: str | None = None
    models: list[str] | None = None
    scopes: list[str] | None = None
    metadata: dict[str, str] | None = None
    disabled: bool | None = None


class KeyBody(Strict):
    name: str = Field(default="", max_length=128)
    scopes: list[str] = []
    expires_in: Duration | None = None


class PurgeBody(Strict):
    model: str | None = None
    version: str | None = None
    tenant: str | None = None


class RotateBody(Strict):
    grace: Duration = Field(default=3600.0, description="How long the old key keeps working.")
    expires_in: Duration | None = None


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def require_admin(request: Request) -> str:
    """The acting admin's name for the audit log; 401/403 for anyone else.

    With an admin port, the admin API does not exist on the public one (404).
    """
    gateway = _gateway(request)
    admin_port = gateway.settings.admin_port
    server = request.scope.get("server")
    if admin_port is not None and (server is None or server[1] != admin_port):
        raise NotFound(f"no route for {request.url.path}")
    expected = gateway.settings.admin_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    token_ok = expected and hmac.compare_digest(given.strip().encode(), expected.encode())
    if scheme.lower() == "bearer" and token_ok:
        return "admin-token"
    auth = gateway.reloader.current.auth
    if auth is not None:
        caller = await auth.authenticate(request.headers)
        if caller is not None:
            if not allowed(caller.principal.scopes, "admin"):
                raise Forbidden("missing scope: admin")
            return f"{caller.principal.via}:{caller.principal.subject}"
    if not expected and auth is None:
        raise Forbidden("the admin API is disabled: set GATEWAY_ADMIN_TOKEN")
    raise Unauthorized("admin credentials required", headers={"WWW-Authenticate": "Bearer"})


async def _body(request: Request, model: type[Strict]) -> Any:
    raw = await request.body()
    try:
        data = json.loads(raw or b"{}")
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        raise GatewayError(problems, status=422, code="invalid_body") from exc


async def _audit(request: Request, actor: str, action: str, target: str, **detail: Any) -> None:
    ctx: Context = request.state.ctx
    entry = AuditEntry(time.time(), actor, action, target, detail, ctx.request_id)
    await _gateway(request).services.store.audit(entry)


def tenant_view(tenant: Tenant) -> dict[str, Any]:
    return {
        "name": tenant.name,
        "plan": tenant.plan,
        "models": list(tenant.models),
        "scopes": list(tenant.scopes),
        "metadata": dict(tenant.metadata),
        "disabled": tenant.disabled,
        "created_at": tenant.created_at,
    }


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


def _check_plan(request: Request, plan: str | None) -> None:
    plans = _gateway(request).reloader.current.table.plans
    if plan is not None and plan not in plans:
        known = ", ".join(sorted(plans)) or "none defined"
        raise GatewayError(f"unknown plan {plan!r} ({known})", status=422, code="invalid_body")


async def _tenant_or_404(request: Request, name: str) -> Tenant:
    tenant = await _gateway(request).services.store.get_tenant(name)
    if tenant is None:
        raise NotFound(f"no tenant {name!r}")
    return tenant


async def list_tenants(request: Request) -> Response:
    await require_admin(request)
    tenants = await _gateway(request).services.store.list_tenants()
    return JSONResponse({"tenants": [tenant_view(t) for t in tenants]})


async def create_tenant(request: Request) -> Response:
    actor = await require_admin(request)
    body: TenantBody = await _body(request, TenantBody)
    _check_plan(request, body.plan)
    store = _gateway(request).services.store
    if await store.get_tenant(body.name) is not None:
        raise GatewayError(f"tenant {body.name!r} exists", status=409, code="conflict")
    tenant = Tenant(
        name=body.name,
        plan=body.plan,
        models=tuple(body.models),
        scopes=tuple(body.scopes),
        metadata=body.metadata,
        created_at=time.time(),
        disabled=body.disabled,
    )
    await store.put_tenant(tenant)
    await _audit(request, actor, "tenant.create", f"tenant:{tenant.name}", plan=tenant.plan)
    return JSONResponse(tenant_view(tenant), status_code=201)


async def show_tenant(request: Request) -> Response:
    await require_admin(request)
    tenant = await _tenant_or_404(request, request.path_params["name"])
    return JSONResponse(tenant_view(tenant))


async def update_tenant(request: Request) -> Response:
    actor = await require_admin(request)
    tenant = await _tenant_or_404(request, request.path_params["name"])
    patch: TenantPatch = await _body(request, TenantPatch)
    changes = patch.model_dump(exclude_unset=True)
    if "plan" in changes:
        _check_plan(request, patch.plan)
    for field in ("models", "scopes"):
        if field in changes:
            changes[field] = tuple(changes[field])
    updated = dataclasses.replace(tenant, **changes)
    store = _gateway(request).services.store
    await store.put_tenant(updated)
    await store.publish(CHANNEL, f"tenant:{tenant.name}")
    await _audit(request, actor, "tenant.update", f"tenant:{tenant.name}", fields=sorted(changes))
    return JSONResponse(tenant_view(updated))


async def delete_tenant(request: Request) -> Response:
    actor = await require_admin(request)
    name = request.path_params["name"]
    store = _gateway(request).services.store
    if not await store.delete_tenant(name):
        raise NotFound(f"no tenant {name!r}")
    await store.publish(CHANNEL, f"tenant:{name}")
    await _audit(request, actor, "tenant.delete", f"tenant:{name}")
    return Response(status_code=204)


async def list_keys(request: Request) -> Response:
    await require_admin(request)
    tenant = await _tenant_or_404(request, request.path_params["name"])
    keys = await _gateway(request).services.store.list_keys(tenant.name)
    return JSONResponse({"keys": [key_view(k) for k in keys]})


async def create_key(request: Request) -> Response:
    actor = await require_admin(request)
    tenant = await _tenant_or_404(request, request.path_params["name"])
    body: KeyBody = await _body(request, KeyBody)
    gateway = _gateway(request)
    now = time.time()
    new = make_key(
        gateway.services.secret,
        tenant=tenant.name,
        scopes=tuple(body.scopes),
        created_at=now,
        expires_at=now + body.expires_in if body.expires_in else None,
        name=body.name,
    )
    result = {"key": new.key, **key_view(new.record)}
    replayed = await _idempotent(request, f"create:{tenant.name}", result)
    if replayed is not None:
        return await _replay(request, replayed)
    await gateway.services.store.put_key(new.record)
    await gateway.services.store.publish(CHANNEL, f"key:{new.record.key_id}")
    await _audit(request, actor, "key.create", f"key:{new.record.key_id}", tenant=tenant.name)
    return JSONResponse(result, status_code=201)


async def rotate_key(request: Request) -> Response:
    """A new key now; the old one keeps working until ``grace`` runs out."""
    actor = await require_admin(request)
    gateway = _gateway(request)
    store = gateway.services.store
    old = await store.get_key(request.path_params["key_id"])
    if old is None:
        raise NotFound(f"no key {request.path_params['key_id']!r}")
    if old.revoked_at is not None:
        raise GatewayError("a revoked key cannot be rotated", status=409, code="conflict")
    body: RotateBody = await _body(request, RotateBody)
    now = time.time()
    new = make_key(
        gateway.services.secret,
        tenant=old.tenant,
        scopes=old.scopes,
        created_at=now,
        expires_at=now + body.expires_in if body.expires_in else None,
        name=old.name,
    )
    grace_until = now + body.grace
    result = {"key": new.key, **key_view(new.record), "previous_expires_at": grace_until}
    replayed = await _idempotent(request, f"rotate:{old.key_id}", result)
    if replayed is not None:
        return await _replay(request, replayed, rotated_from=old.key_id)
    await _apply_rotation(request, old, new.record, grace_until)
    await _audit(
        request,
        actor,
        "key.rotate",
        f"key:{old.key_id}",
        new_key=new.record.key_id,
        grace=body.grace,
    )
    return JSONResponse(result, status_code=201)


async def _apply_rotation(request: Request, old: APIKey, new: APIKey, grace_until: float) -> None:
    store = _gateway(request).services.store
    await store.put_key(new)
    expires = grace_until if old.expires_at is None else min(old.expires_at, grace_until)
    await store.put_key(dataclasses.replace(old, expires_at=expires, rotated_to=new.key_id))
    await store.publish(CHANNEL, f"key:{old.key_id}")
    await store.publish(CHANNEL, f"key:{new.key_id}")


async def revoke_key(request: Request) -> Response:
    actor = await require_admin(request)
    store = _gateway(request).services.store
    key = await store.get_key(request.path_params["key_id"])
    if key is None:
        raise NotFound(f"no key {request.path_params['key_id']!r}")
    if key.revoked_at is None:
        key = dataclasses.replace(key, revoked_at=time.time())
        await store.put_key(key)
        await store.publish(CHANNEL, f"key:{key.key_id}")  # every replica drops it now
        await _audit(request, actor, "key.revoke", f"key:{key.key_id}", tenant=key.tenant)
    return JSONResponse(key_view(key))


async def purge_cache(request: Request) -> Response:
    """Drop cached responses by model, version and/or tenant (all of them with an empty body)."""
    actor = await require_admin(request)
    body: PurgeBody = await _body(request, PurgeBody)
    if body.version is not None and body.model is None:
        raise GatewayError("a version needs its model", status=422, code="invalid_body")
    pattern = purge_pattern(body.model, body.version, body.tenant)
    purged = await _gateway(request).services.store.cache_purge(pattern)
    await _audit(request, actor, "cache.purge", f"cache:{pattern}", purged=purged)
    return JSONResponse({"purged": purged, "pattern": pattern})


async def audit_log(request: Request) -> Response:
    await require_admin(request)
    limit = request.query_params.get("limit", "100")
    if not limit.isdigit() or not 1 <= int(limit) <= 10_000:
        raise BadRequest("limit must be a whole number from 1 to 10000")
    entries = await _gateway(request).services.store.audit_log(int(limit))
    return JSONResponse({"entries": [dataclasses.asdict(e) for e in entries]})


# -- idempotency ------------------------------------------------------------------------------
# A retried call with the same Idempotency-Key gets the first call's reply, new key included.
# That reply holds a secret, so it is kept sealed (AES-GCM, key derived from the server
# secret) and only for a day.


def _cipher(secret: bytes) -> AESGCM:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"idempotency v1").derive(
        secret
    )
    return AESGCM(key)


async def _idempotent(
    request: Request, scope: str, result: dict[str, Any]
) -> dict[str, Any] | None:
    """None for a first call (its result is now remembered), else the first call's result."""
    header = request.headers.get("idempotency-key")
    if header is None:
        return None
    if not re.fullmatch(r"[ -~]{1,255}", header):
        raise BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    secret = _gateway(request).services.secret
    digest = hashlib.sha256(header.encode()).hexdigest()
    nonce = os.urandom(12)
    sealed = nonce + _cipher(secret).encrypt(nonce, json.dumps(result).encode(), scope.encode())
    store = _gateway(request).services.store
    existing = await store.remember(
        f"idem:{scope}:{digest}", base64.b64encode(sealed).decode(), _IDEMPOTENCY_TTL
    )
    if existing is None:
        return None
    raw = base64.b64decode(existing)
    first: dict[str, Any] = json.loads(_cipher(secret).decrypt(raw[:12], raw[12:], scope.encode()))
    return first


async def _replay(
    request: Request, result: dict[str, Any], rotated_from: str | None = None
) -> Response:
    """The first call's reply again; if that call died before writing the key, write it now."""
    gateway = _gateway(request)
    store = gateway.services.store
    if await store.get_key(result["key_id"]) is None:
        parts = split_key(result["key"])
        assert parts is not None
        record = APIKey(
            key_id=result["key_id"],
            tenant=result["tenant"],
            secret_hash=hash_secret(gateway.services.secret, parts[1]),
            scopes=tuple(result["scopes"]),
            created_at=result["created_at"],
            expires_at=result["expires_at"],
            name=result["name"],
        )
        old = await store.get_key(rotated_from) if rotated_from else None
        if old is not None:
            await _apply_rotation(request, old, record, result["previous_expires_at"])
        else:
            await store.put_key(record)
    return JSONResponse(result, status_code=201, headers={"Idempotent-Replayed": "true"})


async def admin_config(request: Request) -> Response:
    await require_admin(request)
    gateway = _gateway(request)
    runtime = gateway.reloader.current
    return JSONResponse(
        {
            "status": gateway.reloader.status.as_json(),
            "backends": {name: b.pool.state() for name, b in runtime.backends.items()},
        }
    )


async def admin_reload(request: Request) -> Response:
    actor = await require_admin(request)
    gateway = _gateway(request)
    status = await gateway.reloader.reload("admin")
    await _audit(request, actor, "config.reload", f"config:{status.digest}", ok=status.last_ok)
    return JSONResponse(status.as_json(), status_code=200 if status.last_ok else 422)


def routes() -> list[BaseRoute]:
    return [
        Route("/admin/config", admin_config, methods=["GET"]),
        Route("/admin/config/reload", admin_reload, methods=["POST"]),
        Route("/admin/tenants", list_tenants, methods=["GET"]),
        Route("/admin/tenants", create_tenant, methods=["POST"]),
        Route("/admin/tenants/{name}", show_tenant, methods=["GET"]),
        Route("/admin/tenants/{name}", update_tenant, methods=["PATCH"]),
        Route("/admin/tenants/{name}", delete_tenant, methods=["DELETE"]),
        Route("/admin/tenants/{name}/keys", list_keys, methods=["GET"]),
        Route("/admin/tenants/{name}/keys", create_key, methods=["POST"]),
        Route("/admin/keys/{key_id}/rotate", rotate_key, methods=["POST"]),
        Route("/admin/keys/{key_id}/revoke", revoke_key, methods=["POST"]),
        Route("/admin/audit", audit_log, methods=["GET"]),
        Route("/admin/cache/purge", purge_cache, methods=["POST"]),
    ]

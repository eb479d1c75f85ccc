"""Who is calling, and may they? One object per route table, built from its ``auth:`` section.

Credentials: an API key (``X-API-Key``, or ``Authorization: Bearer gk_...``) or a JWT bearer
token from a trusted issuer (the gateway's own ``/oauth2/token`` issuer is always trusted);
without either, a verified TLS client certificate that ``auth.client_certs`` maps to a tenant.
Authorization: every required scope must be granted, after narrowing by the tenant's scopes;
a tenant limited to some models reaches no other.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from gateway.auth.client_certs import ClientCert, tenant_of
from gateway.auth.config import AuthConfig, JWTIssuer
from gateway.auth.jwt import IssuerSpec, JWTVerifier, Principal
from gateway.auth.keys import KeyVerifier, looks_like_key
from gateway.auth.scopes import allowed, model_allowed, narrow
from gateway.auth.tokens import TokenIssuer
from gateway.errors import AuthSetupError, Forbidden, Unauthorized
from gateway.headers import Headers
from gateway.store import APIKey, Tenant

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="model-gateway"'}
_CALLERS = 10_000  # API key callers kept (see Authenticator._key_caller)


@dataclass(frozen=True, slots=True)
class Caller:
    principal: Principal
    tenant: Tenant | None


class Authenticator:
    def __init__(
        self, config: AuthConfig, keys: KeyVerifier, jwts: JWTVerifier, tokens: TokenIssuer
    ) -> None:
        self.config = config
        self.keys = keys
        self.jwts = jwts
        self.tokens = tokens
        # the API key header's wire name (None: a name no header can have; looked up by text)
        self._key_header: bytes | None = None
        with contextlib.suppress(UnicodeEncodeError):
            self._key_header = config.api_key_header.lower().encode("latin-1")
        self._callers: dict[str, tuple[APIKey, Tenant | None, Caller]] = {}

    async def authenticate(
        self, headers: Headers, client_cert: ClientCert | None = None
    ) -> Caller | None:
        """The caller, or None when no credentials were given. Bad credentials are a 401; a
        credential header sent twice is a 400 (a proxy that read the other one would disagree
        with us about who is calling). A credential in a header wins over the client
        certificate, which counts only when ``auth.client_certs`` maps it to a tenant."""
        wire = self._key_header
        if wire is None:
            api_key = headers.one(self.config.api_key_header.lower())
        else:
            given = headers.value(wire)
            api_key = given.decode("latin-1") if given is not None else None
        authorization = headers.value(b"authorization")
        scheme, _, credentials = (
            authorization.decode("latin-1") if authorization is not None else ""
        ).partition(" ")
        bearer = credentials.strip() if scheme.lower() == "bearer" else None
        if api_key is None and bearer is not None and looks_like_key(bearer):
            api_key, bearer = bearer, None
        if api_key is not None:
            if not self.config.api_keys:
                raise Unauthorized("API keys are not accepted here", headers=CHALLENGE)
            record, tenant = await self.keys.verify(api_key)
            return self._key_caller(record, tenant)
        if bearer:
            principal = await self.jwts.verify(bearer)
            tenant = await self.keys.tenant(principal.tenant) if principal.tenant else None
            if tenant is not None:
                if tenant.disabled:
                    raise Unauthorized("tenant disabled", headers=CHALLENGE)
                principal = _with_scopes(principal, narrow(principal.scopes, tenant.scopes))
            return Caller(principal, tenant)
        if scheme:
            raise Unauthorized("unsupported authorization scheme", headers=CHALLENGE)
        if client_cert is not None and self.config.client_certs:
            return await self._certificate(client_cert)
        return None

    def _key_caller(self, record: APIKey, tenant: Tenant | None) -> Caller:
        """An API key's caller, built once per key record and tenant record (the verifier
        hands out the same records until they change); the memo is bounded."""
        known = self._callers.get(record.key_id)
        if known is not None and known[0] is record and known[1] is tenant:
            return known[2]
        scopes = narrow(record.scopes, tenant.scopes if tenant else ())
        principal = Principal(
            subject=record.key_id,
            tenant=record.tenant,
            scopes=scopes,
            issuer="api-key",
            expires_at=record.expires_at,
            via="api_key",
        )
        caller = Caller(principal, tenant)
        if len(self._callers) >= _CALLERS:
            self._callers.clear()
        self._callers[record.key_id] = (record, tenant, caller)
        return caller

    async def _certificate(self, cert: ClientCert) -> Caller | None:
        """The tenant routes.yaml maps a verified client certificate to, with its scopes."""
        found = tenant_of(cert, self.config.client_certs)
        if found is None:
            return None  # an unmapped certificate is no credential (the TLS edge verified it)
        name, tenant_name = found
        tenant = await self.keys.tenant(tenant_name)
        if tenant is None or tenant.disabled:
            raise Unauthorized("the client certificate's tenant is unknown or disabled")
        principal = Principal(
            subject=name,
            tenant=tenant.name,
            scopes=narrow(("*",), tenant.scopes),  # the tenant's scopes (none listed: all)
            issuer="client-cert",
            expires_at=None,
            via="client_cert",
        )
        return Caller(principal, tenant)

    def authorize(self, caller: Caller, required: Iterable[str], model: str | None) -> None:
        """403 unless every required scope is granted and the tenant may use ``model``."""
        tenant = caller.tenant
        if model is not None and tenant is not None and not model_allowed(tenant.models, model):
            raise Forbidden(f"tenant {tenant.name!r} may not use model {model!r}")
        scopes = caller.principal.scopes
        for scope in required:
            if not allowed(scopes, scope):  # then name every scope missing
                missing = [s for s in required if not allowed(scopes, s)]
                raise Forbidden(f"missing scope: {', '.join(missing)}")


def _with_scopes(principal: Principal, scopes: frozenset[str]) -> Principal:
    return Principal(
        subject=principal.subject,
        tenant=principal.tenant,
        scopes=scopes,
        issuer=principal.issuer,
        expires_at=principal.expires_at,
        via=principal.via,
    )


def issuer_spec(issuer: JWTIssuer, environ: Mapping[str, str] = os.environ) -> IssuerSpec:
    """routes.yaml's issuer → the verifier's, reading the secret or key files it names."""
    secret: bytes | None = None
    if issuer.secret_env:
        value = environ.get(issuer.secret_env)
        if not value:
            raise AuthSetupError(f"issuer {issuer.issuer}: ${issuer.secret_env} is not set")
        secret = value.encode()
    keys: dict[str, Any] = {}
    for kid, path in issuer.keys.items():
        try:
            keys[kid] = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise AuthSetupError(f"issuer {issuer.issuer}: cannot read key {kid}: {exc}") from exc
    return IssuerSpec(
        issuer=issuer.issuer,
        algorithms=tuple(issuer.algorithms),
        audience=tuple(issuer.audience),
        jwks_url=issuer.jwks_url,
        discovery=issuer.discovery,
        keys=keys,
        secret=secret,
        leeway=issuer.leeway,
        tenant_claim=issuer.tenant_claim,
        scope_claims=tuple(issuer.scope_claims),
    )


def build_authenticator(
    config: AuthConfig, keys: KeyVerifier, http: httpx.AsyncClient, secret: bytes
) -> Authenticator:
    tokens = TokenIssuer(secret, config.tokens.issuer, config.tokens.ttl)
    specs = [issuer_spec(i) for i in config.jwt]
    if config.tokens.enabled:
        specs.append(tokens.spec())
    try:
        verifier = JWTVerifier(specs, http)
    except ValueError as exc:  # e.g. an HS secret shorter than its hash, a 1024-bit RSA key
        raise AuthSetupError(str(exc)) from exc
    return Authenticator(config, keys, verifier, tokens)

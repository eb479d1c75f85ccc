"""The ``auth:`` section of routes.yaml. Secrets never live here: env vars name them."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from gateway.config.types import URL, Duration, Strict

Algorithm = Literal[
    "HS256", "HS384", "HS512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512",
    "ES256", "ES384", "ES512", "EdDSA",
]  # fmt: skip


class JWTIssuer(Strict):
    """One trusted token issuer, its pinned algorithms and where its keys come from."""

    issuer: str = Field(min_length=1, description="The exact 'iss' claim.")
    algorithms: list[Algorithm] = Field(min_length=1, description="Pinned; nothing else.")
    audience: list[str] = Field(default=[], description="Accepted 'aud' values (empty: any).")
    discovery: bool = Field(default=False, description="Find jwks_uri via OIDC discovery.")
    jwks_url: URL | None = None
    keys: dict[str, str] = Field(default={}, description="Static public keys: kid → PEM file.")
    secret_env: str | None = Field(
        default=None, description="Environment variable holding the HS* shared secret."
    )
    leeway: Duration = 30.0
    tenant_claim: str = "tenant"
    scope_claims: list[str] = ["scope", "scp"]

    @model_validator(mode="after")
    def _check_keys(self) -> JWTIssuer:
        sources = [
            self.discovery,
            self.jwks_url is not None,
            bool(self.keys),
            bool(self.secret_env),
        ]
        if sum(sources) != 1:
            raise ValueError("give exactly one of discovery, jwks_url, keys, secret_env")
        symmetric = {a.startswith("HS") for a in self.algorithms}
        if len(symmetric) > 1:
            raise ValueError("do not mix HS* with asymmetric algorithms for one issuer")
        if symmetric == {True} and not self.secret_env:
            raise ValueError("HS* algorithms need secret_env")
        if symmetric == {False} and self.secret_env:
            raise ValueError("secret_env is only for HS* algorithms")
        return self


class TokenEndpoint(Strict):
    """``POST /oauth2/token``: tenants trade an API key for a short-lived gateway JWT."""

    enabled: bool = True
    issuer: str = "model-gateway"
    ttl: Duration = 900.0


class AuthConfig(Strict):
    """Who may call. Without an ``auth:`` section the gateway is open (the embedded default)."""

    required: bool = Field(default=True, description="Reject calls without credentials.")
    api_keys: bool = Field(default=True, description="Accept the gateway's own API keys.")
    api_key_header: str = "X-API-Key"
    jwt: list[JWTIssuer] = []
    tokens: TokenEndpoint = TokenEndpoint()
    client_certs: dict[str, str] = Field(
        default={},
        description="Verified TLS client certificates as credentials: subject (RFC 4514), "
        "'dns:<SAN>' or 'uri:<SAN>' → tenant. Needs the edge's client CA (--tls-client-ca).",
    )

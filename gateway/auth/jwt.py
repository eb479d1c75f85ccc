"""JWT bearer-token verification: algorithms pinned per issuer, tokens parsed and checked.

The unverified ``iss`` picks the issuer; only its pinned algorithms and its keys are tried, so a
token chooses neither (no ``alg: none``, no HS256 signed with the RSA public key: RFC 8725 §2.1).
This module owns the issuer configuration (:class:`IssuerSpec`), token parsing, the signature
and claims checks and the verified-token cache; the keys themselves, static and JWKS, are
:mod:`gateway.auth.jwks`'s. Every rejection is :class:`~gateway.errors.Unauthorized` with a short
reason, never token material.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import httpx
from jwt.algorithms import Algorithm, get_default_algorithms

from gateway.auth.jwks import (
    HMAC_MIN_BYTES,
    MAX_KID,
    SUPPORTED_ALGORITHMS,
    Key,
    KeySet,
    reject,
    static_key,
)
from gateway.errors import Unauthorized

logger = logging.getLogger("gateway.auth")

_MAX_KEY_TRIES = 8  # keys of the right type tried for a token without kid
_TOKEN_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a verified credential speaks for."""

    subject: str  # "sub" (or the client id for client-credentials tokens without sub)
    tenant: str | None  # from the issuer's tenant_claim (None if absent)
    scopes: frozenset[str]  # union of the issuer's scope_claims
    issuer: str
    expires_at: float | None
    via: str  # "jwt" here (API keys use "api_key")


@dataclass(frozen=True, slots=True)
class IssuerSpec:
    """One trusted token issuer. ``secret`` comes from the environment, never routes.yaml."""

    issuer: str  # exact "iss"
    algorithms: tuple[str, ...]  # pinned; never "none"; HS* and asymmetric never mixed
    audience: tuple[str, ...] = ()  # accepted "aud" values; empty = aud not checked
    jwks_url: str | None = None
    discovery: bool = False  # {issuer}/.well-known/openid-configuration -> jwks_uri
    keys: Mapping[str, Any] = field(default_factory=dict)  # kid -> PEM / JWK dict / key object
    secret: bytes | None = None  # HS256/384/512 shared secret
    leeway: float = 30.0
    tenant_claim: str = "tenant"
    scope_claims: tuple[str, ...] = ("scope", "scp")
    required_claims: tuple[str, ...] = ("exp", "iss")
    refetch_interval: float = 30.0  # at most one unknown-kid JWKS refetch per interval
    jwks_ttl: float = 600.0  # scheduled refresh


def _check_spec(spec: IssuerSpec) -> tuple[Key, ...]:
    """Validate one issuer's configuration; return its static keys."""

    def bad(what: str) -> ValueError:
        return ValueError(f"JWT issuer {spec.issuer!r}: {what}")

    if not isinstance(spec.issuer, str) or not spec.issuer:
        raise bad("issuer must be a non-empty string")
    algorithms = spec.algorithms
    if not algorithms or isinstance(algorithms, str) or set(algorithms) - SUPPORTED_ALGORITHMS:
        raise bad(f"algorithms must be a non-empty list of {sorted(SUPPORTED_ALGORITHMS)}")
    symmetric = {a in HMAC_MIN_BYTES for a in spec.algorithms}
    if symmetric == {True, False}:
        raise bad("algorithms: HS* and asymmetric algorithms cannot be mixed for one issuer")
    for name in ("audience", "scope_claims", "required_claims"):
        if isinstance(getattr(spec, name), str):
            raise bad(f"{name} must be a list of strings, not a string")
    if spec.leeway < 0 or spec.refetch_interval < 0 or spec.jwks_ttl <= 0:
        raise bad("leeway and refetch_interval must be >= 0 and jwks_ttl > 0")
    if spec.jwks_url is not None and spec.discovery:
        raise bad("set either jwks_url or discovery, not both")
    try:
        keys = [static_key(kid, value) for kid, value in spec.keys.items()]
    except (ValueError, TypeError) as exc:
        raise bad(f"keys: {exc}") from exc
    if spec.secret is not None:
        keys.append(Key(None, bytes(spec.secret)))
    for key in keys:
        name = "secret" if key.kid is None else f"keys: {key.kid!r}"
        if not any(key.fits(alg) for alg in spec.algorithms):
            raise bad(f"{name} fits none of the algorithms {list(spec.algorithms)}")
        if isinstance(key.material, bytes) and any(
            len(key.material) < HMAC_MIN_BYTES[a] for a in spec.algorithms
        ):
            raise bad(f"{name} is shorter than its HS* hash (RFC 7518 §3.2)")
    has_jwks = spec.jwks_url is not None or spec.discovery
    if True in symmetric and has_jwks:
        raise bad("HS* secrets come from the environment, never from a JWKS URL")
    if not keys and not has_jwks:
        raise bad("needs a secret, keys, jwks_url or discovery")
    return tuple(keys)


class _Issuer(NamedTuple):
    spec: IssuerSpec
    keys: KeySet


class _Parts(NamedTuple):
    header: dict[str, Any]
    claims: dict[str, Any]
    signing_input: bytes
    signature: bytes


def _segment(segment: str, *, json_object: bool = True) -> Any:
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        value = json.loads(raw) if json_object else raw
    except (ValueError, binascii.Error, RecursionError):
        raise reject("malformed token") from None
    if json_object and not isinstance(value, dict):
        raise reject("malformed token")
    return value


class JWTVerifier:
    """Verifies bearer JWTs against a fixed set of trusted issuers.

    ``verify`` returns the token's :class:`Principal` or raises
    :class:`~gateway.errors.Unauthorized`; a token that cannot be checked (its issuer's keys
    unreachable) is also 401, never 500. ``clock`` (wall time, seconds) is for tests.
    """

    def __init__(
        self,
        issuers: Sequence[IssuerSpec],
        http: httpx.AsyncClient,
        *,
        cache_size: int = 10_000,
        max_token_bytes: int = 8192,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if cache_size < 0 or max_token_bytes <= 0:
            raise ValueError("cache_size must be >= 0 and max_token_bytes > 0")
        self._issuers: dict[str, _Issuer] = {}
        for spec in issuers:
            if spec.issuer in self._issuers:
                raise ValueError(f"JWT issuer {spec.issuer!r} is configured twice")
            keys = KeySet(
                spec.issuer,
                _check_spec(spec),
                http,
                jwks_url=spec.jwks_url,
                discovery=spec.discovery,
                refetch_interval=spec.refetch_interval,
                jwks_ttl=spec.jwks_ttl,
            )
            self._issuers[spec.issuer] = _Issuer(spec, keys)
        self._algorithms: dict[str, Algorithm] = get_default_algorithms()
        self._cache: OrderedDict[bytes, tuple[Principal, float]] = OrderedDict()
        self._cache_size = cache_size
        self._max_token_bytes = max_token_bytes
        self._clock = clock

    def issuer_of(self, token: str) -> str | None:
        """The token's ``iss``, UNVERIFIED: for choosing a route or policy, never for trust."""
        try:
            iss = self._split(token).claims.get("iss")
        except Unauthorized:
            return None
        return iss if isinstance(iss, str) else None

    async def verify(self, token: str) -> Principal:
        issuer: str | None = None
        try:
            self._check_size(token)
            digest = hashlib.sha256(token.encode()).digest()
            cached = self._cached(digest)
            if cached is not None:
                return cached
            parts = self._split(token)
            state = self._trusted(parts)
            issuer = state.spec.issuer
            principal, deadline = await self._check(state, parts)
        except Unauthorized as exc:
            logger.info("bearer token rejected", extra={"reason": exc.message, "issuer": issuer})
            raise
        if self._cache_size and deadline is not None:
            self._cache[digest] = (principal, deadline)
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return principal

    def _cached(self, digest: bytes) -> Principal | None:
        entry = self._cache.get(digest)
        if entry is None:
            return None
        principal, deadline = entry
        if self._clock() >= deadline:
            del self._cache[digest]
            raise reject("token expired")
        self._cache.move_to_end(digest)
        return principal

    def _check_size(self, token: str) -> None:
        if not isinstance(token, str):
            raise reject("malformed token")
        if len(token) > self._max_token_bytes:
            raise reject("token too large")
        if not token.isascii():  # so len() counts bytes, and no surrogate reaches encode()
            raise reject("malformed token")

    def _split(self, token: str) -> _Parts:
        self._check_size(token)
        segments = token.split(".")
        if len(segments) != 3 or not all(_SEGMENT.fullmatch(s) for s in segments):
            raise reject("malformed token")
        h, p, sig = segments
        signing_input = f"{h}.{p}".encode()
        return _Parts(_segment(h), _segment(p), signing_input, _segment(sig, json_object=False))

    def _trusted(self, parts: _Parts) -> _Issuer:
        """The issuer the token claims, if trusted and the header fits it; no crypto yet."""
        alg = parts.header.get("alg")
        if not isinstance(alg, str):
            raise reject("malformed token")
        if alg.lower() == "none":
            raise reject("algorithm not allowed")
        iss = parts.claims.get("iss")
        state = self._issuers.get(iss) if isinstance(iss, str) else None
        if state is None:
            raise reject("issuer not trusted")
        if alg not in state.spec.algorithms:
            raise reject("algorithm not allowed")
        if "crit" in parts.header:  # we understand no JWS extension (RFC 7515 §4.1.11)
            raise reject("malformed token")
        typ = parts.header.get("typ")
        if typ is not None and (not isinstance(typ, str) or typ.lower() not in _TOKEN_TYPES):
            raise reject("token type not accepted")
        return state

    async def _check(self, state: _Issuer, parts: _Parts) -> tuple[Principal, float | None]:
        alg: str = parts.header["alg"]
        kid = parts.header.get("kid")
        if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID):
            raise reject("unknown key id")  # no key set holds one: never looked up or fetched
        keys = await state.keys.keys_for(kid, alg)
        verifier = self._algorithms[alg]
        if not any(
            verifier.verify(parts.signing_input, key.material, parts.signature)
            for key in keys[:_MAX_KEY_TRIES]
        ):
            raise reject("signature invalid")
        return _principal(state.spec, parts.claims, self._clock())


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise reject(f"invalid {name} claim")
    return float(value)


def _principal(
    spec: IssuerSpec, claims: Mapping[str, Any], now: float
) -> tuple[Principal, float | None]:
    """Check the verified claims; the principal and the time its cache entry expires."""
    for name in spec.required_claims:
        if claims.get(name) is None:
            raise reject(f"required claim missing: {name}")
    exp, nbf, iat = _number(claims, "exp"), _number(claims, "nbf"), _number(claims, "iat")
    if exp is not None and exp <= now - spec.leeway:
        raise reject("token expired")
    if nbf is not None and nbf > now + spec.leeway:
        raise reject("token not yet valid")
    if iat is not None and iat > now + spec.leeway:
        raise reject("token issued in the future")
    if spec.audience:
        aud = claims.get("aud")
        accepted = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(isinstance(a, str) and a in spec.audience for a in accepted):
            raise reject("audience not accepted")
    subject = claims.get("sub", claims.get("client_id"))
    if not isinstance(subject, str) or not subject:
        raise reject("token has no subject")
    tenant = claims.get(spec.tenant_claim)
    if tenant is not None and not isinstance(tenant, str):
        raise reject(f"invalid {spec.tenant_claim} claim")
    scopes: set[str] = set()
    for name in spec.scope_claims:
        value = claims.get(name)
        if isinstance(value, str):
            scopes.update(value.split())
        elif isinstance(value, list) and all(isinstance(s, str) for s in value):
            scopes.update(s for item in value for s in item.split())
        elif value is not None:
            raise reject(f"invalid {name} claim")
    principal = Principal(subject, tenant, frozenset(scopes), spec.issuer, exp, "jwt")
    return principal, None if exp is None else exp + spec.leeway

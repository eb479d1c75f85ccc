"""JWT signing keys: key material, static keys, and an issuer's JWKS fetched as a key set.

A :class:`Key` is the verifying half of one key (RSA of at least 2048 bits, EC, EdDSA or an HMAC
secret) with the algorithms it fits; :func:`static_key` loads one from routes.yaml (PEM,
certificate, JWK dict or key object). A :class:`KeySet` holds an issuer's static keys plus its
JWK set (RFC 7517 §5), from ``jwks_url`` or OIDC discovery: refreshed every ``jwks_ttl``, and an
unknown ``kid`` triggers at most one refetch per ``refetch_interval``, shared by concurrent
requests; a failed fetch keeps the last good set. A JWK set from the network never supplies
HMAC secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeAlias

import httpx
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from gateway.errors import Unauthorized

logger = logging.getLogger("gateway.auth")

_Material: TypeAlias = bytes | PublicKeyTypes  # public keys only, as _public() returns them
_PUBLIC_ED = (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)
_PUBLIC = (bytes, rsa.RSAPublicKey, ec.EllipticCurvePublicKey, *_PUBLIC_ED)
_KEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "HS": bytes,
    "RS": rsa.RSAPublicKey,
    "PS": rsa.RSAPublicKey,
    "ES": ec.EllipticCurvePublicKey,
    "Ed": _PUBLIC_ED,
}
_PRIVATE = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey)

HMAC_MIN_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}  # RFC 7518 §3.2: key >= hash size
_EC_CURVES = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
SUPPORTED_ALGORITHMS = frozenset({*HMAC_MIN_BYTES, *_RSA, *_EC_CURVES, "EdDSA"})
_MIN_RSA_BITS = 2048
MAX_KID = 1024
_MAX_JWKS_KEYS = 64
_MAX_DOCUMENT_BYTES = 1 << 20
_FETCH_TIMEOUT = httpx.Timeout(5.0)


def reject(reason: str) -> Unauthorized:
    """The 401 for a bearer token that fails, with an RFC 6750 §3 ``invalid_token`` challenge."""
    challenge = f'Bearer error="invalid_token", error_description="{reason}"'
    return Unauthorized(reason, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True, slots=True)
class Key:
    """One verifying key; ``fits`` says whether it can check a given algorithm."""

    kid: str | None  # None: a key without kid, tried for any token of its type
    material: _Material
    alg: str | None = None  # the JWK's "alg", if it restricts the key to one algorithm

    def fits(self, alg: str) -> bool:
        key = self.material
        if self.alg not in (None, alg) or not isinstance(key, _KEY_TYPES[alg[:2]]):
            return False
        return not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name == _EC_CURVES[alg]


def _public(key: object) -> _Material:
    """The verifying half of a key object; ValueError for anything that cannot verify."""
    if isinstance(key, _PRIVATE) or isinstance(key, ed448.Ed448PrivateKey):  # noqa: SIM101
        key = key.public_key()
    if not isinstance(key, _PUBLIC):
        raise ValueError(f"unsupported key type {type(key).__name__}")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise ValueError(f"RSA key of {key.key_size} bits (at least {_MIN_RSA_BITS})")
    return key


def _jwk_key(jwk: Mapping[str, Any]) -> Key:
    kid, alg = jwk.get("kid"), jwk.get("alg")
    if kid is not None and (not isinstance(kid, str) or len(kid) > MAX_KID):
        raise ValueError("kid must be a string of at most 1024 characters")
    if jwk.get("use", "sig") != "sig":
        raise ValueError("not a signing key")
    try:
        material = PyJWK(dict(jwk)).key
    except PyJWTError as exc:
        raise ValueError(str(exc)) from exc
    return Key(kid, _public(material), alg if isinstance(alg, str) else None)


def static_key(kid: str, value: Any) -> Key:
    """A configured key: PEM (public, private or certificate), JWK dict or key object."""
    if isinstance(value, Mapping):
        return replace(_jwk_key(value), kid=kid)
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        if b"-----BEGIN CERTIFICATE" in value:
            return Key(kid, _public(x509.load_pem_x509_certificate(value).public_key()))
        if b"PRIVATE KEY-----" in value:
            return Key(kid, _public(load_pem_private_key(value, password=None)))
        return Key(kid, _public(load_pem_public_key(value)))
    return Key(kid, _public(value))


def _parse_jwks(document: Any) -> tuple[Key, ...]:
    """The usable signing keys of a JWK set (RFC 7517 §5); others are skipped."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('not a JWK set (no "keys" list)')
    keys: list[Key] = []
    for entry in document["keys"][:_MAX_JWKS_KEYS]:
        # A JWK set from the network never supplies HMAC secrets.
        if not isinstance(entry, dict) or entry.get("kty") == "oct":
            continue
        try:
            keys.append(_jwk_key(entry))
        except (ValueError, TypeError, KeyError):
            continue
    if not keys:
        raise ValueError("the JWK set has no usable signing key")
    return tuple(keys)


class KeySet:
    """An issuer's key set: static keys plus its JWKS, fetched single-flight.

    ``jwks_url`` or ``discovery`` (``{issuer}/.well-known/openid-configuration``) names the JWKS;
    with neither, only the static keys are held.
    """

    def __init__(
        self,
        issuer: str,
        static: tuple[Key, ...],
        http: httpx.AsyncClient,
        *,
        jwks_url: str | None,
        discovery: bool,
        refetch_interval: float,
        jwks_ttl: float,
    ) -> None:
        self._issuer = issuer
        self._http = http
        self._static = static
        self._remote: tuple[Key, ...] = ()
        self._jwks_url = jwks_url
        self._jwks_uri = jwks_url
        self._refetch_interval = refetch_interval
        self._jwks_ttl = jwks_ttl
        self.has_jwks = jwks_url is not None or discovery
        self._loaded_at: float | None = None
        self._last_refetch = -math.inf
        self._last_failure = -math.inf
        self._generation = 0  # bumped by every fetch attempt: waiters share its result
        self._lock = asyncio.Lock()

    def select(self, kid: str | None, alg: str) -> list[Key]:
        return [
            key
            for key in (*self._static, *self._remote)
            if (kid is None or key.kid is None or key.kid == kid) and key.fits(alg)
        ]

    async def keys_for(self, kid: str | None, alg: str) -> list[Key]:
        """The keys to try for a token; Unauthorized if there are none."""
        generation = self._generation
        if self.has_jwks and self._due():
            await self._fetch("scheduled" if self._loaded_at is not None else "initial")
        found = self.select(kid, alg)
        # Nothing fits: the issuer may have rotated. Unless this request already saw a fresh set.
        if not found and self.has_jwks and self._generation == generation:
            await self._fetch("unknown key id", refetch=True)
            found = self.select(kid, alg)
        if not found and self.has_jwks and self._loaded_at is None and not self._static:
            raise reject("key set unavailable")
        if not found:
            raise reject("unknown key id" if kid is not None else "no matching key")
        return found

    def _due(self) -> bool:
        now = time.monotonic()
        if now - self._last_failure < self._refetch_interval:
            return False  # a failed fetch is not retried at request rate
        if self._lock.locked() and self._loaded_at is not None:
            return False  # a refresh is in flight: go on with the keys already held
        return self._loaded_at is None or now - self._loaded_at >= self._jwks_ttl

    async def _fetch(self, reason: str, *, refetch: bool = False) -> None:
        generation = self._generation
        async with self._lock:
            if self._generation != generation:
                return  # another request fetched while this one waited: share its result
            now = time.monotonic()
            if refetch:
                if now - max(self._last_refetch, self._last_failure) < self._refetch_interval:
                    return
                self._last_refetch = now
            log: dict[str, Any] = {"issuer": self._issuer, "reason": reason}
            try:
                self._remote = await self._download()
            except (httpx.HTTPError, ValueError) as exc:
                self._last_failure = time.monotonic()
                self._jwks_uri = self._jwks_url  # with discovery: discover again next time
                logger.warning("JWKS fetch failed", extra={**log, "error": str(exc)})
            else:
                self._loaded_at = time.monotonic()
                logger.info("JWKS fetched", extra={**log, "keys": len(self._remote)})
            finally:
                self._generation += 1

    async def _download(self) -> tuple[Key, ...]:
        uri = self._jwks_uri
        if uri is None:
            url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            meta = await self._get_json(url)
            if not isinstance(meta, dict) or meta.get("issuer") != self._issuer:
                raise ValueError("the discovery document names another issuer")
            uri = meta.get("jwks_uri")
            if not isinstance(uri, str) or not uri.startswith(("https://", "http://")):
                raise ValueError("the discovery document has no http(s) jwks_uri")
        keys = _parse_jwks(await self._get_json(uri))
        self._jwks_uri = uri
        return keys

    async def _get_json(self, url: str) -> Any:
        headers = {"Accept": "application/json"}
        async with self._http.stream("GET", url, headers=headers, timeout=_FETCH_TIMEOUT) as resp:
            if resp.status_code != 200:
                raise ValueError(f"{url} answered HTTP {resp.status_code}")
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > _MAX_DOCUMENT_BYTES:
                    raise ValueError(f"{url} answered more than {_MAX_DOCUMENT_BYTES} bytes")
        try:
            return json.loads(body)
        except (ValueError, RecursionError) as exc:
            raise ValueError(f"{url} answered invalid JSON") from exc

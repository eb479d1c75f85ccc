"""The gateway's own short-lived JWTs (``POST /oauth2/token``) and its public key set.

The signing key is Ed25519, derived from the server secret with HKDF, so every replica that
shares ``GATEWAY_SECRET`` signs and verifies the same tokens with no key distribution.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Iterable
from typing import Any

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gateway.auth.jwt import IssuerSpec

AUDIENCE = "model-gateway"


class TokenIssuer:
    def __init__(self, server_secret: bytes, issuer: str, ttl: float) -> None:
        seed = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"model-gateway token key v1"
        ).derive(server_secret)
        self._private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public: Ed25519PublicKey = self._private.public_key()
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.kid = hashlib.sha256(raw).hexdigest()[:16]
        self.issuer = issuer
        self.ttl = ttl

    def issue(self, subject: str, tenant: str, scopes: Iterable[str]) -> tuple[str, int]:
        now = int(time.time())
        claims = {
            "iss": self.issuer,
            "aud": AUDIENCE,
            "sub": subject,
            "tenant": tenant,
            "scope": " ".join(sorted(scopes)),
            "iat": now,
            "nbf": now,
            "exp": now + int(self.ttl),
            "jti": secrets.token_hex(8),
        }
        token = jwt.encode(claims, self._private, algorithm="EdDSA", headers={"kid": self.kid})
        return token, int(self.ttl)

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.OKPAlgorithm.to_jwk(self.public, as_dict=True)
        return {"keys": [{**jwk, "kid": self.kid, "alg": "EdDSA", "use": "sig"}]}

    def spec(self) -> IssuerSpec:
        """How the verifier trusts these tokens (the local key, no fetching)."""
        return IssuerSpec(
            issuer=self.issuer,
            algorithms=("EdDSA",),
            audience=(AUDIENCE,),
            keys={self.kid: self.public},
            leeway=5.0,
        )

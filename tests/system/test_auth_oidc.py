"""JWT bearer tokens from a real OAuth2 provider (node-oidc-provider), through the running app."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, forwarded
from tests.oidc.plugin import OIDCProvider
from tests.support import ADMIN, ADMIN_TOKEN, V2, auth_routes, error_of

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(
    start_gateway: StartGateway, backend: FakeReplica, oidc_provider: OIDCProvider
) -> RunningGateway:
    issuer = {
        "issuer": oidc_provider.issuer,
        "discovery": True,
        "algorithms": ["RS256", "PS256", "ES256"],
        "audience": [oidc_provider.resource],
        "tenant_claim": "tenant",
    }
    return await start_gateway(
        auth_routes(backend.url, jwt=[issuer]),
        admin_token=ADMIN_TOKEN,
        secret="s-" + uuid.uuid4().hex,
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256"])
async def test_provider_tokens_are_accepted(
    gateway: RunningGateway, oidc_provider: OIDCProvider, backend: FakeReplica, alg: str
) -> None:
    token = oidc_provider.token("predict:linear", alg=alg)
    assert jwt.get_unverified_header(token)["alg"] == alg
    response = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert forwarded(backend) == ["/v2/models/linear/infer"]


async def test_scopes_from_the_token_decide(
    gateway: RunningGateway, oidc_provider: OIDCProvider
) -> None:
    only_metadata = oidc_provider.token(scope="metadata:linear")
    headers = bearer(only_metadata)
    assert (await gateway.client.get("/v2/models/linear", headers=headers)).status_code == 200
    refused = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=headers)
    assert refused.status_code == 403
    admin = oidc_provider.token(scope="admin")
    assert (await gateway.client.get("/admin/tenants", headers=bearer(admin))).status_code == 200
    assert (await gateway.client.get("/admin/tenants", headers=headers)).status_code == 403


async def test_a_registered_tenant_limits_its_token_callers(
    gateway: RunningGateway, oidc_provider: OIDCProvider
) -> None:
    created = await gateway.client.post(
        "/admin/tenants", json={"name": "acme", "models": ["other"]}, headers=ADMIN
    )
    assert created.status_code == 201
    token = oidc_provider.token("predict:linear")
    response = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=bearer(token))
    assert response.status_code == 403
    assert "may not use model 'linear'" in error_of(response)[1]


async def test_key_rotation_at_the_provider_needs_no_restart(
    gateway: RunningGateway, oidc_provider: OIDCProvider
) -> None:
    before = oidc_provider.token("predict:linear")
    ok = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=bearer(before))
    assert ok.status_code == 200
    new_kids = oidc_provider.rotate_keys()
    after = oidc_provider.token("predict:linear")
    assert jwt.get_unverified_header(after)["kid"] == new_kids["RS256"]
    response = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=bearer(after))
    assert response.status_code == 200, response.text


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def test_the_attack_corpus_is_refused_before_any_backend(
    gateway: RunningGateway, oidc_provider: OIDCProvider, backend: FakeReplica
) -> None:
    genuine = oidc_provider.token("predict:linear")
    header = jwt.get_unverified_header(genuine)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    async with httpx.AsyncClient() as client:
        jwks = (await client.get(oidc_provider.jwks_uri)).json()
    rsa_jwk = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public_key = jwt.algorithms.RSAAlgorithm.from_jwk(json.dumps(rsa_jwk))
    assert isinstance(public_key, rsa.RSAPublicKey)
    public_pem = public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    forged = {
        "alg none": ".".join(
            [_b64(b'{"alg":"none","typ":"JWT"}'), _b64(json.dumps(claims).encode()), ""]
        ),
        "HS256 with the RSA public key": _hs256(claims, public_pem, header["kid"]),
        "signed by someone else": jwt.encode(
            claims, impostor, algorithm="RS256", headers={"kid": header["kid"]}
        ),
        "expired": jwt.encode(
            {**claims, "exp": now - 3600},
            impostor,
            algorithm="RS256",
            headers={"kid": header["kid"]},
        ),
        "unknown kid": jwt.encode(claims, impostor, algorithm="RS256", headers={"kid": "nope"}),
        "kid path trick": jwt.encode(
            claims, impostor, algorithm="RS256", headers={"kid": "../../../etc/passwd"}
        ),
        "wrong audience": oidc_provider.token("predict:linear", resource="https://else.test/api"),
        "tampered payload": ".".join(
            [
                genuine.split(".")[0],
                _b64(json.dumps({**claims, "scope": "*"}).encode()),
                genuine.split(".")[2],
            ]
        ),
        "oversized": genuine + "A" * 20_000,
        "garbage": "not.a.jwt",
        "two parts": "abc.def",
    }
    for name, token in forged.items():
        response = await gateway.client.post(
            "/v2/models/linear/infer", json=V2, headers=bearer(token)
        )
        assert response.status_code == 401, f"{name}: {response.status_code} {response.text}"
        assert "invalid_token" in response.headers.get("WWW-Authenticate", ""), name
        assert token[:40] not in response.text, name
    assert forwarded(backend) == []


def _hs256(claims: dict[str, object], key: bytes, kid: str) -> str:
    """HS256 over the RSA public key PEM: PyJWT refuses to do it, so sign by hand."""
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    body = _b64(json.dumps(claims).encode())
    signature = hmac.new(key, f"{head}.{body}".encode(), hashlib.sha256).digest()
    return f"{head}.{body}.{_b64(signature)}"

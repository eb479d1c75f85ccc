"""JWTVerifier against a REAL OAuth2 provider (node-oidc-provider, tests/oidc): real
client-credentials tokens, discovery, JWKS and key rotation while everything keeps running."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator

import httpx
import jwt as pyjwt
import pytest

from gateway.auth.jwt import IssuerSpec, JWTVerifier
from gateway.errors import Unauthorized
from tests.oidc.plugin import CLIENT_ID, OIDCProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
async def fetches() -> AsyncIterator[tuple[httpx.AsyncClient, Counter[str]]]:
    """A real httpx client that counts the requests it sends, by path."""
    counts: Counter[str] = Counter()

    async def count(request: httpx.Request) -> None:
        counts[request.url.path] += 1

    async with httpx.AsyncClient(event_hooks={"request": [count]}) as client:
        yield client, counts


def spec(provider: OIDCProvider, **overrides: object) -> IssuerSpec:
    options: dict[str, object] = {
        "algorithms": ("RS256", "ES256"),
        "audience": (provider.resource,),
        "discovery": True,
        **overrides,
    }
    return IssuerSpec(provider.issuer, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_client_credentials_tokens_verify_via_discovery(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]], alg: str
) -> None:
    http, counts = fetches
    verifier = JWTVerifier([spec(oidc_provider)], http)
    token = oidc_provider.token("predict:linear admin not-a-scope", alg=alg)
    principal = await verifier.verify(token)
    assert principal.subject == CLIENT_ID
    assert principal.tenant == "acme"
    assert principal.scopes == {"predict:linear", "admin"}  # the provider dropped the unknown one
    assert principal.issuer == oidc_provider.issuer
    assert principal.expires_at is not None
    assert counts["/.well-known/openid-configuration"] == 1
    assert counts["/jwks"] == 1


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
async def test_client_credentials_tokens_verify_via_an_explicit_jwks_url(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]], alg: str
) -> None:
    http, counts = fetches
    options = {"discovery": False, "jwks_url": oidc_provider.jwks_uri, "algorithms": (alg,)}
    verifier = JWTVerifier([spec(oidc_provider, **options)], http)
    principal = await verifier.verify(oidc_provider.token("metadata:linear", alg=alg))
    assert principal.scopes == {"metadata:linear"}
    assert counts["/.well-known/openid-configuration"] == 0


async def test_a_token_for_another_audience_is_refused(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]]
) -> None:
    verifier = JWTVerifier([spec(oidc_provider)], fetches[0])
    token = oidc_provider.token("admin", resource="https://other.test/api")
    with pytest.raises(Unauthorized, match="audience not accepted"):
        await verifier.verify(token)


async def test_an_algorithm_the_issuer_is_not_pinned_to_is_refused(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]]
) -> None:
    verifier = JWTVerifier([spec(oidc_provider, algorithms=("RS256",))], fetches[0])
    with pytest.raises(Unauthorized, match="algorithm not allowed"):
        await verifier.verify(oidc_provider.token(alg="ES256"))


async def test_rotated_keys_verify_after_one_refetch_without_restarting_anything(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]]
) -> None:
    http, counts = fetches
    verifier = JWTVerifier([spec(oidc_provider, refetch_interval=30)], http)
    old = oidc_provider.token("admin")
    assert await verifier.verify(old)
    assert counts["/jwks"] == 1

    kids = oidc_provider.rotate_keys()
    new = oidc_provider.token("admin")
    assert pyjwt.get_unverified_header(new)["kid"] == kids["RS256"]
    assert (await verifier.verify(new)).scopes == {"admin"}
    assert counts["/jwks"] == 2  # one refetch for the unknown kid
    assert await verifier.verify(oidc_provider.token("predict:linear"))
    assert await verifier.verify(old)  # the old key is still published
    assert counts["/jwks"] == 2

    oidc_provider.rotate_keys()  # again, within refetch_interval: no refetch allowed yet
    with pytest.raises(Unauthorized, match="unknown key id"):
        await verifier.verify(oidc_provider.token("admin"))
    assert counts["/jwks"] == 2
    assert counts["/.well-known/openid-configuration"] == 1


async def test_refetch_interval_zero_follows_every_rotation(
    oidc_provider: OIDCProvider, fetches: tuple[httpx.AsyncClient, Counter[str]]
) -> None:
    http, counts = fetches
    verifier = JWTVerifier([spec(oidc_provider, refetch_interval=0)], http)
    for rotation in range(3):
        oidc_provider.rotate_keys()
        assert await verifier.verify(oidc_provider.token(alg="ES256"))
        assert counts["/jwks"] == rotation + 1

"""JWTVerifier with locally generated keys; JWKS and discovery served by httpx.MockTransport."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from gateway.auth.jwt import IssuerSpec, JWTVerifier, Principal
from gateway.errors import Unauthorized

pytestmark = pytest.mark.anyio

ISSUER = "https://idp.test"
OTHER_ISSUER = "https://other-idp.test"
AUDIENCE = "https://gateway.test/api"
SECRETS = {"HS256": b"s" * 32, "HS384": b"t" * 48, "HS512": b"u" * 64}


@dataclass
class Keys:
    """Private keys by name, generated once per session (RSA generation is slow)."""

    private: dict[str, Any]

    def jwk(self, name: str, kid: str) -> dict[str, Any]:
        public = self.private[name].public_key()
        algorithm = get_default_algorithms()[ALG_OF[name]]
        return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig"}

    def pem(self, name: str) -> str:
        public = self.private[name].public_key()
        return str(public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode())


ALG_OF = {"rsa": "RS256", "rsa2": "RS256", "p256": "ES256", "p384": "ES384", "ed25519": "EdDSA"}
KEY_FOR = {"RS256": "rsa", "PS256": "rsa", "ES256": "p256", "ES384": "p384", "EdDSA": "ed25519"}


@pytest.fixture(scope="session")
def keys() -> Keys:
    return Keys(
        {
            "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "rsa2": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "p256": ec.generate_private_key(ec.SECP256R1()),
            "p384": ec.generate_private_key(ec.SECP384R1()),
            "ed25519": ed25519.Ed25519PrivateKey.generate(),
        }
    )


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "client-1",
        "aud": AUDIENCE,
        "iat": now,
        "exp": now + 600,
        "scope": "predict:linear admin",
        "tenant": "acme",
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def sign(key: Any, alg: str, kid: str | None = "k1", **overrides: Any) -> str:
    headers = {"kid": kid} if kid is not None else {}
    return pyjwt.encode(claims(**overrides), key, algorithm=alg, headers=headers)


def b64(data: bytes | dict[str, Any]) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def forge(header: dict[str, Any], payload: dict[str, Any], mac_key: bytes | None = None) -> str:
    """A token built by hand: an HMAC-SHA256 signature with any bytes, or a junk signature."""
    signing_input = f"{b64(header)}.{b64(payload)}"
    if mac_key is None:
        return f"{signing_input}.{b64(b'not-a-signature')}"
    mac = hmac.new(mac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(mac)}"


@dataclass
class FakeIdP:
    """Discovery + JWKS over httpx.MockTransport; counts requests per path."""

    jwks: dict[str, Any] = field(default_factory=lambda: {"keys": []})
    issuer: str = ISSUER
    fail: bool = False
    body: bytes | None = None  # served instead of the JWKS when set
    delay: float = 0.01  # every answer waits, so concurrent requests really overlap
    gate: asyncio.Event | None = None  # when set, JWKS answers wait for it
    waiting: asyncio.Event = field(default_factory=asyncio.Event)  # a request waits at the gate
    hits: Counter[str] = field(default_factory=Counter)

    async def handler(self, request: httpx.Request) -> httpx.Response:
        self.hits[request.url.path] += 1
        await asyncio.sleep(self.delay)
        if self.gate is not None:
            self.waiting.set()
            await self.gate.wait()
        if self.fail:
            return httpx.Response(503)
        if request.url.path == "/.well-known/openid-configuration":
            return httpx.Response(200, json={"issuer": self.issuer, "jwks_uri": f"{ISSUER}/jwks"})
        if request.url.path == "/jwks":
            if self.body is not None:
                return httpx.Response(200, content=self.body)
            return httpx.Response(200, json=self.jwks)
        return httpx.Response(404)

    @property
    def jwks_fetches(self) -> int:
        return self.hits["/jwks"]


@pytest.fixture
def idp(keys: Keys) -> FakeIdP:
    return FakeIdP({"keys": [keys.jwk("rsa", "k1"), keys.jwk("p256", "k2")]})


@pytest.fixture
async def http(idp: FakeIdP) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.handler)) as client:
        yield client


MakeVerifier = Callable[..., JWTVerifier]


@pytest.fixture
def make_verifier(http: httpx.AsyncClient) -> MakeVerifier:
    """A verifier for ISSUER (RS256 + ES256 via jwks_url unless overridden) and OTHER_ISSUER."""

    def make(*specs: IssuerSpec, **kwargs: Any) -> JWTVerifier:
        names = {f.name for f in fields(IssuerSpec)}
        spec_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in names}
        spec_kwargs.setdefault("algorithms", ("RS256", "ES256"))
        spec_kwargs.setdefault("audience", (AUDIENCE,))
        if "keys" not in spec_kwargs and "secret" not in spec_kwargs:
            spec_kwargs.setdefault("jwks_url", f"{ISSUER}/jwks")
        main = IssuerSpec(issuer=spec_kwargs.pop("issuer", ISSUER), **spec_kwargs)
        return JWTVerifier([main, *specs], http, **kwargs)

    return make


class _Records(logging.Handler):
    def __init__(self, level: int) -> None:
        super().__init__(level)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def auth_log() -> Iterator[list[logging.LogRecord]]:
    """Records of the "gateway.auth" logger, whatever logging config an earlier test applied."""
    handler = _Records(logging.DEBUG)
    logger = logging.getLogger("gateway.auth")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(level)


async def rejection(verifier: JWTVerifier, token: str) -> Unauthorized:
    with pytest.raises(Unauthorized) as info:
        await verifier.verify(token)
    return info.value


def assert_clean(exc: Unauthorized, token: str, reason: str) -> None:
    assert exc.status == 401
    assert exc.message == reason
    challenge = exc.headers["WWW-Authenticate"]
    assert challenge == f'Bearer error="invalid_token", error_description="{reason}"'
    for part in (p for p in token.split(".") if len(p) > 8):
        assert part not in exc.message
        assert part not in challenge


# --------------------------------------------------------------------------- every algorithm


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_algorithms_verify(make_verifier: MakeVerifier, alg: str) -> None:
    verifier = make_verifier(algorithms=(alg,), secret=SECRETS[alg])
    principal = await verifier.verify(sign(SECRETS[alg], alg))
    assert principal == Principal(
        "client-1",
        "acme",
        frozenset({"predict:linear", "admin"}),
        ISSUER,
        principal.expires_at,
        "jwt",
    )
    assert principal.expires_at is not None


@pytest.mark.parametrize("source", ["jwks", "static"])
@pytest.mark.parametrize("alg", ["RS256", "PS256", "ES256", "ES384", "EdDSA"])
async def test_asymmetric_algorithms_verify(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys, alg: str, source: str
) -> None:
    name = KEY_FOR[alg]
    if source == "jwks":
        jwk = keys.jwk(name, "kx")
        jwk.pop("alg", None)  # an RSA key serves RS256 and PS256 alike
        idp.jwks = {"keys": [jwk]}
        verifier = make_verifier(algorithms=(alg,))
    else:
        verifier = make_verifier(algorithms=(alg,), keys={"kx": keys.pem(name)})
    principal = await verifier.verify(sign(keys.private[name], alg, kid="kx"))
    assert principal.subject == "client-1"
    assert principal.via == "jwt"


async def test_static_keys_accept_jwk_dicts_and_key_objects(
    make_verifier: MakeVerifier, keys: Keys
) -> None:
    verifier = make_verifier(
        keys={"a": keys.jwk("rsa", "a"), "b": keys.private["p256"].public_key()}
    )
    assert await verifier.verify(sign(keys.private["rsa"], "RS256", kid="a"))
    assert await verifier.verify(sign(keys.private["p256"], "ES256", kid="b"))


async def test_a_token_without_kid_tries_the_keys_of_its_type(
    make_verifier: MakeVerifier, keys: Keys
) -> None:
    verifier = make_verifier()
    assert await verifier.verify(sign(keys.private["p256"], "ES256", kid=None))
    assert await verifier.verify(sign(keys.private["rsa"], "RS256", kid=None))
    exc = await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid=None))
    assert exc.message == "signature invalid"


async def test_discovery_finds_the_jwks(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier(discovery=True, jwks_url=None)
    assert await verifier.verify(sign(keys.private["rsa"], "RS256"))
    assert idp.hits["/.well-known/openid-configuration"] == 1


async def test_discovery_naming_another_issuer_is_not_trusted(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    idp.issuer = "https://evil.test"
    verifier = make_verifier(discovery=True, jwks_url=None)
    exc = await rejection(verifier, sign(keys.private["rsa"], "RS256"))
    assert exc.message == "key set unavailable"
    assert idp.jwks_fetches == 0


async def test_leeway_and_audience_lists(make_verifier: MakeVerifier, keys: Keys) -> None:
    verifier = make_verifier(leeway=30)
    now = int(time.time())
    token = sign(keys.private["rsa"], "RS256", exp=now - 10, aud=["a", AUDIENCE])
    assert await verifier.verify(token)
    assert await verifier.verify(sign(keys.private["rsa"], "RS256", nbf=now + 10))


# --------------------------------------------------------------------------- the attack corpus

Build = Callable[[Keys], str]


def _now() -> int:
    return int(time.time())


def _rs(**overrides: Any) -> Build:
    return lambda k: sign(k.private["rsa"], "RS256", **overrides)


def _tampered(k: Keys) -> str:
    header, _, signature = sign(k.private["rsa"], "RS256").split(".")
    return f"{header}.{b64(claims(scope='admin', sub='root'))}.{signature}"


def _hs256_with_rsa_public_pem(k: Keys) -> str:
    header = {"alg": "HS256", "typ": "JWT", "kid": "k1"}
    return forge(header, claims(), mac_key=k.pem("rsa").encode())


ATTACKS: dict[str, tuple[Build, str]] = {
    "alg none, no signature": (
        lambda k: f"{b64({'alg': 'none'})}.{b64(claims())}.",
        "algorithm not allowed",
    ),
    "alg none, with signature": (
        lambda k: forge({"alg": "none", "kid": "k1"}, claims()),
        "algorithm not allowed",
    ),
    "alg NoNe": (lambda k: forge({"alg": "NoNe"}, claims()), "algorithm not allowed"),
    "HS256 signed with the RSA public key PEM": (
        _hs256_with_rsa_public_pem,
        "algorithm not allowed",
    ),
    "alg not pinned (RS384)": (
        lambda k: sign(k.private["rsa"], "RS384"),
        "algorithm not allowed",
    ),
    "expired": (_rs(exp=_now() - 3600), "token expired"),
    "not yet valid (nbf)": (_rs(nbf=_now() + 3600), "token not yet valid"),
    "iat in the future": (_rs(iat=_now() + 3600), "token issued in the future"),
    "wrong aud": (_rs(aud="https://other.test"), "audience not accepted"),
    "no aud": (_rs(aud=None), "audience not accepted"),
    "untrusted iss": (_rs(iss="https://evil.test"), "issuer not trusted"),
    "no iss": (_rs(iss=None), "issuer not trusted"),
    "iss not a string": (
        lambda k: forge({"alg": "RS256", "kid": "k1"}, claims(iss=[ISSUER])),
        "issuer not trusted",
    ),
    "no exp": (_rs(exp=None), "required claim missing: exp"),
    "exp not a number": (_rs(exp="tomorrow"), "invalid exp claim"),
    "unknown kid": (_rs(kid="nope"), "unknown key id"),
    "kid path traversal": (_rs(kid="../../../../etc/passwd"), "unknown key id"),
    "kid url": (_rs(kid="http://evil.test/jwks"), "unknown key id"),
    "kid very long": (_rs(kid="k" * 2000), "unknown key id"),
    "kid an integer": (lambda k: forge({"alg": "RS256", "kid": 1}, claims()), "unknown key id"),
    "kid a list": (lambda k: forge({"alg": "RS256", "kid": ["k1"]}, claims()), "unknown key id"),
    "tampered payload": (_tampered, "signature invalid"),
    "signed with another key under a known kid": (
        lambda k: sign(k.private["rsa2"], "RS256", kid="k1"),
        "signature invalid",
    ),
    "ES256 token for an RS256-pinned issuer": (
        lambda k: sign(k.private["p256"], "ES256", kid="k2"),
        "algorithm not allowed",
    ),
    "oversized": (_rs(blob="x" * 9000), "token too large"),
    "empty": (lambda k: "", "malformed token"),
    "garbage": (lambda k: "not a token at all", "malformed token"),
    "two parts": (
        lambda k: ".".join(sign(k.private["rsa"], "RS256").split(".")[:2]),
        "malformed token",
    ),
    "five parts (JWE)": (lambda k: "a.b.c.d.e", "malformed token"),
    "dots only": (lambda k: "..", "malformed token"),
    "bad base64": (lambda k: "eyJ!.eyJ.abc", "malformed token"),
    "non-ascii": (lambda k: "é.é.é", "malformed token"),
    "header not json": (lambda k: f"{b64(b'{nope')}.{b64(claims())}.AAAA", "malformed token"),
    "header a json list": (lambda k: f"{b64(b'[1]')}.{b64(claims())}.AAAA", "malformed token"),
    "payload a json string": (
        lambda k: f"{b64({'alg': 'RS256'})}.{b64(json.dumps('x').encode())}.AAAA",
        "malformed token",
    ),
    "no alg": (lambda k: forge({"typ": "JWT"}, claims()), "malformed token"),
    "crit header": (
        lambda k: forge({"alg": "RS256", "crit": ["exp"]}, claims()),
        "malformed token",
    ),
    "signature not base64url": (lambda k: sign(k.private["rsa"], "RS256") + "=", "malformed token"),
    "typ of another kind of JWT": (
        lambda k: forge({"alg": "RS256", "typ": "logout+jwt"}, claims()),
        "token type not accepted",
    ),
}


@pytest.mark.parametrize(("build", "reason"), ATTACKS.values(), ids=ATTACKS.keys())
async def test_the_attack_corpus_is_refused_with_its_reason(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys, build: Build, reason: str
) -> None:
    verifier = make_verifier(algorithms=("RS256",), refetch_interval=0)
    token = build(keys)
    exc = await rejection(verifier, token)
    assert_clean(exc, token, reason)
    assert set(idp.hits) <= {"/jwks"}  # a kid is never a path or a URL


async def test_hs256_signed_with_the_rsa_public_key_is_refused_by_pinning(
    make_verifier: MakeVerifier, keys: Keys
) -> None:
    """The classic HS/RS confusion: the issuer is pinned to RS256, so HS256 is never tried."""
    verifier = make_verifier(algorithms=("RS256",), keys={"k1": keys.pem("rsa")})
    token = _hs256_with_rsa_public_pem(keys)
    exc = await rejection(verifier, token)
    assert exc.message == "algorithm not allowed"


async def test_a_token_for_issuer_a_signed_with_issuer_bs_key_is_refused(
    make_verifier: MakeVerifier, keys: Keys
) -> None:
    other = IssuerSpec(OTHER_ISSUER, ("RS256",), keys={"b1": keys.pem("rsa2")})
    verifier = make_verifier(other, algorithms=("RS256",))
    assert await verifier.verify(sign(keys.private["rsa2"], "RS256", kid="b1", iss=OTHER_ISSUER))
    exc = await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid="b1"))
    assert exc.message == "unknown key id"  # B's kid is not in A's key set
    exc = await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid="k1"))
    assert exc.message == "signature invalid"  # A's kid, B's key


async def test_no_rejection_and_no_log_line_carries_token_material(
    make_verifier: MakeVerifier, keys: Keys, auth_log: list[logging.LogRecord]
) -> None:
    verifier = make_verifier(algorithms=("RS256",), refetch_interval=0)
    tokens = [build(keys) for build, _ in ATTACKS.values()]
    for token in tokens:
        with pytest.raises(Unauthorized):
            await verifier.verify(token)
    await verifier.verify(sign(keys.private["rsa"], "RS256"))
    logged = " ".join(f"{r.getMessage()} {vars(r)}" for r in auth_log)
    assert "bearer token rejected" in logged
    for token in tokens:
        for part in (p for p in token.split(".") if len(p) > 8):
            assert part not in logged


# --------------------------------------------------------------------------- claims


@pytest.mark.parametrize(
    ("overrides", "scopes"),
    [
        ({"scope": "a b  c"}, {"a", "b", "c"}),
        ({"scope": None, "scp": ["a", "b"]}, {"a", "b"}),
        ({"scope": "a", "scp": ["b"]}, {"a", "b"}),
        ({"scope": None}, set()),
    ],
)
async def test_scopes_are_the_union_of_scope_strings_and_scp_lists(
    make_verifier: MakeVerifier, keys: Keys, overrides: dict[str, Any], scopes: set[str]
) -> None:
    principal = await make_verifier().verify(sign(keys.private["rsa"], "RS256", **overrides))
    assert principal.scopes == frozenset(scopes)


async def test_custom_tenant_and_scope_claims(make_verifier: MakeVerifier, keys: Keys) -> None:
    verifier = make_verifier(tenant_claim="org", scope_claims=("permissions",))
    token = sign(keys.private["rsa"], "RS256", org="globex", permissions=["x"], tenant=None)
    principal = await verifier.verify(token)
    assert (principal.tenant, principal.scopes) == ("globex", frozenset({"x"}))
    principal = await make_verifier().verify(sign(keys.private["rsa"], "RS256", tenant=None))
    assert principal.tenant is None


async def test_client_credentials_tokens_without_sub_use_the_client_id(
    make_verifier: MakeVerifier, keys: Keys
) -> None:
    token = sign(keys.private["rsa"], "RS256", sub=None, client_id="svc-7")
    assert (await make_verifier().verify(token)).subject == "svc-7"
    exc = await rejection(make_verifier(), sign(keys.private["rsa"], "RS256", sub=None))
    assert exc.message == "token has no subject"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"tenant": 7}, "invalid tenant claim"),
        ({"scope": 7}, "invalid scope claim"),
        ({"scope": None, "scp": ["a", 1]}, "invalid scp claim"),
        ({"nbf": True}, "invalid nbf claim"),
    ],
)
async def test_claims_of_the_wrong_type_are_refused(
    make_verifier: MakeVerifier, keys: Keys, overrides: dict[str, Any], reason: str
) -> None:
    exc = await rejection(make_verifier(), sign(keys.private["rsa"], "RS256", **overrides))
    assert exc.message == reason


async def test_issuer_of_peeks_without_verifying(make_verifier: MakeVerifier, keys: Keys) -> None:
    verifier = make_verifier()
    assert verifier.issuer_of(sign(keys.private["rsa2"], "RS256", iss="x")) == "x"
    assert verifier.issuer_of("garbage") is None
    assert verifier.issuer_of(sign(keys.private["rsa"], "RS256", iss=None)) is None


# --------------------------------------------------------------------------- JWKS refetch


async def test_an_unknown_kid_refetches_once_even_under_concurrency(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier(refetch_interval=30)
    assert await verifier.verify(sign(keys.private["rsa"], "RS256"))
    assert idp.jwks_fetches == 1
    token = sign(keys.private["rsa2"], "RS256", kid="rotated")
    results = await asyncio.gather(
        *(verifier.verify(token) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthorized) and r.message == "unknown key id" for r in results)
    assert idp.jwks_fetches == 2
    await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid="another"))
    assert idp.jwks_fetches == 2  # within the interval: no more fetches


async def test_concurrent_requests_share_one_in_flight_fetch(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier(refetch_interval=0)  # only single flight limits the fetches here
    token = sign(keys.private["rsa"], "RS256")
    await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
    assert idp.jwks_fetches == 1  # the first load, shared
    unknown = sign(keys.private["rsa2"], "RS256", kid="rotated")
    results = await asyncio.gather(
        *(verifier.verify(unknown) for _ in range(20)), return_exceptions=True
    )
    assert all(isinstance(r, Unauthorized) for r in results)
    assert idp.jwks_fetches == 2  # one refetch, shared


async def test_a_rotated_key_verifies_after_one_refetch(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier()
    assert await verifier.verify(sign(keys.private["rsa"], "RS256"))
    idp.jwks = {"keys": [keys.jwk("rsa2", "k9"), *idp.jwks["keys"]]}
    token = sign(keys.private["rsa2"], "RS256", kid="k9")
    results = await asyncio.gather(*(verifier.verify(token) for _ in range(20)))
    assert {r.subject for r in results} == {"client-1"}
    assert idp.jwks_fetches == 2


async def test_the_first_fetch_is_not_followed_by_a_refetch(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier(refetch_interval=0)
    await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid="nope"))
    assert idp.jwks_fetches == 1
    await rejection(verifier, sign(keys.private["rsa2"], "RS256", kid="nope"))
    assert idp.jwks_fetches == 2  # interval 0: every unknown kid may refetch


async def test_a_failed_fetch_keeps_the_last_good_keys(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys, auth_log: list[logging.LogRecord]
) -> None:
    verifier = make_verifier(jwks_ttl=1e-9, refetch_interval=0, cache_size=0)
    assert await verifier.verify(sign(keys.private["rsa"], "RS256"))
    for failure in ("status", "json", "shape", "no usable key", "too large"):
        idp.fail = failure == "status"
        idp.body = {
            "status": None,
            "json": b"{not json",
            "shape": b'{"keys": {}}',
            "no usable key": b'{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',
            "too large": b'{"keys": [], "pad": "' + b"x" * (2 << 20) + b'"}',
        }[failure]
        before = idp.jwks_fetches
        assert await verifier.verify(sign(keys.private["rsa"], "RS256", jti=failure))
        assert idp.jwks_fetches == before + 1, failure
    assert sum(r.getMessage() == "JWKS fetch failed" for r in auth_log) == 5


async def test_a_scheduled_refresh_in_flight_holds_up_no_other_request(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    verifier = make_verifier(jwks_ttl=1e-9, cache_size=0)
    assert await verifier.verify(sign(keys.private["rsa"], "RS256"))
    idp.gate = asyncio.Event()
    refreshing = asyncio.create_task(verifier.verify(sign(keys.private["rsa"], "RS256", jti="a")))
    await idp.waiting.wait()
    async with asyncio.timeout(10):  # a deadlock guard, not a speed assertion
        assert await verifier.verify(sign(keys.private["rsa"], "RS256", jti="b"))
    assert not refreshing.done()
    idp.gate.set()
    assert await refreshing
    assert idp.jwks_fetches == 2


async def test_no_key_set_at_all_is_401_key_set_unavailable(
    make_verifier: MakeVerifier, idp: FakeIdP, keys: Keys
) -> None:
    idp.fail = True
    verifier = make_verifier(refetch_interval=30)
    token = sign(keys.private["rsa"], "RS256")
    exc = await rejection(verifier, token)
    assert_clean(exc, token, "key set unavailable")
    await rejection(verifier, token)
    assert idp.jwks_fetches == 1  # a failed fetch is not retried at request rate
    idp.fail = False
    assert await make_verifier(refetch_interval=30).verify(token)


async def test_the_transport_failing_is_401_not_500(keys: Keys) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as client:
        spec = IssuerSpec(ISSUER, ("RS256",), jwks_url=f"{ISSUER}/jwks")
        verifier = JWTVerifier([spec], client)
        exc = await rejection(verifier, sign(keys.private["rsa"], "RS256"))
    assert exc.message == "key set unavailable"


# --------------------------------------------------------------------------- cache


@pytest.fixture
def rsa_verifications(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Counts RSA signature checks (a spy on PyJWT's RSAAlgorithm.verify)."""
    calls: Counter[str] = Counter()
    original = RSAAlgorithm.verify

    def spy(self: RSAAlgorithm, msg: bytes, key: Any, sig: bytes) -> bool:
        calls["verify"] += 1
        return original(self, msg, key, sig)

    monkeypatch.setattr(RSAAlgorithm, "verify", spy)
    return calls


async def test_a_cache_hit_skips_the_crypto_but_still_enforces_exp(
    make_verifier: MakeVerifier, keys: Keys, rsa_verifications: Counter[str]
) -> None:
    now = [time.time()]
    verifier = make_verifier(leeway=5, clock=lambda: now[0])
    token = sign(keys.private["rsa"], "RS256", exp=int(now[0]) + 60)
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert rsa_verifications["verify"] == 1
    now[0] += 60 + 5
    exc = await rejection(verifier, token)
    assert exc.message == "token expired"
    assert rsa_verifications["verify"] == 1  # refused from the cache entry itself
    exc = await rejection(verifier, token)
    assert exc.message == "token expired"


async def test_the_cache_is_bounded_and_keyed_by_digest(
    make_verifier: MakeVerifier, keys: Keys, rsa_verifications: Counter[str]
) -> None:
    verifier = make_verifier(cache_size=2)
    tokens = [sign(keys.private["rsa"], "RS256", jti=str(i)) for i in range(3)]
    for token in tokens:
        await verifier.verify(token)
    await verifier.verify(tokens[0])  # evicted (least recently used): verified again
    assert rsa_verifications["verify"] == 4
    await verifier.verify(tokens[2])
    assert rsa_verifications["verify"] == 4
    held = repr(vars(verifier)) if hasattr(verifier, "__dict__") else ""
    assert not any(token.split(".")[2] in held for token in tokens)


# --------------------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"algorithms": ("none",)}, "algorithms must be"),
        ({"algorithms": ()}, "algorithms must be"),
        ({"algorithms": ("HS256", "RS256"), "secret": SECRETS["HS256"]}, "cannot be mixed"),
        ({"algorithms": ("HS512",), "secret": b"short" * 4}, "RFC 7518"),
        ({"algorithms": ("HS256",)}, "needs a secret"),
        ({"algorithms": ("HS256",), "secret": SECRETS["HS256"], "discovery": True}, "environment"),
        ({"algorithms": ("RS256",), "secret": SECRETS["HS256"]}, "fits none"),
        ({"algorithms": ("RS256",), "audience": AUDIENCE, "discovery": True}, "not a string"),
        ({"algorithms": ("RS256",), "jwks_url": "http://x/jwks", "discovery": True}, "not both"),
        ({"algorithms": ("ES256",), "keys": {"k": "not a pem"}}, "keys"),
    ],
)
async def test_bad_issuer_configuration_names_the_issuer_and_field(
    kwargs: dict[str, Any], message: str, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match=message) as info:
        JWTVerifier([IssuerSpec(ISSUER, **kwargs)], http)
    assert ISSUER in str(info.value)


async def test_a_static_key_must_fit_a_pinned_algorithm(
    keys: Keys, http: httpx.AsyncClient
) -> None:
    with pytest.raises(ValueError, match="fits none"):
        JWTVerifier([IssuerSpec(ISSUER, ("ES384",), keys={"k": keys.pem("p256")})], http)
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    with pytest.raises(ValueError, match="1024 bits"):
        JWTVerifier([IssuerSpec(ISSUER, ("RS256",), keys={"k": small})], http)

"""The auth policy on its own: a call in, the caller (or a 400/401/403) out."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from gateway.auth.authenticator import Caller
from gateway.auth.jwt import Principal
from gateway.auth.keys import make_key
from gateway.config.live import Runtime, Services
from gateway.errors import BadRequest, Forbidden, Unauthorized
from gateway.store import Tenant
from policies.auth import AuthPolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import SECRET, Downstream, make_call, toy_routes

pytestmark = pytest.mark.anyio


async def auth_policy(make_runtime: MakeRuntime, section: str = "auth: {}") -> AuthPolicy:
    runtime: Runtime = await make_runtime(toy_routes(extra=section))
    policy = AuthPolicy.build(runtime)
    assert policy is not None
    return policy


async def new_key(
    services: Services,
    *,
    key_scopes: Sequence[str] = ("*",),
    tenant_scopes: Sequence[str] = (),
    models: Sequence[str] = (),
) -> str:
    await services.store.put_tenant(
        Tenant("acme", scopes=tuple(tenant_scopes), models=tuple(models))
    )
    made = make_key(SECRET, tenant="acme", scopes=tuple(key_scopes))
    await services.store.put_key(made.record)
    return made.key


async def test_no_auth_section_builds_no_auth_step(make_runtime: MakeRuntime) -> None:
    assert AuthPolicy.build(await make_runtime(toy_routes())) is None


async def test_no_credentials_when_required_is_a_401_with_a_challenge(
    make_runtime: MakeRuntime,
) -> None:
    policy, downstream, call = await auth_policy(make_runtime), Downstream(), make_call()
    with pytest.raises(Unauthorized) as raised:
        await policy(call, downstream)
    assert raised.value.status == 401
    assert raised.value.headers["WWW-Authenticate"].startswith("Bearer ")
    assert call.auth_failure == "missing_credentials"
    assert call.caller is None
    assert downstream.calls == []


async def test_no_credentials_pass_anonymously_when_not_required(
    make_runtime: MakeRuntime,
) -> None:
    policy = await auth_policy(make_runtime, "auth: {required: false}")
    downstream, call = Downstream(), make_call()
    reply = await policy(call, downstream)
    assert downstream.calls == [call]
    assert reply.status == 200
    assert call.caller is None
    assert call.auth_failure is None


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
async def test_a_valid_key_sets_the_caller(
    make_runtime: MakeRuntime, services: Services, header: str
) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(services, key_scopes=["predict:*"])
    value = key if header == "X-API-Key" else f"Bearer {key}"
    downstream, call = Downstream(), make_call(headers=[(header, value)])
    await policy(call, downstream)
    assert downstream.calls == [call]
    assert call.caller is not None
    assert call.caller.principal.via == "api_key"
    assert call.caller.principal.scopes == {"predict:*"}
    assert call.tenant == "acme"
    assert call.caller.tenant is not None
    assert call.caller.tenant.name == "acme"
    assert call.auth_failure is None


async def test_the_tenants_scopes_narrow_the_keys(
    make_runtime: MakeRuntime, services: Services
) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(
        services, key_scopes=["predict:*", "metadata:*"], tenant_scopes=["predict:m"]
    )
    downstream = Downstream()
    predict = make_call(headers=[("X-API-Key", key)])
    await policy(predict, downstream)
    assert predict.caller is not None
    assert predict.caller.principal.scopes == {"predict:m"}
    describe = make_call(kind="metadata", headers=[("X-API-Key", key)])
    with pytest.raises(Forbidden):  # the key says metadata:*, its tenant does not
        await policy(describe, downstream)
    assert describe.auth_failure == "forbidden"
    assert downstream.calls == [predict]


async def test_a_gateway_token_sets_the_caller_narrowed_by_its_tenant(
    make_runtime: MakeRuntime, services: Services
) -> None:
    policy = await auth_policy(make_runtime)
    await services.store.put_tenant(Tenant("acme", scopes=("predict:m",)))
    token, _ = policy.auth.tokens.issue("client-1", "acme", ["predict:*", "metadata:*"])
    downstream = Downstream()
    call = make_call(headers=[("Authorization", f"Bearer {token}")])
    await policy(call, downstream)
    assert downstream.calls == [call]
    assert call.caller is not None
    assert call.caller.principal.via == "jwt"
    assert call.caller.principal.scopes == {"predict:m"}
    assert call.tenant == "acme"
    await services.store.put_tenant(Tenant("globex", disabled=True))
    disabled, _ = policy.auth.tokens.issue("client-2", "globex", ["*"])
    refused = make_call(headers=[("Authorization", f"Bearer {disabled}")])
    with pytest.raises(Unauthorized, match="disabled"):
        await policy(refused, downstream)
    assert refused.auth_failure == "invalid_credentials"


async def test_a_missing_scope_is_a_403(make_runtime: MakeRuntime, services: Services) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(services, key_scopes=["predict:other"])
    downstream, call = Downstream(), make_call(headers=[("X-API-Key", key)])
    with pytest.raises(Forbidden) as raised:
        await policy(call, downstream)
    assert raised.value.status == 403
    assert "predict:m" in raised.value.message
    assert call.auth_failure == "forbidden"
    assert call.caller is None  # only an authorized caller is handed on
    assert downstream.calls == []


async def test_pinning_needs_the_pin_scope(make_runtime: MakeRuntime, services: Services) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(services, key_scopes=["predict:m"])
    downstream = Downstream()
    await policy(make_call(headers=[("X-API-Key", key)]), downstream)
    with pytest.raises(Forbidden, match="pin:m"):
        await policy(make_call(headers=[("X-API-Key", key)], pin="2"), downstream)
    assert len(downstream.calls) == 1


async def test_a_tenant_limited_to_other_models_is_refused(
    make_runtime: MakeRuntime, services: Services
) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(services, models=["fraud-*"])
    downstream = Downstream()
    call = make_call(headers=[("X-API-Key", key)])
    with pytest.raises(Forbidden, match="may not use model 'm'"):
        await policy(call, downstream)
    assert call.auth_failure == "forbidden"
    allowed = make_call("fraud-v", headers=[("X-API-Key", key)])
    await policy(allowed, downstream)
    assert downstream.calls == [allowed]


@pytest.mark.parametrize("header", ["X-API-Key", "Authorization"])
async def test_a_credential_header_sent_twice_is_a_400(
    make_runtime: MakeRuntime, services: Services, header: str
) -> None:
    policy = await auth_policy(make_runtime)
    key = await new_key(services)
    value = key if header == "X-API-Key" else f"Bearer {key}"
    downstream = Downstream()
    call = make_call(headers=[(header, value), (header.lower(), value)])
    with pytest.raises(BadRequest) as raised:
        await policy(call, downstream)
    assert raised.value.status == 400
    assert call.auth_failure == "bad_request"
    assert call.caller is None
    assert downstream.calls == []


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", "gk_0123456789abcdef_" + "A" * 43)],  # well formed, unknown
        [("X-API-Key", "not-a-key")],
        [("Authorization", "Basic dXNlcjpwYXNz")],
    ],
    ids=["unknown-key", "malformed-key", "basic-scheme"],
)
async def test_bad_credentials_are_a_401_even_when_not_required(
    make_runtime: MakeRuntime, headers: list[tuple[str, str]]
) -> None:
    policy = await auth_policy(make_runtime, "auth: {required: false}")
    downstream, call = Downstream(), make_call(headers=headers)
    with pytest.raises(Unauthorized) as raised:
        await policy(call, downstream)
    assert "WWW-Authenticate" in raised.value.headers
    assert call.auth_failure == "invalid_credentials"
    assert downstream.calls == []


async def test_a_jobs_replay_is_authorized_again_not_authenticated(
    make_runtime: MakeRuntime, services: Services
) -> None:
    """A job's caller was authenticated at submit: its credentials (here: none at all, as a
    revoked or expired key would be) are not checked again, its scopes are."""
    policy = await auth_policy(make_runtime)
    principal = Principal("k1", "acme", frozenset({"predict:m"}), "api-key", None, "api_key")
    downstream = Downstream()
    call = make_call()
    call.origin, call.caller = "job", Caller(principal, Tenant("acme"))
    await policy(call, downstream)
    assert downstream.calls == [call]
    pinned = make_call(pin="2")
    pinned.origin, pinned.caller = "job", Caller(principal, Tenant("acme"))
    with pytest.raises(Forbidden, match="pin:m"):
        await policy(pinned, downstream)
    assert pinned.auth_failure == "forbidden"
    anonymous = make_call()
    anonymous.origin = "job"
    with pytest.raises(Unauthorized):
        await policy(anonymous, downstream)
    assert len(downstream.calls) == 1

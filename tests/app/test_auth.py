"""Authentication and authorization through the running app: keys, scopes, tenants, OAuth2.

Runs against the in-memory store and a real Redis alike; the backend is a counting fake, so
tests can prove a refused call never reached it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.fakes import FakeReplica, forwarded
from tests.support import ADMIN, ADMIN_TOKEN, V2, auth_routes, error_of, free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gateway(
    start_gateway: StartGateway, backend: FakeReplica, store_settings: dict[str, Any]
) -> RunningGateway:
    return await start_gateway(
        auth_routes(backend.url),
        admin_token=ADMIN_TOKEN,
        secret="server-secret-" + uuid.uuid4().hex,
        **store_settings,
    )


async def make_key(gateway: RunningGateway, *scopes: str, **tenant: Any) -> str:
    name = tenant.pop("name", "t-" + uuid.uuid4().hex[:8])
    created = await gateway.client.post(
        "/admin/tenants", json={"name": name, **tenant}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    key = await gateway.client.post(
        f"/admin/tenants/{name}/keys", json={"scopes": list(scopes)}, headers=ADMIN
    )
    assert key.status_code == 201, key.text
    text: str = key.json()["key"]
    return text


async def predict(gateway: RunningGateway, key: str | None, path: str = "") -> httpx.Response:
    headers = {"X-API-Key": key} if key else {}
    return await gateway.client.post(f"/v2/models/linear{path}/infer", json=V2, headers=headers)


async def test_no_credentials_is_401_and_never_reaches_the_backend(
    gateway: RunningGateway, backend: FakeReplica
) -> None:
    for response in (
        await predict(gateway, None),
        await gateway.client.get("/v2/models/linear"),
        await gateway.client.get("/v2/models/nope"),  # unknown names are not revealed either
        await gateway.client.get("/raw/anything"),
        await predict(gateway, "gk_0123456789abcdef_" + "x" * 43),
        await predict(gateway, "not-a-key"),
    ):
        assert response.status_code == 401, response.text
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
        assert error_of(response)[0] == "unauthorized"
    assert forwarded(backend) == []


async def test_a_key_with_the_scope_predicts(gateway: RunningGateway, backend: FakeReplica) -> None:
    key = await make_key(gateway, "predict:linear")
    response = await predict(gateway, key)
    assert response.status_code == 200, response.text
    assert response.json()["outputs"][0]["data"] == [7]
    bearer = await gateway.client.post(
        "/v2/models/linear/infer", json=V2, headers={"Authorization": f"Bearer {key}"}
    )
    assert bearer.status_code == 200
    assert forwarded(backend) == ["/v2/models/linear/infer"] * 2
    assert "X-API-Key" not in backend.seen[-1].headers  # credentials stay at the gateway


@pytest.mark.parametrize(
    ("scopes", "path", "status"),
    [
        (["predict:linear"], "", 200),
        (["predict:other"], "", 403),
        (["predict:*"], "", 200),
        (["*"], "/versions/2", 200),
        (["predict:linear"], "/versions/2", 403),  # pinning needs pin:linear
        (["predict:linear", "pin:linear"], "/versions/2", 200),
        (["metadata:linear"], "", 403),
    ],
)
async def test_scopes_decide(
    gateway: RunningGateway, scopes: list[str], path: str, status: int
) -> None:
    key = await make_key(gateway, *scopes)
    response = await predict(gateway, key, path)
    assert response.status_code == status, response.text
    if status == 403:
        assert error_of(response)[1].startswith("missing scope")


async def test_the_version_header_is_a_pin_too(gateway: RunningGateway) -> None:
    key = await make_key(gateway, "predict:linear")
    response = await gateway.client.post(
        "/v2/models/linear/infer", json=V2, headers={"X-API-Key": key, "X-Model-Version": "2"}
    )
    assert response.status_code == 403


async def test_tenant_limits_models_and_scopes(gateway: RunningGateway) -> None:
    limited = await make_key(gateway, "*", models=["other"])
    assert (await predict(gateway, limited)).status_code == 403
    ceiling = await make_key(gateway, "*", scopes=["predict:linear"])
    assert (await predict(gateway, ceiling)).status_code == 200
    meta = await gateway.client.get("/v2/models/linear", headers={"X-API-Key": ceiling})
    assert meta.status_code == 403


async def test_revocation_and_disabled_tenants(gateway: RunningGateway) -> None:
    name = "t-" + uuid.uuid4().hex[:8]
    key = await make_key(gateway, "predict:linear", name=name)
    assert (await predict(gateway, key)).status_code == 200
    key_id = key.split("_")[1]
    revoked = await gateway.client.post(f"/admin/keys/{key_id}/revoke", headers=ADMIN)
    assert revoked.json()["status"] == "revoked"
    response = await predict(gateway, key)
    assert response.status_code == 401
    assert "revoked" in error_of(response)[1]

    other = await make_key(gateway, "predict:linear", name=name + "-b")
    assert (await predict(gateway, other)).status_code == 200
    await gateway.client.patch(f"/admin/tenants/{name}-b", json={"disabled": True}, headers=ADMIN)
    assert (await predict(gateway, other)).status_code == 401


async def test_rotation_overlaps_and_is_idempotent(gateway: RunningGateway) -> None:
    name = "t-" + uuid.uuid4().hex[:8]
    old = await make_key(gateway, "predict:linear", name=name)
    old_id = old.split("_")[1]
    headers = {**ADMIN, "Idempotency-Key": "rotate-" + uuid.uuid4().hex}
    first = await gateway.client.post(
        f"/admin/keys/{old_id}/rotate", json={"grace": "2s"}, headers=headers
    )
    again = await gateway.client.post(
        f"/admin/keys/{old_id}/rotate", json={"grace": "2s"}, headers=headers
    )
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["key"] == first.json()["key"]
    new = first.json()["key"]
    listed = (await gateway.client.get(f"/admin/tenants/{name}/keys", headers=ADMIN)).json()
    assert sorted(k["status"] for k in listed["keys"]) == ["active", "rotating"]
    assert (await predict(gateway, old)).status_code == 200  # still inside the grace
    assert (await predict(gateway, new)).status_code == 200
    await asyncio.sleep(2.2)
    assert (await predict(gateway, old)).status_code == 401
    assert (await predict(gateway, new)).status_code == 200


async def test_admin_api_validates_and_audits(gateway: RunningGateway) -> None:
    bad = await gateway.client.post("/admin/tenants", json={"name": "bad name!"}, headers=ADMIN)
    assert bad.status_code == 422
    plan = await gateway.client.post(
        "/admin/tenants", json={"name": "p-" + uuid.uuid4().hex[:6], "plan": "gold"}, headers=ADMIN
    )
    assert plan.status_code == 422
    assert "unknown plan 'gold'" in error_of(plan)[1]
    assert (await gateway.client.get("/admin/tenants")).status_code == 401
    name = "t-" + uuid.uuid4().hex[:8]
    key = await make_key(gateway, "predict:linear", name=name, plan="free")
    duplicate = await gateway.client.post("/admin/tenants", json={"name": name}, headers=ADMIN)
    assert duplicate.status_code == 409
    entries = (await gateway.client.get("/admin/audit?limit=10", headers=ADMIN)).json()["entries"]
    actions = [(e["action"], e["actor"]) for e in entries[:2]]
    assert actions == [("key.create", "admin-token"), ("tenant.create", "admin-token")]
    assert key not in str(entries)
    assert key.split("_", 2)[2] not in str(entries)


async def test_an_admin_scoped_key_can_use_the_admin_api(gateway: RunningGateway) -> None:
    admin_key = await make_key(gateway, "admin")
    plain_key = await make_key(gateway, "predict:*")
    ok = await gateway.client.get("/admin/tenants", headers={"X-API-Key": admin_key})
    assert ok.status_code == 200
    refused = await gateway.client.get("/admin/tenants", headers={"X-API-Key": plain_key})
    assert refused.status_code == 403


async def test_oauth2_client_credentials_for_tenants(gateway: RunningGateway) -> None:
    key = await make_key(gateway, "predict:linear", "metadata:linear")
    _, key_id, secret = key.split("_", 2)
    basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
    issued = await gateway.client.post(
        "/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "predict:linear"},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert issued.status_code == 200, issued.text
    body = issued.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "predict:linear"
    assert issued.headers["Cache-Control"] == "no-store"
    token = body["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    assert (
        await gateway.client.post("/v2/models/linear/infer", json=V2, headers=bearer)
    ).status_code == 200
    assert (await gateway.client.get("/v2/models/linear", headers=bearer)).status_code == 403
    jwks = (await gateway.client.get("/.well-known/jwks.json")).json()
    assert [k["alg"] for k in jwks["keys"]] == ["EdDSA"]

    for data, headers, status, error in [
        (
            {"grant_type": "client_credentials"},
            {"Authorization": "Basic " + base64.b64encode(f"{key_id}:wrong".encode()).decode()},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password"},
            {"Authorization": f"Basic {basic}"},
            400,
            "unsupported_grant_type",
        ),
        (
            {"grant_type": "client_credentials", "scope": "admin"},
            {"Authorization": f"Basic {basic}"},
            400,
            "invalid_scope",
        ),
        (
            {"grant_type": "client_credentials", "client_id": key_id, "client_secret": secret},
            {},
            200,
            None,
        ),
    ]:
        response = await gateway.client.post("/oauth2/token", data=data, headers=headers)
        assert response.status_code == status, response.text
        if error:
            assert response.json()["error"] == error


async def test_the_cli_manages_tenants_and_keys(gateway: RunningGateway) -> None:
    async def cli(*args: str) -> tuple[int, str, str]:
        process = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).with_name("gateway")),
            *args,
            "--admin-url",
            gateway.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN},
        )
        out, err = await process.communicate()
        return process.returncode or 0, out.decode(), err.decode()

    name = "cli-" + uuid.uuid4().hex[:6]
    code, out, _ = await cli("tenants", "create", name, "--plan", "free", "--models", "linear")
    assert code == 0, out
    code, out, err = await cli("keys", "create", name, "--scopes", "predict:linear")
    assert code == 0
    assert "shown this once" in err
    key = json.loads(out)["key"]
    assert (await predict(gateway, key)).status_code == 200
    code, out, _ = await cli("keys", "rotate", key.split("_")[1], "--grace", "1h")
    new_key = json.loads(out)["key"]
    assert (await predict(gateway, new_key)).status_code == 200
    code, out, _ = await cli("keys", "revoke", key.split("_")[1])
    assert code == 0
    assert (await predict(gateway, key)).status_code == 401
    code, _, err = await cli("tenants", "show", "nobody-" + uuid.uuid4().hex[:4])
    assert code == 1
    assert "error 404" in err


async def test_readiness_declares_a_store_that_is_down(
    start_gateway: StartGateway, backend: FakeReplica
) -> None:
    gateway = await start_gateway(
        auth_routes(backend.url),
        secret="s",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
    )
    ready = await gateway.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["store"] == "unreachable"
    response = await gateway.client.post(
        "/v2/models/linear/infer", json=V2, headers={"X-API-Key": "gk_0123456789abcdef_" + "a" * 43}
    )
    assert response.status_code == 503
    assert error_of(response)[0] == "store_unavailable"


@pytest.mark.parametrize(
    ("header", "valid", "forged"),
    [
        ("X-API-Key", "{key}", "gk_0123456789abcdef_" + "F" * 43),
        ("Authorization", "Bearer {key}", "Bearer forged.token.value"),
    ],
    ids=["api-key", "authorization"],
)
@pytest.mark.parametrize("order", ["valid-first", "forged-first"])
async def test_a_valid_and_a_forged_credential_together_are_refused(
    gateway: RunningGateway, backend: FakeReplica, header: str, valid: str, forged: str, order: str
) -> None:
    """Issue 12, defect 5: a proxy that reads the last value would disagree with a gateway that
    reads the first about who is calling; a credential header sent twice is refused, whichever
    value comes first, and the call never reaches the backend."""
    key = await make_key(gateway, "predict:linear")
    values = [valid.format(key=key), forged]
    if order == "forged-first":
        values.reverse()
    headers = [(header, value) for value in values]
    response = await gateway.client.post("/v2/models/linear/infer", json=V2, headers=headers)
    assert response.status_code == 400, response.text
    assert "more than once" in error_of(response)[1]
    assert forwarded(backend) == []
    alone = await predict(gateway, key)  # the valid key alone still works
    assert alone.status_code == 200, alone.text


async def test_the_admin_token_sent_twice_is_refused(gateway: RunningGateway) -> None:
    headers = [("Authorization", f"Bearer {ADMIN_TOKEN}"), ("Authorization", "Bearer forged")]
    response = await gateway.client.get("/admin/tenants", headers=headers)
    assert response.status_code in (400, 401), response.text
    assert (await gateway.client.get("/admin/tenants", headers=ADMIN)).status_code == 200

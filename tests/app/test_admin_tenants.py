"""The admin API of tenants, on the edge cases schemathesis found (issue 12)."""

from __future__ import annotations

import pytest

from tests.conftest import StartGateway
from tests.support import ADMIN, ADMIN_TOKEN, error_of, model, routes_yaml, versions

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("field", ["models", "scopes", "metadata", "disabled"])
async def test_a_null_in_a_tenant_patch_is_a_422_naming_the_field(
    start_gateway: StartGateway, field: str
) -> None:
    """``{"scopes": null}`` was a 500 (``tuple(None)``); a tenant's lists, metadata and
    flag cannot be null (``plan`` can: null removes the plan)."""
    routes = routes_yaml(
        {"b": {"kind": "kserve", "urls": ["http://127.0.0.1:9"]}},
        {"m": model(versions("b", "1"))},
        plans={"free": {}},
    )
    gateway = await start_gateway(routes, admin_token=ADMIN_TOKEN)
    created = await gateway.client.post(
        "/admin/tenants", json={"name": "acme", "plan": "free", "scopes": ["a"]}, headers=ADMIN
    )
    assert created.status_code == 201, created.text
    response = await gateway.client.patch("/admin/tenants/acme", json={field: None}, headers=ADMIN)
    assert response.status_code == 422, response.text
    code, message = error_of(response)
    assert code == "invalid_body"
    assert field in message
    cleared = await gateway.client.patch("/admin/tenants/acme", json={"plan": None}, headers=ADMIN)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["plan"] is None
    assert cleared.json()["scopes"] == ["a"]

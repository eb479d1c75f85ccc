"""``/openapi.json`` and ``/docs`` on a running gateway: generated from its routes and table,
per-model schemas, regenerated on reload, what each port shows, and Swagger UI offline."""

from __future__ import annotations

import re
from typing import Any

import jsonschema
import pytest

from tests.conftest import StartGateway
from tests.support import (
    ADMIN,
    ADMIN_TOKEN,
    INPUT0,
    backend,
    demo_routes,
    free_port,
    model,
    routes_yaml,
    versions,
)

pytestmark = pytest.mark.anyio


def _schema_of(doc: dict[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path][method]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    return schema


async def test_the_document_lists_every_route_and_each_models_schema(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), admin_token=ADMIN_TOKEN)
    response = await gateway.client.get("/openapi.json")
    assert response.status_code == 200, response.text
    doc = response.json()
    assert doc["openapi"] == "3.1.0"
    paths = doc["paths"]
    for path in (
        "/v2/models/{model}/infer",
        "/v1/models/{model}:predict",
        "/v2/models/{model}/versions/{version}",
        "/oauth2/token",
        "/healthz",
        "/admin/tenants",
        "/admin/tenants/{name}/keys",
        "/admin/rollouts/{model}/{action}",
    ):
        assert path in paths, path
    assert set(paths["/admin/tenants"]) == {"get", "post"}
    # the demo model's own paths, its inputs as its server's metadata describes them
    infer = _schema_of(doc, "/v2/models/linear/infer")
    [tensor] = [infer["properties"]["inputs"]["items"]]
    assert tensor["properties"]["name"] == {"const": "INPUT0"}
    assert tensor["properties"]["datatype"] == {"const": "FP32"}
    assert "/v2/models/linear/versions/2/infer" in paths
    predict = _schema_of(doc, "/v1/models/linear:predict")
    row = predict["oneOf"][0]["properties"]["instances"]["items"]
    assert row == {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4}
    # errors in each protocol's shape
    assert paths["/v2/models/{model}/infer"]["post"]["responses"]["default"]["content"][
        "application/json"
    ]["schema"] == {"$ref": "#/components/schemas/ProtocolError"}
    assert paths["/admin/tenants"]["get"]["responses"]["default"]["content"]["application/json"][
        "schema"
    ] == {"$ref": "#/components/schemas/GatewayError"}


async def test_a_declared_signature_and_the_security_schemes(
    start_gateway: StartGateway, backend: Any
) -> None:
    declared = versions("fake", "1", inputs=[INPUT0, {**INPUT0, "name": "MASK"}])
    routes = routes_yaml(
        {"fake": {"kind": "kserve", "urls": [backend.url]}},
        {"scored": model(declared), "a.b": model(declared), "a-b": model(declared)},
        auth={"required": False, "api_key_header": "X-Key"},
    )
    gateway = await start_gateway(routes)
    doc = (await gateway.client.get("/openapi.json")).json()
    inputs = _schema_of(doc, "/v2/models/scored/infer")["properties"]["inputs"]
    names = [t["properties"]["name"]["const"] for t in inputs["items"]["anyOf"]]
    assert names == ["INPUT0", "MASK"]
    assert inputs["minItems"] == inputs["maxItems"] == 2
    shape = inputs["items"]["anyOf"][0]["properties"]["shape"]
    assert (shape["minItems"], shape["maxItems"]) == (2, 2)
    assert shape["description"].startswith("[-1, 4]")
    schemes = doc["components"]["securitySchemes"]
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-Key"}
    assert schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"] == "/oauth2/token"
    assert schemes["bearer"]["bearerFormat"] == "JWT"
    assert {} in doc["security"]  # credentials optional: required: false
    ids = [op["operationId"] for item in doc["paths"].values() for op in item.values()]
    assert len(ids) == len(set(ids))  # "a.b" and "a-b" do not share an id


async def test_the_document_follows_a_reload(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), admin_token=ADMIN_TOKEN)
    first = await gateway.client.get("/openapi.json")
    assert "/v2/models/linear/infer" in first.json()["paths"]
    again = await gateway.client.get("/openapi.json")
    assert again.content == first.content  # cached: the same document
    gateway.routes.write_text(demo_routes(demo_backend, name="renamed"), encoding="utf-8")
    reloaded = await gateway.client.post("/admin/config/reload", headers=ADMIN)
    assert reloaded.status_code == 200, reloaded.text
    paths = (await gateway.client.get("/openapi.json")).json()["paths"]
    assert "/v2/models/renamed/infer" in paths
    assert "/v2/models/linear/infer" not in paths


async def test_admin_api_and_models_are_shown_where_they_can_be_reached(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    """Without an admin token or auth section the admin API is not described; with
    ``auth.required`` the public document names no model."""
    open_gateway = await start_gateway(demo_routes(demo_backend))
    doc = (await open_gateway.client.get("/openapi.json")).json()
    assert not any(p.startswith("/admin/") for p in doc["paths"])
    url = demo_backend
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    guarded = routes_yaml(
        {"demo": backend("triton", url)}, {"linear": model(served)}, auth={"required": True}
    )
    locked = await start_gateway(guarded)
    response = await locked.client.get("/openapi.json")
    assert response.status_code == 200  # no credential needed
    doc = response.json()
    assert "/v2/models/{model}/infer" in doc["paths"]
    assert not any("linear" in p for p in doc["paths"])
    assert any(p.startswith("/admin/") for p in doc["paths"])  # auth on: admin is enabled


async def test_with_an_admin_port_only_that_port_describes_the_admin_api(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    """The gateway reads the port a request came in on: a gateway whose admin port is another
    port describes no admin route; one whose admin port is the port asked, all of them (and
    the models even when the table requires credentials)."""
    url = demo_backend
    served = {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")}
    guarded = routes_yaml(
        {"demo": backend("triton", url)}, {"linear": model(served)}, auth={"required": True}
    )
    public = await start_gateway(guarded, admin_token=ADMIN_TOKEN, admin_port=free_port())
    doc = (await public.client.get("/openapi.json")).json()
    assert not any(p.startswith("/admin/") for p in doc["paths"])
    assert "adminToken" not in doc["components"]["securitySchemes"]
    assert not any("linear" in p for p in doc["paths"])
    port = free_port()
    admin = await start_gateway(guarded, admin_token=ADMIN_TOKEN, admin_port=port, port=port)
    doc = (await admin.client.get("/openapi.json")).json()
    assert "/admin/tenants/{name}/keys" in doc["paths"]
    assert "/v2/models/linear/infer" in doc["paths"]


def _schemas(node: Any) -> list[dict[str, Any]]:
    """Every ``schema`` object in the document (bodies, replies, parameters)."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "schema" and isinstance(value, dict):
                found.append(value)
            else:
                found.extend(_schemas(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_schemas(value))
    return found


async def test_every_schema_in_the_document_is_json_schema_2020_12(
    start_gateway: StartGateway, demo_backend: str
) -> None:
    gateway = await start_gateway(demo_routes(demo_backend), admin_token=ADMIN_TOKEN)
    doc = (await gateway.client.get("/openapi.json")).json()
    schemas = _schemas(doc["paths"]) + list(doc["components"]["schemas"].values())
    assert len(schemas) > 100
    for schema in schemas:
        jsonschema.Draft202012Validator.check_schema(schema)
    operation_ids = [
        op["operationId"]
        for item in doc["paths"].values()
        for op in item.values()
        if "operationId" in op
    ]
    assert len(operation_ids) == len(set(operation_ids))


async def test_docs_page_works_offline(start_gateway: StartGateway, demo_backend: str) -> None:
    gateway = await start_gateway(demo_routes(demo_backend))
    page = await gateway.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://", page.text)  # no CDN, no other host
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/docs/swagger-ui-bundle.js" in assets
    for asset in assets:
        response = await gateway.client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 0
    init = await gateway.client.get("/docs/init.js")
    assert '"/openapi.json"' in init.text
    assert "validatorUrl: null" in init.text  # the document is sent to no validator
    missing = await gateway.client.get("/docs/../../etc/passwd")
    assert missing.status_code == 404
    other = await gateway.client.get("/docs/swagger-editor.js")
    assert other.status_code == 404

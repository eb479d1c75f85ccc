"""What each kind of route says in the OpenAPI document: its summary, body, replies, errors.

A route is described by what it is (its path template and method), so a route a frontend adds
is in the document at once; one this module does not know gets a generic JSON description.
Inference and metadata routes take the schemas of the model they are made concrete for
(:class:`ModelPaths`), or the generic tensor schemas on the ``{model}`` templates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from gateway.auth.config import AuthConfig
from gateway.codecs.tensors import Signature
from gateway.edge import openapi_admin, openapi_batches, openapi_jobs
from gateway.edge import openapi_models as schemas
from gateway.edge.http import Route
from gateway.traffic.choose import VERSION_HEADER

Schema = dict[str, Any]

PROTOCOL_ERROR: Schema = {
    "type": "object",
    "description": "The v1/v2 protocols' error: `error` is a string (KServe v2, TF Serving).",
    "required": ["error", "code", "request_id"],
    "properties": {
        "error": {"type": "string"},
        "code": {"type": "string"},
        "request_id": {"type": "string"},
    },
}
GATEWAY_ERROR: Schema = {
    "type": "object",
    "required": ["error", "request_id"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        },
        "request_id": {"type": "string"},
    },
}
OAUTH_ERROR: Schema = {
    "type": "object",
    "description": "RFC 6749 §5.2.",
    "required": ["error"],
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}
_JSON = "application/json"
_ANY: Schema = {}
_NO_AUTH: list[Schema] = []
_MODEL_ROUTES = ("/v1/models/{model}", "/v2/models/{model}")


@dataclass(frozen=True, slots=True)
class ModelPaths:
    """One served version of a model, to make the ``{model}`` routes concrete: its unpinned
    paths carry the default version's schemas, its pinned paths its own."""

    model: str
    version: str
    default: str
    versions: list[str]
    signature: Signature | None

    def path(self, template: str) -> str | None:
        """``template`` for this model (and version), or None when it is not a model route or
        the unpinned paths belong to the default version."""
        if not template.startswith(_MODEL_ROUTES) or any(c in self.model for c in "/{}"):
            return None
        if "{version}" in template:
            if any(c in self.version for c in "/{}"):
                return None
            template = template.replace("{version}", self.version)
        elif self.version != self.default:
            return None
        return template.replace("{model}", self.model)


def requirements(auth: AuthConfig, schemes: Sequence[str]) -> list[Schema]:
    """The document's default security: any one of the callers' schemes, or none at all
    when credentials are optional."""
    found: list[Schema] = [{name: []} for name in schemes if name != "adminToken"]
    return found if auth.required else [*found, {}]


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def _errors(route: Route) -> Schema:
    if route.path == "/oauth2/token":
        schema: Schema = {
            "anyOf": [{"$ref": "#/components/schemas/OAuthError"}, _ref("GatewayError")]
        }
    elif route.errors == "protocol":
        schema = _ref("ProtocolError")
    else:
        schema = _ref("GatewayError")
    return _json(schema, "An error, in the endpoint's protocol shape.")


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def describe(route: Route, method: str, model: ModelPaths | None) -> Schema:
    """The operation object of ``method`` on ``route`` (for ``model`` when given)."""
    path = route.path
    if path.startswith(_MODEL_ROUTES) or model is not None:
        op = _inference(path, model)
    elif path.startswith("/admin/"):
        op = openapi_admin.describe(method, path)
    elif path == "/jobs" or path.startswith("/jobs/"):
        op = openapi_jobs.describe(method, path)
    elif path == "/batches" or path.startswith("/batches/"):
        op = openapi_batches.describe(method, path)
    else:
        op = _OTHER.get(path) or {
            "summary": (route.endpoint.__doc__ or path).strip().split("\n")[0],
            "responses": {"200": _json(_ANY)},
        }
        op = {**op, "responses": dict(op["responses"])}
        op.setdefault("security", _NO_AUTH)
    op["responses"]["default"] = _errors(route)
    return op


def _inference(path: str, model: ModelPaths | None) -> Schema:
    signature = model.signature if model is not None else None
    name = model.model if model is not None else ""
    versions = model.versions if model is not None else []
    tag = "v1 (TF Serving REST)" if path.startswith("/v1/") else "v2 (KServe v2)"
    if name:
        tag = f"model {name}"
    op: Schema = {"tags": [tag]}
    if "{version}" not in path:
        op["parameters"] = [
            {
                "name": VERSION_HEADER,
                "in": "header",
                "required": False,
                "description": "Pin a version (else the model's split or default).",
                "schema": {"enum": versions} if versions else {"type": "string"},
            }
        ]
    if path.endswith(":predict"):
        op["summary"] = "Predict (TF Serving REST: rows or columns)"
        op["requestBody"] = _body(schemas.v1_request(signature))
        op["responses"] = {"200": _json(schemas.V1_RESPONSE), "202": openapi_jobs.ACCEPTED}
        op["parameters"] = [*op.get("parameters", []), *openapi_jobs.SUBMIT_HEADERS]
    elif path.endswith((":classify", ":regress")):
        op["summary"] = "Classify or regress tf.Example features (TF Serving backends)"
        op["requestBody"] = _body(schemas.V1_EXAMPLES)
        op["responses"] = {"200": _json(schemas.V1_RESULTS)}
    elif path.endswith("/infer"):
        op["summary"] = "Infer (KServe v2: JSON, or binary tensor data)"
        op["requestBody"] = _body(schemas.v2_request(signature))
        reply = _json(schemas.v2_response(name, versions, signature))
        binary = {"schema": {"type": "string", "contentMediaType": "application/octet-stream"}}
        reply["content"]["application/octet-stream"] = binary
        op["responses"] = {"200": reply, "202": openapi_jobs.ACCEPTED}
        op["parameters"] = [*op.get("parameters", []), *openapi_jobs.SUBMIT_HEADERS]
    elif path.endswith("/ready"):
        op["summary"] = "Model readiness (200 ready, 503 not)"
        op["responses"] = {"200": _json(schemas.V2_READY)}
    elif path.endswith("/metadata"):
        op["summary"] = "Signature metadata (TF Serving's signature_def)"
        op["responses"] = {"200": _json(schemas.V1_METADATA)}
    elif path.startswith("/v1/"):
        op["summary"] = "Model status (TF Serving), every version or the one pinned"
        op["responses"] = {"200": _json(schemas.V1_STATUS)}
    else:
        op["summary"] = "Model metadata (KServe v2): versions, inputs, outputs"
        op["responses"] = {"200": _json(schemas.v2_metadata(name, signature))}
    return op


def _body(schema: Schema) -> Schema:
    return {"required": True, "content": {_JSON: {"schema": schema}}}


def passthrough(prefix: str, methods: Sequence[str]) -> Schema:
    """A passthrough prefix of routes.yaml: any path below it, forwarded as it is."""
    param = {
        "name": "path",
        "in": "path",
        "required": True,
        "description": f"The rest of the path below {prefix}, forwarded as it is.",
        "schema": {"type": "string"},
    }
    item: Schema = {"parameters": [param]}
    for method in methods:
        item[method.lower()] = {
            "tags": ["passthrough"],
            "summary": f"Forwarded as it is to the backend of {prefix}",
            "operationId": f"{method.lower()}_passthrough_{prefix.strip('/').replace('/', '_')}",
            "responses": {"default": {"description": "The backend's answer, as it is."}},
        }
    return item


_TOKEN_FORM: Schema = {
    "type": "object",
    "required": ["grant_type"],
    "properties": {
        "grant_type": {"const": "client_credentials"},
        "client_id": {"type": "string", "description": "The API key's id."},
        "client_secret": {"type": "string", "description": "The key, or its secret part."},
        "scope": {"type": "string", "description": "Space-separated; at most the key's."},
    },
}
_TOKEN: Schema = {
    "type": "object",
    "required": ["access_token", "token_type", "expires_in", "scope"],
    "properties": {
        "access_token": {"type": "string"},
        "token_type": {"const": "Bearer"},
        "expires_in": {"type": "integer"},
        "scope": {"type": "string"},
    },
}
_SERVER: Schema = {
    "type": "object",
    "required": ["name", "version", "extensions"],
    "properties": {
        "name": {"type": "string"},
        "version": {"type": "string"},
        "extensions": {"type": "array", "items": {"type": "string"}},
    },
}
_EMPTY = {"description": "OK (empty body)"}
_OTHER: dict[str, Schema] = {
    "/v2": {
        "tags": ["v2 (KServe v2)"],
        "summary": "Server metadata",
        "responses": {"200": _json(_SERVER)},
    },
    "/v2/health/live": {
        "tags": ["v2 (KServe v2)"],
        "summary": "Live",
        "responses": {"200": _EMPTY},
    },
    "/v2/health/ready": {
        "tags": ["v2 (KServe v2)"],
        "summary": "Ready",
        "responses": {"200": _EMPTY},
    },
    "/healthz": {
        "tags": ["ops"],
        "summary": "Process alive",
        "responses": {"200": _json({"type": "object", "properties": {"status": {"const": "ok"}}})},
    },
    "/readyz": {
        "tags": ["ops"],
        "summary": "Route table loaded; store reachable",
        "responses": {
            "200": _json(
                {"type": "object", "required": ["status", "config", "last_reload_ok", "store"]}
            )
        },
    },
    "/metrics": {
        "tags": ["ops"],
        "summary": "Prometheus metrics",
        "responses": {
            "200": {
                "description": "The text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
    },
    "/openapi.json": {
        "tags": ["ops"],
        "summary": "This document",
        "responses": {"200": _json({"type": "object", "required": ["openapi", "paths"]})},
    },
    "/docs": {
        "tags": ["ops"],
        "summary": "Swagger UI (local assets)",
        "responses": {
            "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
        },
    },
    "/docs/{asset}": {
        "tags": ["ops"],
        "summary": "Swagger UI's assets",
        "responses": {
            "200": {
                "description": "A script or stylesheet",
                "content": {
                    "text/javascript": {"schema": {"type": "string"}},
                    "text/css": {"schema": {"type": "string"}},
                },
            }
        },
    },
    "/oauth2/token": {
        "tags": ["oauth2"],
        "summary": "OAuth2 client credentials: an API key for a short-lived JWT",
        "requestBody": {
            "required": True,
            "content": {"application/x-www-form-urlencoded": {"schema": _TOKEN_FORM}},
        },
        "responses": {"200": _json(_TOKEN)},
    },
    "/.well-known/jwks.json": {
        "tags": ["oauth2"],
        "summary": "The gateway's public keys (JWKS)",
        "responses": {
            "200": _json(
                {"type": "object", "required": ["keys"], "properties": {"keys": {"type": "array"}}}
            )
        },
    },
}

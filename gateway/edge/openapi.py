"""The OpenAPI 3.1 document of the running gateway, generated from its routes and route table.

Every :class:`~gateway.edge.http.Route` the frontends and the admin API declare becomes a path
with its methods, parameters, responses and errors in the route's protocol shape; every served
model also gets paths of its own (``/v2/models/linear/infer``, each version pinned too) whose
request and reply schemas name its inputs and outputs (``edge.openapi_models``), from
routes.yaml or the server's metadata. The security schemes are those the ``auth:`` section
configures. :class:`OpenAPIDocument` builds the document when it is first asked for and keeps
it for as long as the route table and the signatures it knows are the same, so a reload (or
metadata that arrived) gives the next request a new document, and no request rebuilds it
otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from gateway import __version__
from gateway.codecs.tensors import Signature
from gateway.config.live import Runtime
from gateway.edge import openapi_paths
from gateway.edge.http import Route
from gateway.errors import GatewayError

Schema = dict[str, Any]
Signatures = tuple[tuple[str, str, Signature | None], ...]  # (model, version, signature)
_PARAM = re.compile(r"{(\w+)}")


@dataclass(frozen=True, slots=True)
class View:
    """Who reads the document: with the admin API described, with per-model paths."""

    admin: bool
    models: bool


async def signatures(runtime: Runtime) -> Signatures:
    """Every served version's signature as far as it is known (declared, or the server's
    metadata, cached by the backend); None where the server cannot tell or is down."""
    found: list[tuple[str, str, Signature | None]] = []
    for live in runtime.backends.values():
        for target in live.targets:
            try:
                signature = await live.signature(target)
            except GatewayError:
                signature = None  # no replica answers now: the generic schemas
            found.append((target.model, target.version, signature))
    return tuple(sorted(found, key=lambda f: (f[0], f[1])))


class OpenAPIDocument:
    """The document as JSON bytes, cached per (route table, signatures, view)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        self.routes = tuple(routes)
        self._cached: dict[View, tuple[Runtime, Signatures, bytes]] = {}

    async def render(self, runtime: Runtime, view: View) -> bytes:
        known = await signatures(runtime) if view.models else ()
        cached = self._cached.get(view)
        if cached is not None and cached[0] is runtime and cached[1] == known:
            return cached[2]
        body = orjson.dumps(build(self.routes, runtime, known, view))
        self._cached[view] = (runtime, known, body)
        return body


def build(routes: Sequence[Route], runtime: Runtime, known: Signatures, view: View) -> Schema:
    """The OpenAPI 3.1 document of ``routes`` over ``runtime``'s table, for ``view``."""
    table = runtime.table
    auth = table.auth
    paths: dict[str, Schema] = {}
    for route in routes:
        admin = route.path.startswith("/admin/")
        if admin and not view.admin:
            continue
        for method in route.methods:
            item = paths.setdefault(route.path, {})
            item[method.lower()] = operation(route, method, None)
    if view.models:
        for model, version, signature in known:
            spec = table.models[model]
            model_info = openapi_paths.ModelPaths(
                model, version, spec.default_version, sorted(spec.versions), signature
            )
            for route in routes:
                concrete = model_info.path(route.path)
                if concrete is None:
                    continue
                for method in route.methods:
                    op = operation(route, method, model_info)
                    paths.setdefault(concrete, {})[method.lower()] = op
    for passthrough in table.routes:
        path = f"{passthrough.path}{{path}}"
        paths[path] = openapi_paths.passthrough(passthrough.path, passthrough.methods)
    components: Schema = {
        "schemas": {
            "ProtocolError": openapi_paths.PROTOCOL_ERROR,
            "GatewayError": openapi_paths.GATEWAY_ERROR,
            "OAuthError": openapi_paths.OAUTH_ERROR,
        },
        "securitySchemes": security_schemes(runtime, view),
    }
    description = (
        "Generated from the running gateway's routes and route table "
        f"(config {runtime.loaded.digest[:12]})."
    )
    if not view.models:
        description += (
            " The served models and their inputs are not listed here: the route table"
            " requires authentication."
        )
    _unique_operation_ids(paths)
    document: Schema = {
        "openapi": "3.1.0",
        "info": {"title": "model-gateway", "version": __version__, "description": description},
        "paths": dict(sorted(paths.items())),
        "components": components,
    }
    if auth is not None:
        document["security"] = openapi_paths.requirements(auth, list(components["securitySchemes"]))
    return document


def operation(route: Route, method: str, model: openapi_paths.ModelPaths | None) -> Schema:
    """One method of one route: its parameters (those the concrete model path still has),
    body, replies and errors."""
    path = model.path(route.path) if model is not None else route.path
    params = _PARAM.findall(path or route.path)
    op = openapi_paths.describe(route, method, model)
    op["operationId"] = _operation_id(method, path or route.path)
    if params:
        op["parameters"] = [
            {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
            for p in params
        ] + op.get("parameters", [])
    return op


def _operation_id(method: str, path: str) -> str:
    return method.lower() + re.sub(r"[^A-Za-z0-9]+", "_", path).rstrip("_")


def _unique_operation_ids(paths: dict[str, Schema]) -> None:
    """Model names that differ only in punctuation (``a.b``, ``a-b``) would share an id."""
    seen: set[str] = set()
    for _, item in sorted(paths.items()):
        for op in item.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            base = candidate = op["operationId"]
            n = 1
            while candidate in seen:
                n += 1
                candidate = f"{base}_{n}"
            op["operationId"] = candidate
            seen.add(candidate)


def security_schemes(runtime: Runtime, view: View) -> Schema:
    """The schemes the table's ``auth:`` section turns on, and the admin token."""
    found: Schema = {}
    auth = runtime.table.auth
    if auth is not None:
        if auth.jwt or auth.tokens.enabled:
            found["bearer"] = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        if auth.api_keys:
            found["apiKey"] = {"type": "apiKey", "in": "header", "name": auth.api_key_header}
        if auth.tokens.enabled:
            flows = {"clientCredentials": {"tokenUrl": "/oauth2/token", "scopes": {}}}
            found["oauth2"] = {"type": "oauth2", "flows": flows}
    if view.admin:
        found["adminToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "GATEWAY_ADMIN_TOKEN, or a credential with the admin scope.",
        }
    return found

"""The admin API in the OpenAPI document: each admin route's summary, body and reply.

The bodies are the admin API's own pydantic models (their JSON Schema, as they validate), so
the document cannot drift from what the endpoints accept. Described only to readers who can
reach the admin API (``edge.docs`` decides).
"""

from __future__ import annotations

from typing import Any

from gateway.admin.config import PurgeBody
from gateway.admin.keys import KeyBody, RotateBody
from gateway.admin.tenants import TenantBody, TenantPatch
from gateway.admin.webhooks import SecretBody
from gateway.config.types import Strict
from gateway.edge import openapi_lists, openapi_usage
from gateway.edge.openapi_jobs import JOB, JOB_LIST, admin_list_params
from gateway.traffic.rollout import ACTIONS

Schema = dict[str, Any]
_STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
_TIME: Schema = {"type": ["number", "null"]}
TENANT: Schema = {
    "type": "object",
    "required": ["name", "plan", "models", "scopes", "metadata", "disabled", "created_at"],
    "properties": {
        "name": {"type": "string"},
        "plan": {"type": ["string", "null"]},
        "models": _STRINGS,
        "scopes": _STRINGS,
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "disabled": {"type": "boolean"},
        "created_at": {"type": "number"},
        "callback_hosts": _STRINGS,
    },
}
KEY: Schema = {
    "type": "object",
    "required": ["key_id", "tenant", "name", "scopes", "status", "created_at"],
    "properties": {
        "key": {"type": "string", "description": "The key itself: shown once, at creation."},
        "key_id": {"type": "string"},
        "tenant": {"type": "string"},
        "name": {"type": "string"},
        "scopes": _STRINGS,
        "status": {"enum": ["active", "rotating", "expired", "revoked"]},
        "created_at": {"type": "number"},
        "expires_at": _TIME,
        "revoked_at": _TIME,
        "last_used_at": _TIME,
        "rotated_to": {"type": ["string", "null"]},
        "previous_expires_at": {"type": "number"},
    },
}
_OBJECT: Schema = {"type": "object"}
WEBHOOK_SECRET: Schema = {
    "type": "object",
    "required": ["tenant", "exists"],
    "properties": {
        "tenant": {"type": "string"},
        "exists": {"type": "boolean"},
        "secret": {"type": "string", "description": "whsec_...: shown once, at creation."},
        "secret_id": {"type": "string"},
        "created_at": {"type": "number"},
        "grace": {"type": "number"},
        "previous_id": {"type": ["string", "null"]},
        "previous_expires_at": _TIME,
    },
}
DELIVERY: Schema = {
    "type": "object",
    "required": ["id", "tenant", "url", "type", "attempts", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "tenant": {"type": "string"},
        "url": {"type": "string"},
        "type": {"type": "string"},
        "attempts": {"type": "integer"},
        "last_status": {"type": ["integer", "null"]},
        "last_error": {"type": ["string", "null"]},
        "created_at": {"type": "number"},
        "dead_at": _TIME,
        "status": {"type": "string"},
    },
}

_COUNTS: Schema = {"type": "array", "items": {"type": "integer", "minimum": 0}}
_MAYBE: Schema = {"type": "array", "items": {"type": ["number", "null"]}}
_SUMMARY_FIELDS = ("requests", "rps", "errors_5xx", "errors_4xx", "error_rate", "p50_ms", "p99_ms")
_LINE_FIELDS = ("model", "version", "t", *_SUMMARY_FIELDS, "total")
SERIES: Schema = {
    "type": "object",
    "required": ["step", "now", "start", "end", "replicas", "series"],
    "properties": {
        "step": {"type": "integer", "description": "Seconds per point."},
        "now": {"type": "number"},
        "start": {"type": "integer", "description": "The first step's start (unix seconds)."},
        "end": {"type": "integer", "description": "The last step's end (unix seconds)."},
        "replicas": {"type": "integer", "description": "Live replicas whose steps were read."},
        "series": {
            "type": "array",
            "items": {
                "type": "object",
                "required": list(_LINE_FIELDS),
                "properties": {
                    "model": {"type": "string"},
                    "version": {"type": ["string", "null"]},
                    "t": {"type": "array", "items": {"type": "integer"}},
                    "requests": _COUNTS,
                    "rps": {"type": "array", "items": {"type": "number"}},
                    "errors_5xx": _COUNTS,
                    "errors_4xx": _COUNTS,
                    "error_rate": _MAYBE,
                    "p50_ms": _MAYBE,
                    "p99_ms": _MAYBE,
                    "total": {
                        "type": "object",
                        "required": list(_SUMMARY_FIELDS),
                        "properties": {
                            "requests": {"type": "integer"},
                            "rps": {"type": "number"},
                            "errors_5xx": {"type": "integer"},
                            "errors_4xx": {"type": "integer"},
                            "error_rate": {"type": ["number", "null"]},
                            "p50_ms": {"type": ["number", "null"]},
                            "p99_ms": {"type": ["number", "null"]},
                        },
                    },
                },
            },
        },
    },
}
_SERIES_PARAMS: list[Schema] = [
    {"name": "model", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "version", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "minutes",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1440},
        "description": "The last minutes only (at most the window; default: all of it).",
    },
]


def _limit(most: int) -> Schema:
    return {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": most},
        "description": "At most this many (the newest).",
    }


_IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {"type": "string", "pattern": "^[ -~]{1,255}$"},
    "description": "A retried call with the same key gets the first call's reply.",
}
_RELOAD_STATUS: Schema = {"type": "object", "required": ["last_ok"]}
_CONFIG_CHECK: Schema = {
    "type": "object",
    "required": ["ok", "summary", "errors", "changes", "diff"],
    "properties": {
        "ok": {"type": "boolean"},
        "summary": {"type": "string"},
        "errors": {**_STRINGS, "description": "Every problem, with its line."},
        "changes": {**_STRINGS, "description": "What would change (gateway check --against)."},
        "diff": {"type": "string", "description": "A unified line diff against the live file."},
    },
}
_YAML_BODY: Schema = {
    "required": True,
    "content": {"application/yaml": {"schema": {"type": "string"}}},
}

# (method, path) → (summary, body model, success status, reply schema, extra parameters)
_ROUTES: dict[
    tuple[str, str], tuple[str, type[Strict] | None, str, Schema | None, list[Schema]]
] = {
    ("GET", "/admin/jobs"): (
        "Every tenant's jobs, newest first (results left out)",
        None,
        "200",
        JOB_LIST,
        admin_list_params(),
    ),
    ("GET", "/admin/jobs/dead"): (
        "Dead-lettered jobs (their worker died on them too often)",
        None,
        "200",
        {"type": "object", "required": ["dead"], "properties": {"dead": {"type": "array"}}},
        [_limit(1000)],
    ),
    ("GET", "/admin/jobs/depth"): (
        "Jobs queued (not yet running), per model",
        None,
        "200",
        {
            "type": "object",
            "required": ["depth"],
            "properties": {
                "depth": {"type": "object", "additionalProperties": {"type": "integer"}}
            },
        },
        [],
    ),
    ("GET", "/admin/jobs/{job_id}"): ("A job, with its result or error", None, "200", JOB, []),
    ("DELETE", "/admin/jobs/{job_id}"): ("Cancel a queued job", None, "200", JOB, []),
    ("GET", "/admin/config"): (
        "The route table's status and the backends' replicas, by backend name a page at a time",
        None,
        "200",
        openapi_lists.CONFIG,
        openapi_lists.PAGE_PARAMS,
    ),
    ("GET", "/admin/models"): (
        "The route table's models by name, a page at a time: versions, backends, readiness",
        None,
        "200",
        openapi_lists.MODELS,
        openapi_lists.PAGE_PARAMS,
    ),
    ("POST", "/admin/config/reload"): (
        "Reload routes.yaml now (422: rejected, the old table stays)",
        None,
        "200",
        _RELOAD_STATUS,
        [],
    ),
    ("POST", "/admin/config/check"): (
        "Check a routes.yaml (the body) and diff it against the live one; nothing is applied",
        None,
        "200",
        _CONFIG_CHECK,
        [],
    ),
    ("GET", "/admin/audit"): (
        "The audit log, newest first",
        None,
        "200",
        {"type": "object", "required": ["entries"], "properties": {"entries": {"type": "array"}}},
        [_limit(10_000)],
    ),
    ("POST", "/admin/cache/purge"): (
        "Drop cached answers by model, version and/or tenant",
        PurgeBody,
        "200",
        {"type": "object", "required": ["purged", "pattern"]},
        [],
    ),
    ("GET", "/admin/tenants"): (
        "Every tenant",
        None,
        "200",
        {
            "type": "object",
            "required": ["tenants"],
            "properties": {"tenants": {"type": "array", "items": TENANT}},
        },
        [],
    ),
    ("POST", "/admin/tenants"): ("Create a tenant", TenantBody, "201", TENANT, []),
    ("GET", "/admin/tenants/{name}"): ("A tenant", None, "200", TENANT, []),
    ("PATCH", "/admin/tenants/{name}"): ("Change a tenant", TenantPatch, "200", TENANT, []),
    ("DELETE", "/admin/tenants/{name}"): ("Delete a tenant", None, "204", None, []),
    ("GET", "/admin/tenants/{name}/keys"): (
        "A tenant's API keys",
        None,
        "200",
        {
            "type": "object",
            "required": ["keys"],
            "properties": {"keys": {"type": "array", "items": KEY}},
        },
        [],
    ),
    ("POST", "/admin/tenants/{name}/keys"): (
        "Create an API key (the key is shown once)",
        KeyBody,
        "201",
        KEY,
        [_IDEMPOTENCY],
    ),
    ("POST", "/admin/keys/{key_id}/rotate"): (
        "A new key; the old one works until the grace ends",
        RotateBody,
        "201",
        KEY,
        [_IDEMPOTENCY],
    ),
    ("POST", "/admin/keys/{key_id}/revoke"): (
        "Revoke a key (every replica drops it at once)",
        None,
        "200",
        KEY,
        [],
    ),
    ("GET", "/admin/rollouts"): (
        "The progressive rollouts by model name, a page at a time",
        None,
        "200",
        openapi_lists.ROLLOUTS,
        openapi_lists.PAGE_PARAMS,
    ),
    ("GET", "/admin/rollouts/{model}"): (
        "A model's rollout",
        None,
        "200",
        {"type": "object", "required": ["model"]},
        [],
    ),
    ("GET", "/admin/rollouts/{model}/events"): (
        "A rollout's event log",
        None,
        "200",
        {"type": "object", "required": ["model", "events"]},
        [_limit(1000)],
    ),
    ("POST", "/admin/rollouts/{model}/{action}"): (
        f"Command a rollout ({', '.join(ACTIONS)})",
        None,
        "200",
        {"type": "object", "required": ["model"]},
        [],
    ),
    ("GET", "/admin/tenants/{name}/webhook-secret"): (
        "Whether a tenant has a webhook secret (never the secret)",
        None,
        "200",
        WEBHOOK_SECRET,
        [],
    ),
    ("POST", "/admin/tenants/{name}/webhook-secret"): (
        "Create or rotate a tenant's webhook secret (shown once; the old one signs for grace)",
        SecretBody,
        "201",
        WEBHOOK_SECRET,
        [_IDEMPOTENCY],
    ),
    ("DELETE", "/admin/tenants/{name}/webhook-secret"): (
        "Delete a tenant's webhook secret",
        None,
        "204",
        None,
        [],
    ),
    ("GET", "/admin/webhooks/dead"): (
        "Webhook deliveries out of attempts, newest first",
        None,
        "200",
        {
            "type": "object",
            "required": ["deliveries"],
            "properties": {"deliveries": {"type": "array", "items": DELIVERY}},
        },
        [_limit(1000)],
    ),
    ("POST", "/admin/webhooks/dead/{id}/retry"): (
        "Deliver a dead webhook again (same id, attempts from zero)",
        None,
        "202",
        DELIVERY,
        [],
    ),
    ("GET", "/admin/series"): (
        "Live requests, errors and latency per model and version, every replica summed",
        None,
        "200",
        SERIES,
        _SERIES_PARAMS,
    ),
    ("GET", "/admin/usage"): (
        "Per-tenant usage summed by model, version or day, and quota used against the plan",
        None,
        "200",
        openapi_usage.USAGE,
        openapi_usage.PARAMETERS,
    ),
    ("GET", "/admin/shadow"): (
        "What shadow traffic has shown, by model name a page at a time",
        None,
        "200",
        openapi_lists.SHADOW,
        openapi_lists.PAGE_PARAMS,
    ),
}


def describe(method: str, path: str) -> Schema:
    """The operation of an admin route (a generic one for a route added without a line
    here)."""
    summary, body, status, reply, params = _ROUTES.get(
        (method, path), (f"{method} {path}", None, "200", _OBJECT, [])
    )
    op: Schema = {
        "tags": ["admin"],
        "summary": summary,
        "security": [{"adminToken": []}],
        "responses": {
            status: {"description": "OK"}
            if reply is None
            else {"description": "OK", "content": {"application/json": {"schema": reply}}}
        },
    }
    if params:
        op["parameters"] = list(params)
    if body is not None:
        schema = body.model_json_schema()  # flat models: no $defs to place
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": schema}}}
    if path == "/admin/usage":
        op["responses"]["200"]["content"]["text/csv"] = openapi_usage.CSV
    if path == "/admin/config/check":
        op["requestBody"] = _YAML_BODY
    if path == "/admin/config/source":
        op["summary"] = "The live routes.yaml, as it was read"
        op["responses"] = {
            "200": {
                "description": "OK",
                "content": {
                    "application/yaml": {
                        "schema": {"type": "object", "description": "routes.yaml, as read"}
                    }
                },
            }
        }
    if path == "/admin/config/reload":
        op["responses"]["422"] = {
            "description": "The new routes.yaml was rejected; the old table stays",
            "content": {"application/json": {"schema": _RELOAD_STATUS}},
        }
    return op

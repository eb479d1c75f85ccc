"""Async jobs in the OpenAPI document: the submit headers and 202 of the inference routes,
and ``/jobs`` (the admin routes of jobs are in ``openapi_admin``)."""

from __future__ import annotations

from typing import Any

from gateway.jobs.model import JOB_STATUSES

Schema = dict[str, Any]
_JSON = "application/json"
_TIME: Schema = {"type": ["number", "null"]}
JOB: Schema = {
    "type": "object",
    "required": ["id", "status", "model", "protocol", "attempts", "created_at"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": list(JOB_STATUSES)},
        "model": {"type": "string"},
        "version": {"type": ["string", "null"], "description": "The version pinned at submit."},
        "protocol": {"enum": ["v1", "v2"]},
        "attempts": {"type": "integer"},
        "created_at": {"type": "number"},
        "started_at": _TIME,
        "finished_at": _TIME,
        "batch_id": {"type": ["string", "null"]},
        "custom_id": {"type": ["string", "null"]},
        "tenant": {"type": "string"},
        "result": {"description": "Once succeeded: the reply, in the submitted protocol."},
        "error": {
            "type": "object",
            "description": "Once failed: the error, in the submitted protocol's shape.",
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
        },
        "error_status": {"type": "integer", "description": "The error's HTTP status."},
    },
}
JOB_LIST: Schema = {
    "type": "object",
    "required": ["jobs", "next_cursor"],
    "properties": {
        "jobs": {"type": "array", "items": JOB},
        "next_cursor": {"type": ["string", "null"], "description": "Pass as cursor for more."},
    },
}
ACCEPTED: Schema = {
    "description": "Accepted as an async job (Prefer: respond-async); Location: /jobs/{id}. "
    "200 instead for an Idempotency-Key already used with this request.",
    "headers": {
        "Location": {"schema": {"type": "string"}},
        "Preference-Applied": {"schema": {"const": "respond-async"}},
    },
    "content": {
        _JSON: {
            "schema": {
                "type": "object",
                "required": ["id", "status", "model", "created_at"],
                "properties": {
                    "id": {"type": "string"},
                    "status": {"enum": list(JOB_STATUSES)},
                    "model": {"type": "string"},
                    "created_at": {"type": "number"},
                },
            }
        }
    },
}
SUBMIT_HEADERS: list[Schema] = [
    {
        "name": "Prefer",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "respond-async (RFC 7240): run the call as an async job (202).",
    },
    {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "With respond-async: a retried submit gets the same job.",
    },
    {
        "name": "Callback-URL",
        "in": "header",
        "required": False,
        "schema": {"type": "string", "format": "uri"},
        "description": "With respond-async: a webhook for the job's end (where set up).",
    },
]
_JOB_ID: Schema = {"name": "job_id", "in": "path", "required": True, "schema": {"type": "string"}}
_LIST_PARAMS: list[Schema] = [
    {"name": "status", "in": "query", "required": False, "schema": {"enum": list(JOB_STATUSES)}},
    {"name": "model", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "batch_id", "in": "query", "required": False, "schema": {"type": "string"}},
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    {"name": "cursor", "in": "query", "required": False, "schema": {"type": "string"}},
]


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


def describe(method: str, path: str) -> Schema:
    """The operation of a ``/jobs`` route (the caller's own jobs)."""
    if path == "/jobs":
        return {
            "tags": ["jobs"],
            "summary": "The caller's jobs, newest first (results left out)",
            "parameters": list(_LIST_PARAMS),
            "responses": {"200": _json(JOB_LIST)},
        }
    if method == "DELETE":
        summary = "Cancel a queued job (409 once it runs or is done)"
    else:
        summary = "A job: status, attempts, timings, and once done its result or error"
    return {
        "tags": ["jobs"],
        "summary": summary,
        "parameters": [_JOB_ID],
        "responses": {"200": _json(JOB)},
    }


def admin_list_params() -> list[Schema]:
    tenant = {"name": "tenant", "in": "query", "required": False, "schema": {"type": "string"}}
    return [tenant, *_LIST_PARAMS]

"""What the batch file routes say in the OpenAPI document (``/batches``): the JSONL formats
in and out, and the batch object. They take the callers' security schemes (the document's
default), as the inference routes do."""

from __future__ import annotations

from typing import Any, Final

Schema = dict[str, Any]

_JSON: Final = "application/json"
_JSONL: Final = "application/jsonl"
_COUNT: Schema = {"type": "integer", "minimum": 0}
BATCH: Schema = {
    "type": "object",
    "required": ["id", "status", "created_at", "counts"],
    "properties": {
        "id": {"type": "string"},
        "status": {"enum": ["queued", "in_progress", "completed", "cancelled"]},
        "created_at": {"type": "number"},
        "finished_at": {"type": "number"},
        "counts": {
            "type": "object",
            "required": ["total", "queued", "running", "succeeded", "failed", "cancelled"],
            "properties": {
                name: _COUNT
                for name in ("total", "queued", "running", "succeeded", "failed", "cancelled")
            },
        },
    },
}
LINE: Schema = {
    "type": "object",
    "description": "One line of the JSONL file: one request.",
    "required": ["custom_id", "model", "protocol", "body"],
    "additionalProperties": False,
    "properties": {
        "custom_id": {"type": "string", "minLength": 1, "maxLength": 256},
        "model": {"type": "string", "minLength": 1},
        "version": {"type": "string", "minLength": 1},
        "protocol": {"enum": ["v1", "v2"]},
        "body": {
            "type": "object",
            "description": "The protocol's request: a KServe v2 infer body, or a TF Serving "
            ":predict body.",
        },
    },
}
RESULT: Schema = {
    "type": "object",
    "description": "One line of the JSONL results, in input order.",
    "required": ["custom_id", "status"],
    "properties": {
        "custom_id": {"type": "string"},
        "status": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "status_code": {"type": "integer"},
        "response": {"type": "object", "description": "The protocol's reply."},
        "error": {
            "type": "object",
            "description": "The protocol's error: {error: string, code}.",
            "properties": {"error": {"type": "string"}, "code": {"type": "string"}},
        },
    },
}
_ID: Schema = {"name": "batch_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TAGS: Final = ["batch files"]


def _jsonl(line: Schema) -> Schema:
    """A JSONL body: a string of lines, each a JSON object of ``line`` (``x-jsonl-line``)."""
    return {"type": "string", "description": "JSONL: one JSON object a line", "x-jsonl-line": line}


def _json(schema: Schema, description: str = "OK") -> Schema:
    return {"description": description, "content": {_JSON: {"schema": schema}}}


_OPERATIONS: Final[dict[tuple[str, str], Schema]] = {
    ("POST", "/batches"): {
        "summary": "Submit a batch file: JSONL, one request a line (gzip allowed)",
        "requestBody": {
            "required": True,
            "content": {_JSONL: {"schema": _jsonl(LINE)}},
        },
        "responses": {"202": _json(BATCH, "Accepted: every line checked, the batch queued")},
    },
    ("GET", "/batches"): {
        "summary": "The caller's batches, newest first",
        "parameters": [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        ],
        "responses": {
            "200": _json(
                {
                    "type": "object",
                    "required": ["batches", "next_cursor"],
                    "properties": {
                        "batches": {"type": "array", "items": BATCH},
                        "next_cursor": {"type": ["string", "null"]},
                    },
                }
            )
        },
    },
    ("GET", "/batches/{batch_id}"): {
        "summary": "A batch: status and counts per line state",
        "responses": {"200": _json(BATCH)},
    },
    ("DELETE", "/batches/{batch_id}"): {
        "summary": "Cancel what has not run: unfed lines and queued jobs",
        "responses": {"200": _json(BATCH)},
    },
    ("GET", "/batches/{batch_id}/results"): {
        "summary": "The results, JSONL in input order (one object a line)",
        "responses": {
            "200": {
                "description": "JSONL; each line as the schema says",
                "content": {_JSONL: {"schema": _jsonl(RESULT)}},
            }
        },
    },
}


def describe(method: str, path: str) -> Schema:
    """The operation of a batch route (its responses a fresh dict: the caller adds errors)."""
    op = _OPERATIONS.get((method, path), {"summary": f"{method} {path}", "responses": {}})
    return {**op, "tags": list(_TAGS), "responses": dict(op["responses"])}

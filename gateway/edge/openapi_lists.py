"""The admin API's lists by name in the OpenAPI document: their page parameters (``limit``,
``cursor``; ``gateway.admin.pages``) and the replies of ``/admin/models``, ``/admin/rollouts``,
``/admin/config`` and ``/admin/shadow``."""

from __future__ import annotations

from typing import Any

from gateway.admin.pages import DEFAULT_LIMIT, MAX_LIMIT

Schema = dict[str, Any]
NEXT_CURSOR: Schema = {
    "type": ["string", "null"],
    "description": "Pass as cursor for the next page; null on the last one.",
}
PAGE_PARAMS: list[Schema] = [
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
        "description": f"At most this many, in name order (default {DEFAULT_LIMIT}).",
    },
    {
        "name": "cursor",
        "in": "query",
        "required": False,
        "schema": {"type": "string"},
        "description": "The next_cursor of the previous page: the items after it.",
    },
]
MODEL: Schema = {
    "type": "object",
    "required": ["name", "default", "versions"],
    "properties": {
        "name": {"type": "string"},
        "default": {"type": "string", "description": "The version a call without a pin gets."},
        "versions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["version", "backend", "ready"],
                "properties": {
                    "version": {"type": "string"},
                    "backend": {"type": "string"},
                    "ready": {
                        "type": "boolean",
                        "description": "A replica can take it now (this worker's health view).",
                    },
                },
            },
        },
    },
}
MODELS: Schema = {
    "type": "object",
    "required": ["models", "next_cursor"],
    "properties": {"models": {"type": "array", "items": MODEL}, "next_cursor": NEXT_CURSOR},
}
ROLLOUTS: Schema = {
    "type": "object",
    "required": ["rollouts", "next_cursor"],
    "properties": {
        "rollouts": {"type": "array", "items": {"type": "object", "required": ["model"]}},
        "next_cursor": NEXT_CURSOR,
    },
}
CONFIG: Schema = {
    "type": "object",
    "required": ["status", "backends", "next_cursor"],
    "properties": {
        "status": {"type": "object", "required": ["last_ok"]},
        "backends": {"type": "object", "additionalProperties": {"type": "object"}},
        "next_cursor": NEXT_CURSOR,
    },
}
SHADOW: Schema = {
    "type": "object",
    "required": ["configured", "models", "next_cursor"],
    "properties": {
        "configured": {"type": "object"},
        "models": {"type": "object"},
        "next_cursor": NEXT_CURSOR,
    },
}

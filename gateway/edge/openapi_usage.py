"""What ``GET /admin/usage`` says in the OpenAPI document: its query, its JSON and its CSV."""

from __future__ import annotations

from typing import Any, Final

from gateway.admin.usage_report import BY
from gateway.store.usage import USAGE_FIELDS

Schema = dict[str, Any]

_COUNT: Schema = {"type": "integer", "minimum": 0}
_NUMBER: Schema = {"type": "number", "minimum": 0}
_TIME: Schema = {
    "type": "string",
    "description": "Unix seconds (1767225600) or ISO 8601 (2026-01-01T00:00:00Z; no zone: UTC).",
}
ROW: Schema = {
    "type": "object",
    "required": ["tenant", "model", *USAGE_FIELDS],
    "properties": {
        "tenant": {"type": "string", "description": '"" for calls without a tenant'},
        "model": {"type": "string", "description": '"" for a model not served here'},
        "version": {"type": "string", "description": "With by=version."},
        "day": {"type": "string", "format": "date", "description": "With by=day (UTC)."},
        **{name: _COUNT for name in USAGE_FIELDS},
    },
}
QUOTA: Schema = {
    "type": "object",
    "required": ["tenant", "plan", "name", "limit", "window", "used", "remaining", "resets_in"],
    "properties": {
        "tenant": {"type": "string"},
        "plan": {"type": "string"},
        "name": {"type": "string", "description": "The quota: quota-day, quota-month..."},
        "limit": _NUMBER,
        "window": {**_NUMBER, "description": "The window's length in seconds."},
        "used": {**_NUMBER, "description": "Spent in the current window (the limiter's count)."},
        "remaining": _NUMBER,
        "resets_in": {**_COUNT, "description": "Seconds until the window ends."},
    },
}
USAGE: Schema = {
    "type": "object",
    "required": ["from", "to", "by", "rows", "quota"],
    "properties": {
        "from": {"type": "integer", "description": "The range counted (unix seconds)."},
        "to": {"type": "integer"},
        "by": {"enum": list(BY)},
        "rows": {"type": "array", "items": ROW},
        "quota": {"type": "array", "items": QUOTA},
    },
}
CSV: Final[Schema] = {
    "schema": {
        "type": "string",
        "description": "A header line (tenant, model, version or day, then the counters), then "
        "one line per row.",
    }
}


def _query(name: str, schema: Schema, description: str) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


PARAMETERS: Final[list[Schema]] = [
    _query("tenant", {"type": "string"}, "One tenant (empty: every tenant)."),
    _query("model", {"type": "string"}, "One model (empty: every model)."),
    _query("from", _TIME, "Start of the range (default: 24 h before `to`)."),
    _query("to", _TIME, "End of the range (default: now)."),
    _query("by", {"enum": list(BY)}, "Sum rows per model (default), version or day."),
    _query("format", {"enum": ["json", "csv"]}, "csv: the rows as CSV (or Accept: text/csv)."),
]

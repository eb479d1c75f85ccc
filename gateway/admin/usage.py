"""``GET /admin/usage``: per-tenant usage over a range, summed by model, version or day, and
each tenant's quota consumption against its plan; as JSON, or the rows as CSV.

Query: ``tenant`` and ``model`` (exact names; empty or absent: all), ``from`` and ``to`` (unix
seconds or ISO 8601; default the last 24 h), ``by`` (``model``, the default, ``version`` or
``day``), ``format`` (``json``, the default, or ``csv``; ``Accept: text/csv`` asks for CSV
too). The JSON::

    {"from": 1767225600, "to": 1767312000, "by": "model",
     "rows": [{"tenant": "acme", "model": "fraud", "requests": 120, "errors_4xx": 3,
               "errors_5xx": 1, "cache_hits": 40, "rate_limited": 2, "bytes_in": 9000,
               "bytes_out": 4800}],
     "quota": [{"tenant": "acme", "plan": "free", "name": "quota-day", "limit": 10000,
                "window": 86400, "used": 117, "remaining": 9883, "resets_in": 3600}]}

Rows carry ``version`` (``by=version``) or ``day`` (``YYYY-MM-DD``, UTC; ``by=day``) after
``model``. How the range is read and what ``quota`` counts: ``admin.usage_report``. Counts are
the store's: each gateway process writes its own every ``GATEWAY_USAGE_FLUSH_SECONDS``.
"""

from __future__ import annotations

import csv
import io
import time

import orjson
from starlette.requests import Request
from starlette.responses import Response

from gateway.admin.access import AdminAccess
from gateway.admin.usage_report import (
    BY,
    COLUMNS,
    DEFAULT_RANGE,
    MAX_RANGE,
    By,
    Row,
    covered,
    parse_time,
    quota,
    read_rows,
    summed,
)
from gateway.edge.http import Exchange, Route
from gateway.errors import BadRequest
from gateway.state import State
from gateway.store.usage import USAGE_FIELDS

CSV = "text/csv; charset=utf-8"


class UsageAPI:
    def __init__(self, state: State, access: AdminAccess) -> None:
        self.state = state
        self.access = access

    def routes(self) -> list[Route]:
        return [Route("/admin/usage", self.report, ("GET",))]

    async def report(self, request: Request, exchange: Exchange) -> Response:
        await self.access.require(request)
        query = request.query_params
        by = _by(query.get("by") or "model")
        as_csv = _wants_csv(query.get("format"), request.headers.get("accept", ""))
        tenant = query.get("tenant") or None
        model = query.get("model") or None
        now = time.time()
        end = parse_time("to", query["to"]) if query.get("to") else now
        start = parse_time("from", query["from"]) if query.get("from") else end - DEFAULT_RANGE
        if start >= end:
            raise BadRequest("from must be before to")
        if end - start > MAX_RANGE:
            raise BadRequest(f"the range is at most {MAX_RANGE // 86400} days")
        span = covered(start, end, now)
        store = self.state.services.store
        rows = summed(await read_rows(store, span, tenant), by, model)
        if as_csv:
            return Response(_csv(rows, by), media_type=CSV)
        if tenant is not None:
            stored = await store.get_tenant(tenant)
            plans = {tenant: stored.plan if stored is not None else None}
        else:
            plans = {str(row["tenant"]): None for row in rows if row["tenant"]}
            plans.update({t.name: t.plan for t in await store.list_tenants()})
        body = {
            "from": span[0],
            "to": span[1],
            "by": by,
            "rows": rows,
            "quota": await quota(self.state.runtime, plans),
        }
        return Response(orjson.dumps(body), media_type="application/json")


def _by(text: str) -> By:
    for choice in BY:
        if text == choice:
            return choice
    raise BadRequest(f"by must be one of {', '.join(BY)}, got {text[:32]!r}")


def _wants_csv(given: str | None, accept: str) -> bool:
    """``format`` decides; without it, an ``Accept`` naming ``text/csv``."""
    if given is None or given == "":
        return "text/csv" in accept.lower()
    if given not in ("json", "csv"):
        raise BadRequest(f"format must be json or csv, got {given[:32]!r}")
    return given == "csv"


def _csv(rows: list[Row], by: By) -> bytes:
    """A header line, then one line per row (RFC 4180: CRLF, quoted where needed)."""
    header = [*COLUMNS[by], *USAGE_FIELDS]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([row[name] for name in header] for row in rows)
    return out.getvalue().encode()

"""``gateway usage``'s tables: the range line, names left and numbers right, an empty name as
``-``, the quota table after the rows."""

from __future__ import annotations

from gateway.cli.usage import render

COUNTS = {
    "requests": 1200,
    "errors_4xx": 3,
    "errors_5xx": 0,
    "cache_hits": 40,
    "rate_limited": 2,
    "bytes_in": 90000,
    "bytes_out": 4800,
}


def test_rows_then_quota_as_aligned_tables() -> None:
    report = {
        "from": 1767225600,
        "to": 1767312000,
        "by": "model",
        "rows": [
            {"tenant": "acme", "model": "fraud", **COUNTS},
            {"tenant": "", "model": "fraud", **dict.fromkeys(COUNTS, 7)},
        ],
        "quota": [
            {
                "tenant": "acme",
                "plan": "free",
                "name": "quota-day",
                "limit": 10000,
                "window": 86400,
                "used": 1198,
                "remaining": 8802,
                "resets_in": 3600,
            }
        ],
    }
    assert render(report).splitlines() == [
        "usage from 2026-01-01T00:00Z to 2026-01-02T00:00Z by model",
        "",
        "tenant  model  requests  4xx  5xx  cache hits  429s  bytes in  bytes out",
        "acme    fraud      1200    3    0          40     2     90000       4800",
        "-       fraud         7    7    7           7     7         7          7",
        "",
        "tenant  plan  quota      used  limit  remaining  resets in (s)",
        "acme    free  quota-day  1198  10000       8802           3600",
    ]


def test_an_empty_range_says_so() -> None:
    report = {"from": 0, "to": 60, "by": "day", "rows": [], "quota": []}
    assert render(report).splitlines() == [
        "usage from 1970-01-01T00:00Z to 1970-01-01T00:01Z by day",
        "",
        "no usage in this range",
    ]

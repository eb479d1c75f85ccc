"""How ``GET /admin/usage`` reads a range: times parsed, edges rounded to the buckets still kept,
the range covered exactly by the coarsest buckets, rows summed by model, version or day."""

from __future__ import annotations

import pytest

from gateway.admin.usage_report import buckets, covered, parse_time, summed
from gateway.errors import BadRequest
from gateway.store.usage import GRANULARITIES, UsageRow

DAY, HOUR, MINUTE = 86400, 3600, 60
D = 20_000 * DAY  # 2024-10-04T00:00:00Z, a day's start


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1728000000", 1728000000.0),
        ("1728000000.5", 1728000000.5),
        (" 1728000000 ", 1728000000.0),
        ("2024-10-04", D),
        ("2024-10-04T10:17:00Z", D + 10 * HOUR + 17 * MINUTE),
        ("2024-10-04T10:17:00", D + 10 * HOUR + 17 * MINUTE),  # no zone: UTC
        ("2024-10-04T12:17:00+02:00", D + 10 * HOUR + 17 * MINUTE),
    ],
)
def test_times_are_unix_seconds_or_iso_8601(text: str, expected: float) -> None:
    assert parse_time("from", text) == expected


@pytest.mark.parametrize(
    "text", ["yesterday", "-5", "1e9", "²", "2024-13-01", "99999999999999", "1969-12-31", ""]
)
def test_other_times_are_a_400_naming_the_parameter(text: str) -> None:
    with pytest.raises(BadRequest, match=r"^from "):
        parse_time("from", text)


def test_recent_edges_round_outward_to_the_minute() -> None:
    now = D + 12 * HOUR
    assert covered(D + 10 * HOUR + 17 * MINUTE + 5, now - 1, now) == (
        D + 10 * HOUR + 17 * MINUTE,
        now,
    )


def test_older_edges_round_to_the_hour_then_the_day_as_finer_buckets_expire() -> None:
    now = D + 100 * DAY
    three_days = now - 3 * DAY + 17 * MINUTE  # minutes are gone: whole hours
    assert covered(three_days, now, now) == (now - 3 * DAY, now)
    forty_days = now - 40 * DAY + 5 * HOUR  # hours are gone too: whole days
    assert covered(forty_days, three_days, now) == (now - 40 * DAY, now - 3 * DAY + HOUR)
    # an edge a day and 23.5 hours old: minutes kept, but not for the whole hour before it
    almost = now - 2 * DAY + 30 * MINUTE
    assert covered(almost, now, now)[0] == now - 2 * DAY


def test_the_coarsest_buckets_cover_the_range_exactly() -> None:
    start, end = D + 10 * HOUR + 17 * MINUTE, D + DAY + 14 * HOUR + 34 * MINUTE
    found = buckets(start, end)
    assert found["minute"] == [D + 10 * HOUR + m * MINUTE for m in range(17, 60)] + [
        D + DAY + 14 * HOUR + m * MINUTE for m in range(34)
    ]
    assert found["hour"] == [D + h * HOUR for h in range(11, 24)] + [
        D + DAY + h * HOUR for h in range(14)
    ]
    assert found["day"] == []
    week = buckets(D, D + 7 * DAY)
    assert week == {"minute": [], "hour": [], "day": [D + d * DAY for d in range(7)]}
    covered_seconds = sum(len(found[g]) * length for g, length in GRANULARITIES.items())
    assert covered_seconds == end - start


def test_rows_are_summed_by_model_version_or_day() -> None:
    found = [
        UsageRow(D, "acme", "fraud", "1", {"requests": 2, "bytes_in": 10}),
        UsageRow(D + HOUR, "acme", "fraud", "2", {"requests": 1, "errors_5xx": 1}),
        UsageRow(D + DAY, "acme", "fraud", "1", {"requests": 4, "cache_hits": 3}),
        UsageRow(D, "beta", "ocr", "1", {"requests": 1, "rate_limited": 1, "errors_4xx": 1}),
    ]
    zeros = dict.fromkeys(
        (
            "requests",
            "errors_4xx",
            "errors_5xx",
            "cache_hits",
            "rate_limited",
            "bytes_in",
            "bytes_out",
        ),
        0,
    )
    by_model = summed(found, "model")
    assert by_model == [
        {
            "tenant": "acme",
            "model": "fraud",
            **zeros,
            "requests": 7,
            "errors_5xx": 1,
            "cache_hits": 3,
            "bytes_in": 10,
        },
        {
            "tenant": "beta",
            "model": "ocr",
            **zeros,
            "requests": 1,
            "errors_4xx": 1,
            "rate_limited": 1,
        },
    ]
    assert list(by_model[0]) == ["tenant", "model", *zeros]  # the column order of the CSV
    by_version = summed(found, "version", model="fraud")
    assert [(r["version"], r["requests"]) for r in by_version] == [("1", 6), ("2", 1)]
    by_day = summed(found, "day")
    assert [(r["tenant"], r["day"], r["requests"]) for r in by_day] == [
        ("acme", "2024-10-04", 3),
        ("acme", "2024-10-05", 4),
        ("beta", "2024-10-04", 1),
    ]

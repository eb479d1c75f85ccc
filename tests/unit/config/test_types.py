"""Durations and percentages as routes.yaml writes them."""

from __future__ import annotations

import pytest

from gateway.config.types import parse_duration, parse_ratio


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("250ms", 0.25),
        ("30d", 30 * 86400.0),
        ("2s", 2.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        (" 2 s ", 2.0),
        (3, 3.0),
        (0.5, 0.5),
    ],
)
def test_durations_parse_to_seconds(value: object, seconds: float) -> None:
    parsed = parse_duration(value)
    assert isinstance(parsed, float)
    assert parsed == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["2 seconds", "-1s", "1w", "", "ms", True, False, None, [1]])
def test_bad_durations_are_rejected(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


@pytest.mark.parametrize(
    ("value", "ratio"), [("20%", 0.2), ("0%", 0.0), ("100%", 1.0), (" 5% ", 0.05), (0.3, 0.3)]
)
def test_ratios_parse(value: object, ratio: float) -> None:
    assert parse_ratio(value) == pytest.approx(ratio)

"""The ``Server-Timing`` value of a request's :class:`Timing`."""

from __future__ import annotations

import re

from gateway.telemetry.timing import Timing

VALUE = re.compile(rb"^gateway;dur=(\d+\.\d\d), upstream;dur=(\d+\.\d\d)$")


def test_the_header_splits_the_time_between_gateway_and_upstream() -> None:
    timing = Timing()
    timing.started -= 0.5  # half a second ago
    timing.upstream = 0.125
    found = VALUE.match(timing.header())
    assert found is not None
    gateway, upstream = float(found[1]), float(found[2])
    assert upstream == 125.0
    assert 375.0 <= gateway < 375.0 + 60_000  # total - upstream, in milliseconds


def test_a_request_answered_without_a_model_server_says_upstream_zero() -> None:
    timing = Timing()
    timing.started -= 0.25
    found = VALUE.match(timing.header())
    assert found is not None
    assert found[2] == b"0.00"
    assert float(found[1]) >= 250.0


def test_upstream_longer_than_the_total_leaves_the_gateway_zero() -> None:
    timing = Timing()
    timing.upstream = 3600.0
    assert timing.header() == b"gateway;dur=0.00, upstream;dur=3600000.00"

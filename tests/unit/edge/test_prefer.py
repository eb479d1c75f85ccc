"""The Prefer header (RFC 7240): several preferences, several fields, commas, case, quotes."""

from __future__ import annotations

import pytest

from gateway.edge.prefer import preferences, prefers_async
from gateway.headers import Headers


@pytest.mark.parametrize(
    ("value", "tokens"),
    [
        ("respond-async", ["respond-async"]),
        ("RESPOND-ASYNC, wait=10", ["respond-async", "wait"]),
        ('handling=lenient; x="a,b", respond-async', ["handling", "respond-async"]),
        ('foo="respond-async"', ["foo"]),
        (" ,  , return=minimal ,", ["return"]),
        ('x="a\\"respond-async,", wait=1', ["x", "wait"]),
        ("", []),
    ],
)
def test_preferences(value: str, tokens: list[str]) -> None:
    assert preferences(value) == tokens


@pytest.mark.parametrize(
    ("fields", "wanted"),
    [
        ([("Prefer", "respond-async")], True),
        ([("Prefer", "wait=5"), ("prefer", "Respond-Async;foo")], True),
        ([("Prefer", "return=minimal")], False),
        ([("Prefer", "respond-asynchronously")], False),
        ([], False),
    ],
)
def test_prefers_async(fields: list[tuple[str, str]], wanted: bool) -> None:
    assert prefers_async(Headers.of(fields)) is wanted

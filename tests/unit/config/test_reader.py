"""The fast YAML reader (gateway/config/reader.py): whatever it returns is what
``yaml.safe_load`` returns, type for type; where it cannot be sure it says UNSURE. Known
places where libyaml and PyYAML read the same text differently keep it away."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import reader
from tests.unit.codecs.properties import examples

pytestmark = pytest.mark.skipif(not reader.FAST, reason="PyYAML was built without libyaml")

# Pieces of YAML, routes.yaml's and the awkward ones; a document is a few of them in a row.
ATOMS = [
    *("a", "b", "m1", "backend", "versions", "http://h:1/x", "?a=1", "a b", "a:b", "é"),
    *('"q"', "'s'", "'it''s'", '"a\nb"', '"\\x41"', '"\\q"'),
    *("1", "-1", "1.5", "0x1F", "1_000", ".inf", "1:30", "2001-12-14", "true", "no", "~"),
    *("null", "=", "<<", "&x ", "*x", "!!str ", "!!int ", "!!set ", "!foo "),
    *("{", "}", "[", "]", ",", ":", ": ", "- ", "?", "? ", "#c", " #c", "|", ">", "|-", "%", "@"),
    *(" ", "  ", "\n", "\n  ", "\n    ", "\n- ", "---", "...", "\t", "\ufeff", "\x85"),
]
pieces = st.lists(st.sampled_from(ATOMS), min_size=1, max_size=24).map("".join)
documents = st.one_of(  # and inside flow collections, where the readers differ most
    pieces, pieces.map(lambda text: f"[{text}]"), pieces.map(lambda text: f"a: {{{text}}}")
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 == True in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or (a != a and b != b)  # NaN


def safe_load(text: str) -> tuple[bool, Any]:
    try:
        return True, yaml.safe_load(text)
    except (yaml.YAMLError, RecursionError, ValueError, IndexError):
        return False, None


@examples(3000)
@given(documents)
def test_the_fast_reading_is_safe_loads_or_unsure(text: str) -> None:
    fast = reader.read_fast(text)
    if fast is reader.UNSURE:
        return
    ok, data = safe_load(text)
    assert ok, f"PyYAML refuses {text!r}, the fast reader read {fast!r}"
    assert same(fast, data)


@pytest.mark.parametrize(
    "text",
    [
        'backends:\n  a: {kind: kserve, urls: ["http://127.0.0.1:1"], timeout: 2s}\n',
        "models:\n  m:\n    versions:\n      1: {backend: a, version: 2}\n    default: 1\n",
        "x: [1, 1.5, -2, 0x10, 1_000, .inf, true, No, ~, null, '', 2001-12-14, 1:30]\n",
        "x: |\n  line one\n  line two\n\ny: >-\n  folded\n  text\n",
        "x: &v {a: 1}\ny: [*v, *v]\n",  # an alias: the same object, as PyYAML gives
        "# only a comment\n",
        "",
    ],
)
def test_routes_yaml_shapes_read_as_safe_load(text: str) -> None:
    fast = reader.read_fast(text)
    assert fast is not reader.UNSURE
    assert same(fast, yaml.safe_load(text))


def test_an_alias_is_one_object_as_safe_load_makes_it() -> None:
    fast = reader.read_fast("x: &v {a: 1}\ny: [*v, *v]\n")
    assert isinstance(fast, dict)
    assert fast["y"][0] is fast["y"][1] is fast["x"]


def test_a_timestamp_is_a_date() -> None:
    assert reader.read_fast("x: 2001-12-14\n") == {"x": dt.date(2001, 12, 14)}


@pytest.mark.parametrize(
    "text",
    [
        "a: 1\na: 2\n",  # a duplicate key: the careful path names it and its line
        "<<: {a: 1}\nb: 2\n",  # a merge key
        "a: !!set {x}\n",
        "a: !foo 1\n",
        "a: !!int x\n",  # PyYAML's own ValueError to give
        "a: =\n",
        "? [a]\n: 1\n",  # a collection as a key
        "a: " + "[" * (reader.MAX_DEPTH + 1) + "]" * (reader.MAX_DEPTH + 1) + "\n",
        "a: &a [*a]\n",  # an alias that contains itself
        "a: b: c\n",  # not YAML
    ],
)
def test_what_it_leaves_to_the_careful_path(text: str) -> None:
    assert reader.read_fast(text) is reader.UNSURE


@pytest.mark.parametrize(
    "text",
    [
        "a:\tb\n",  # a tab after the colon
        "a: [http://h:1/x?a=1]\n",  # "?" in a flow collection
        "a: |#c\n  x\n",  # a block scalar's header, a comment with no space
        "a: 1\n\ufeff|",  # a byte-order mark past the start
    ],
)
def test_where_libyaml_and_pyyaml_disagree_it_does_not_read(text: str) -> None:
    def read(loader: type[yaml.SafeLoader | yaml.CSafeLoader]) -> object:
        try:
            return yaml.load(text, Loader=loader)
        except yaml.YAMLError as exc:
            return type(exc)

    assert read(yaml.CSafeLoader) != read(yaml.SafeLoader)  # why the guard is there
    assert not reader.agrees(text)
    assert reader.read_fast(text) is reader.UNSURE


def test_alias_problems_name_the_line() -> None:
    node = yaml.compose("a: 1\nb: &b [1, *b]\n", Loader=yaml.SafeLoader)
    assert node is not None
    assert reader.alias_problem(node) == (2, "a YAML alias contains itself")
    fine = yaml.compose("x: &x [1, 2]\ny: [*x, *x]\n", Loader=yaml.SafeLoader)
    assert fine is not None
    assert reader.alias_problem(fine) is None

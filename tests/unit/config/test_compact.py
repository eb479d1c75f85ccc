"""Equal models share one set of field names (``gateway.config.compact``): every object still
answers what its input named, and copying a model with changes still works."""

from __future__ import annotations

from gateway.config.file import parse_config

ROUTES = """
backends:
  b: {kind: kserve, urls: ["http://127.0.0.1:9"]}
models:
  a: {versions: {"1": {backend: b, name: x}}}
  b: {versions: {"1": {backend: b, name: y}}}
  c: {versions: {"1": {backend: b}, "2": {backend: b, version: "7"}}, default: "1"}
"""


def test_equal_field_sets_are_one_object_and_answer_as_before() -> None:
    table = parse_config(ROUTES).table
    a, b, c = (table.models[name] for name in "abc")
    assert a.model_fields_set == {"versions"}
    assert c.model_fields_set == {"versions", "default"}
    assert a.model_fields_set is b.model_fields_set  # shared
    assert a.versions["1"].model_fields_set == {"backend", "name"}
    assert a.versions["1"].model_fields_set is b.versions["1"].model_fields_set
    assert c.versions["1"].model_fields_set == {"backend"}
    assert c.versions["2"].model_fields_set == {"backend", "version"}
    assert c.versions["1"].model_fields_set is not a.versions["1"].model_fields_set


def test_a_copy_with_changes_leaves_the_shared_set_alone() -> None:
    table = parse_config(ROUTES).table
    a, b = table.models["a"], table.models["b"]
    changed = a.model_copy(update={"default": "1"})
    assert changed.model_fields_set == {"versions", "default"}
    assert a.model_fields_set == {"versions"}
    assert b.model_fields_set == {"versions"}
    assert a.model_dump(exclude_unset=True) == {"versions": {"1": {"backend": "b", "name": "x"}}}

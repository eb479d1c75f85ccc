"""A route table's objects are made smaller once validated (``gateway.config.compact``, issue
16): equal models share one set of field names, and every model's and version's attribute dict
shares its keys with the others'; every object still answers what its input named and what it
holds, and copying a model with changes still works. A model's name is one object, carried
over by a reload; the file's text is kept compressed."""

from __future__ import annotations

import sys

from pydantic import BaseModel

from gateway.config.file import LoadedConfig, parse_config

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


def smaller(obj: BaseModel) -> bool:
    """Whether ``obj``'s attribute dict takes less than two thirds of an ordinary dict of the
    same items (CPython sizes a split dict's values more tightly once a few dozen objects of
    its class exist: ``big`` makes sure they do)."""
    return sys.getsizeof(obj.__dict__) < sys.getsizeof(dict(obj.__dict__)) * 2 / 3


def big() -> LoadedConfig:
    return parse_config(entries(100))


def test_attribute_dicts_share_their_keys_and_hold_what_they_held() -> None:
    model = big().table.models["m50"]
    assert smaller(model)
    assert smaller(model.versions["1"])
    table = parse_config(ROUTES).table
    a, c = table.models["a"], table.models["c"]
    for obj in (a, c, a.versions["1"], c.versions["2"]):
        plain = dict(obj.__dict__)  # the same mapping, in an ordinary dict
        assert obj.__dict__ == plain
        assert list(obj.__dict__) == list(plain)  # the fields' order
        assert smaller(obj)
    assert c.default == "1"
    assert c.default_version == "1"
    assert c.versions["2"].version == "7"
    assert a.model_dump() == {
        "versions": {
            "1": {
                "backend": "b", "name": "x", "version": None,
                "inputs": None, "outputs": None, "batching": None,
            }
        },
        "default": None, "traffic": None, "deterministic": False, "cache": None,
        "limits": None, "sticky": None, "shadow": None, "rollout": None,
    }  # fmt: skip
    assert a == parse_config(ROUTES).table.models["a"]
    changed = a.model_copy(update={"default": "1"})
    assert changed.default == "1"
    assert a.default is None


def entries(count: int, renamed: int | None = None) -> str:
    """``count`` models, each served by the server model of its own name; ``renamed``: that
    model is called ``r<i>`` (its server model keeps the name)."""
    lines = ["backends:\n  b: {kind: kserve, urls: ['http://127.0.0.1:9']}\nmodels:\n"]
    for i in range(count):
        name = f"r{i}" if i == renamed else f"m{i}"
        lines.append(f'  {name}: {{versions: {{"1": {{backend: b, name: m{i}}}}}}}\n')
    return "".join(lines)


def test_a_model_name_is_one_object_and_a_reload_keeps_it() -> None:
    first = parse_config(entries(600))  # more than one run of entries (fast_path._RUN)
    for name, served in first.table.models.items():
        assert served.versions["1"].name is name  # the table's key is the server model name
    second = parse_config(entries(600, renamed=5), previous=first)
    names = {name: name for name in first.table.models}
    kept = [name for name in second.table.models if names.get(name) is name]
    assert len(kept) == 599  # every name but the renamed one: the last load's objects
    assert second.table.models["m6"] is first.table.models["m6"]
    assert second.table.models["r5"].versions["1"].name == "m5"


def test_a_carried_over_model_keeps_its_compact_dict() -> None:
    first = big()
    second = parse_config(entries(100, renamed=3), previous=first)
    kept = first.table.models["m4"]
    fields = kept.__dict__
    assert second.table.models["m4"] is kept
    assert kept.__dict__ is fields
    assert smaller(kept)
    assert smaller(second.table.models["r3"])


def test_the_text_is_kept_compressed_and_read_as_it_was() -> None:
    text = entries(1000)
    loaded = parse_config(text)
    assert loaded.text == text
    assert len(loaded.packed) < len(text) / 5

"""The JSON Schema of routes.yaml: valid, strict about unknown keys and bad durations, and the
published routes.schema.json is the one the code generates."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.config.model import json_schema
from tests.support import REPO


def test_published_schema_is_up_to_date() -> None:
    published = json.loads((REPO / "routes.schema.json").read_text())
    assert published == json_schema(), "regenerate: gateway schema > routes.schema.json"


def _example() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "routes.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_json_schema_is_valid_and_accepts_the_example() -> None:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(_example())]
    assert errors == []


@pytest.mark.parametrize(
    "where",
    [
        (),
        ("backends", "triton"),
        ("backends", "triton", "health"),
        ("models", "fraud"),
        ("models", "fraud", "versions", "1"),
        ("routes", 0),
    ],
    ids=lambda where: ".".join(map(str, where)) or "top",
)
def test_json_schema_rejects_an_unknown_key(where: tuple[str | int, ...]) -> None:
    data = copy.deepcopy(_example())
    node: Any = data
    for step in where:
        node = node[step]
    node["surprise"] = 1
    validator = jsonschema.Draft202012Validator(json_schema())
    [error] = list(validator.iter_errors(data))
    assert tuple(error.absolute_path) == where
    assert "'surprise' was unexpected" in error.message


@pytest.mark.parametrize("timeout", ["2 seconds", "-1s", True, 0])
def test_json_schema_rejects_a_bad_duration(timeout: object) -> None:
    data = copy.deepcopy(_example())
    data["backends"]["triton"]["timeout"] = timeout
    validator = jsonschema.Draft202012Validator(json_schema())
    assert not validator.is_valid(data)

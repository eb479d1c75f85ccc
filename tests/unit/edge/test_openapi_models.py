"""A model's request schemas accept the requests the gateway serves and refuse what its
signature rules out (``gateway.edge.openapi_models``)."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from gateway.codecs.tensors import Signature, TensorMeta
from gateway.edge import openapi_models as models
from tests.support import V2

SIGNATURE = Signature(
    inputs=(TensorMeta("INPUT0", "FP32", (-1, 4)),),
    outputs=(TensorMeta("OUTPUT0", "FP32", (-1, 2)),),
)


def _valid(schema: dict[str, Any], body: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(body)


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        (V2, True),
        ({"inputs": [{**V2["inputs"][0], "name": "OTHER"}]}, False),
        ({"inputs": [{**V2["inputs"][0], "datatype": "INT64"}]}, False),
        ({"inputs": [{**V2["inputs"][0], "shape": [4]}]}, False),
        ({"inputs": []}, False),
    ],
)
def test_v2_request_schema_of_a_known_signature(body: dict[str, Any], valid: bool) -> None:
    assert _valid(models.v2_request(SIGNATURE), body) is valid


@pytest.mark.parametrize(
    ("body", "valid"),
    [
        ({"instances": [[1, 2, 3, 4], [5, 6, 7, 8]]}, True),
        ({"inputs": [[1, 2, 3, 4]]}, True),
        ({"instances": [[1, 2, 3]]}, False),
        ({"instances": [[1, 2, 3, 4]], "inputs": [[1, 2, 3, 4]]}, False),
        ({"instances": [["a", "b", "c", "d"]]}, False),
    ],
)
def test_v1_request_schema_of_a_known_signature(body: dict[str, Any], valid: bool) -> None:
    assert _valid(models.v1_request(SIGNATURE), body) is valid


def test_an_unknown_signature_gets_the_generic_schemas() -> None:
    other = {"inputs": [{"name": "x", "datatype": "BYTES", "shape": [1], "data": ["a"]}]}
    assert _valid(models.v2_request(None), other)
    assert _valid(models.v1_request(None), {"instances": [{"x": "a"}]})
    reply = {"model_name": "m", "model_version": "1", "outputs": [{**other["inputs"][0]}]}
    assert _valid(models.v2_response("m", ["1"], None), reply)


def test_bounds_of_integer_datatypes() -> None:
    assert models.element("UINT8") == {"type": "integer", "minimum": 0, "maximum": 255}
    assert models.element("BOOL") == {"type": "boolean"}
    assert models.nested({"type": "number"}, (-1, 3))["items"]["maxItems"] == 3

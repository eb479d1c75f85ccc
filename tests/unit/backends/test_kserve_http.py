"""KServe v2 metadata as a model server answers it: anything but the v2 shape is the server's
fault (502), never the gateway's (500)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.backends.kserve_http import parse_metadata
from gateway.errors import BadGateway


def test_v2_metadata_is_read() -> None:
    signature = parse_metadata(
        {
            "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [-1, 4]}],
            "outputs": [{"name": "OUTPUT0", "datatype": "FP32", "shape": [-1, 2]}],
        }
    )
    assert [(t.name, t.datatype, t.shape) for t in signature.inputs] == [
        ("INPUT0", "FP32", (-1, 4))
    ]
    assert [t.name for t in signature.outputs] == ["OUTPUT0"]


@pytest.mark.parametrize(
    "body",
    [
        [],  # a list, not an object
        "metadata",
        {"inputs": ["INPUT0"]},
        {"inputs": [{"name": "x", "datatype": ["FP32"], "shape": [1]}]},  # unhashable datatype
        {"inputs": [{"name": "x", "datatype": "FLOAT", "shape": [1]}]},
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": ["a"]}]},
        {"inputs": [{"datatype": "FP32", "shape": [1]}]},
    ],
)
def test_anything_else_is_a_bad_gateway(body: Any) -> None:
    with pytest.raises(BadGateway):
        parse_metadata(body)

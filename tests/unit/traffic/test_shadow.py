"""Comparing a shadow's answer with the primary's: exact, within a tolerance, or not at all."""

from __future__ import annotations

import json

from gateway.codecs import v1, v2
from gateway.codecs.tensors import InferenceResponse
from gateway.traffic.shadow import compare


def reply(*values: float) -> bytes:
    return json.dumps(
        {"outputs": [{"name": "y", "datatype": "FP32", "shape": [len(values)], "data": values}]}
    ).encode()


def test_compare_exact_tolerance_names_and_shapes() -> None:
    def answer(body: bytes) -> InferenceResponse:
        return v2.decode_response(body)

    a = answer(reply(1.0, 2.0))
    assert compare(a, a, 0.0) == (True, True)
    assert compare(a, answer(reply(1.0, 2.0000001)), 1e-6) == (False, True)
    assert compare(a, answer(reply(1.0, 2.1)), 1e-6) == (False, False)
    assert compare(a, answer(reply(1.0)), 1.0) == (False, False)
    renamed = answer(reply(1.0, 2.0).replace(b'"y"', b'"z"'))
    assert compare(a, renamed, 1.0) == (False, False)
    nan = v1.decode_response(b'{"predictions": [[NaN, 1e9]]}', None)
    close = v1.decode_response(b'{"predictions": [[NaN, 1000000001.0]]}', None)
    assert compare(nan, close, 1e-6) == (False, True)
    assert compare(nan, nan, 0.0) == (True, True)

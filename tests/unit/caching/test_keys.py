"""The cache key's values: a few JSON numbers packed without numpy give numpy's bytes."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest

from gateway.caching.keys import _values, digest
from gateway.codecs.tensors import InferenceRequest, Tensor

FLT_MAX = float(np.finfo(np.float32).max)
EDGES: list[Any] = [
    0.0,
    -0.0,
    1,
    -7,
    0.1,
    1 / 3,
    2**24 + 1,  # not an FP32: rounds
    2**53,
    -(2**53),
    1.4e-45,  # the smallest FP32 subnormal
    5e-324,  # a float64 subnormal: 0 in FP32
    FLT_MAX,
    3.4028235677973366e38,  # above FLT_MAX, rounds down to it
    123456.789,
]
FALLBACK: list[list[Any]] = [
    [1e39],  # an FP32 overflow: numpy's infinity
    [float("nan"), 1.0],
    [float("inf")],
    [True, 2.0],
    [2**53 + 1],
    [[1.0, 2.0]],  # nested
    [0.5] * 65,  # beyond the small path
]


def numpy_values(data: list[Any], datatype: str) -> bytes:
    dtype = np.float32 if datatype == "FP32" else np.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(data, dtype=dtype).astype("<f8").tobytes()


@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
@pytest.mark.parametrize("data", [[x] for x in EDGES] + [EDGES, [], *FALLBACK])
def test_json_numbers_give_numpys_values(datatype: str, data: list[Any]) -> None:
    tensor = Tensor("x", datatype, [len(data)], data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert _values(tensor) == numpy_values(data, datatype)


def test_json_numbers_and_raw_bytes_are_one_key() -> None:
    values = np.asarray([0.1, 2.5, -3.0, 1e-40], dtype=np.float32)
    as_json = Tensor("x", "FP32", [4], [float(v) for v in values])
    as_raw = Tensor("x", "FP32", [4], raw=values.astype("<f4").tobytes())
    assert digest(InferenceRequest([as_json])) == digest(InferenceRequest([as_raw]))
    other = Tensor("x", "FP32", [4], [0.1, 2.5, -3.0, 2e-40])
    assert digest(InferenceRequest([other])) != digest(InferenceRequest([as_json]))

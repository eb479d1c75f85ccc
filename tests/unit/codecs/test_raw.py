"""The raw form's table of datatypes, kept without numpy (``codecs/raw.py`` loads numpy on
first use): its element sizes are numpy's own, and BYTES has none."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import yaml

from gateway.codecs import raw
from gateway.codecs.datatypes import DATATYPES
from gateway.config.model import RouteTable
from gateway.config.reload import converts_tensors

NUMPY = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
}


def test_every_datatype_but_bytes_has_its_numpy_type() -> None:
    assert set(NUMPY) == DATATYPES - {"BYTES"}


@pytest.mark.parametrize("datatype", sorted(NUMPY))
def test_sizes_and_types_are_numpys(datatype: str) -> None:
    assert raw.dtype(datatype) == NUMPY[datatype]
    assert raw.element_size(datatype) == NUMPY[datatype].itemsize


def test_bytes_has_no_element_size_and_no_numpy_type() -> None:
    assert raw.element_size("BYTES") is None
    with pytest.raises(KeyError):
        raw.dtype("BYTES")


def test_load_leaves_numpy_loaded() -> None:
    raw.load()
    assert raw.loaded()


def _table(models: str, backend: str) -> RouteTable:
    if ", urls:" not in backend:
        backend += ', urls: ["http://127.0.0.1:9"]'
    text = f"""
backends:
  b: {{{backend}}}
models:
{models}
"""

    return RouteTable.model_validate(yaml.safe_load(text))


ONE = '  m: {versions: {"1": {backend: b}}}'
CACHED = '  m: {versions: {"1": {backend: b}}, deterministic: true, cache: {ttl: 5s}}'
BATCHED = (
    '  m: {versions: {"1": {backend: b, batching: {max_batch_size: 4}, '
    "inputs: [{name: x, datatype: FP32, shape: [-1, 2]}]}}}"
)


@pytest.mark.parametrize(
    ("models", "backend", "converts"),
    [
        (ONE, "kind: kserve", False),
        (ONE, 'kind: torchserve, management_urls: ["http://127.0.0.1:9"]', False),
        (ONE, "kind: triton, binary_data: auto", False),
        (ONE, "kind: triton, binary_data: always", True),
        (ONE, "kind: kserve, protocol: grpc, urls: [grpc://127.0.0.1:9]", True),
        (ONE, "kind: tfserving", True),
        (CACHED, "kind: kserve", True),
        (BATCHED, "kind: kserve", True),
    ],
)
def test_a_table_converts_tensors_with_a_cache_batching_or_backends_that_take_no_json(
    models: str, backend: str, converts: bool
) -> None:
    assert converts_tensors(_table(models, backend)) is converts

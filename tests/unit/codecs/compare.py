"""Comparing tensors in the codec tests: without their parameters, NaN equal to NaN, text equal
to its UTF-8 bytes; and the status a codec's error carries."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest

from gateway.codecs.tensors import Signature, Tensor, TensorMeta
from gateway.errors import GatewayError

# (name, datatype, shape, data): a tensor without its parameters, for comparisons.
Plain = tuple[str, str, list[int], list[Any]]


def plain(tensors: list[Tensor]) -> list[Plain]:
    return [(t.name, t.datatype, t.shape, t.data) for t in tensors]


def _value(item: Any) -> tuple[str, Any]:
    if isinstance(item, str):
        return ("bytes", item.encode())  # a BYTES element may be held as text or bytes
    if isinstance(item, bytes):
        return ("bytes", item)
    if isinstance(item, bool):
        return ("bool", item)
    if isinstance(item, float) and math.isnan(item):
        return ("nan", None)
    return ("number", item)  # 1 == 1.0, as in JSON


def same_values(left: list[Any], right: list[Any]) -> bool:
    """The same tensor values: NaN equals NaN, text equals its UTF-8 bytes."""
    return [_value(x) for x in left] == [_value(x) for x in right]


def signature(*inputs: TensorMeta) -> Signature:
    return Signature(inputs=inputs, outputs=())


def raises(
    error: type[GatewayError], status: int, call: Callable[..., object], *args: Any
) -> GatewayError:
    with pytest.raises(error) as caught:
        call(*args)
    assert caught.value.status == status
    return caught.value

"""The unified tensors of :mod:`gateway.codecs.tensors`: nesting and flattening, fitting a request
to the model's declared inputs, and the translations between v1 and v2 through them."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from gateway.codecs import v1, v2
from gateway.codecs.tensors import (
    InferenceRequest,
    Signature,
    Tensor,
    TensorMeta,
    _fits_in_order,
    check_inputs,
    flatten,
    nest,
    shape_fits,
)
from gateway.errors import BadRequest, InvalidTensor
from tests.unit.codecs.compare import Plain, plain, raises, same_values, signature

DECODE = {"v1": v1.decode_request, "v2": v2.decode_request}
# What a reader of v1 JSON, which has no datatypes, infers from the numbers alone.
V1_INFERS = {"FP16": "FP32", "FP64": "FP32", "BF16": "FP32", "INT32": "INT64", "INT8": "INT64"}


# ---------------------------------------------------------------------------------------------
# flatten / nest


@pytest.mark.parametrize(
    "shape",
    [[], [0], [1], [3], [2, 0], [3, 2, 0], [2, 3], [3, 1], [1, 1, 1, 3], [2, 3, 4]],
    ids=str,
)
def test_nest_then_flatten_gives_back_data_and_shape(shape: list[int]) -> None:
    flat = list(range(math.prod(shape)))
    flattened = flatten(nest(flat, shape), "x")
    assert (flattened.data, flattened.shape) == (flat, shape)
    assert flattened.kinds == {type(x) for x in flat}


@pytest.mark.parametrize(
    ("shape", "nested"),
    [
        pytest.param(shape, nested, id=str(shape))
        for shape, nested in [
            ([], 0),
            ([0], []),
            ([3], [0, 1, 2]),
            ([2, 0], [[], []]),
            ([2, 3], [[0, 1, 2], [3, 4, 5]]),
            ([3, 1], [[0], [1], [2]]),
            ([1, 1, 1, 3], [[[[0, 1, 2]]]]),
            ([2, 1, 2], [[[0, 1]], [[2, 3]]]),
        ]
    ],
)
def test_nest_builds_row_major_lists(shape: list[int], nested: Any) -> None:
    assert nest(list(range(math.prod(shape))), shape) == nested


@pytest.mark.parametrize(
    "value", [[[1], [2, 3]], [[1, 2], 3], [1, [2]], [[[1]], [[2], [3]]], [[], [1]], [[1], []]]
)
def test_flatten_rejects_ragged_lists(value: Any) -> None:
    error = raises(BadRequest, 400, flatten, value, "instances")
    assert error.message.startswith("instances: ragged nested list")


# ---------------------------------------------------------------------------------------------
# Across protocols: what one side says, the other side reads back the same


@pytest.mark.parametrize(
    ("body", "inputs"),
    [
        pytest.param(
            b'{"instances": [[1, 2], [3, 4]]}', (TensorMeta("x", "FP32", (-1, 2)),), id="rows-fp32"
        ),
        pytest.param(b'{"inputs": 2.5}', (TensorMeta("s", "FP64", ()),), id="scalar"),
        pytest.param(
            b'{"instances": [NaN, Infinity, -Infinity]}',
            (TensorMeta("x", "FP32", (-1,)),),
            id="non-finite",
        ),
        pytest.param(
            b'{"instances": [{"a": [1.5, 2], "b": {"b64": "/w=="}}, {"a": [3, 4], "b": "ok"}]}',
            (TensorMeta("a", "FP32", (-1, 2)), TensorMeta("b", "BYTES", (-1,))),
            id="named-rows-with-binary",
        ),
        pytest.param(
            b'{"inputs": {"i": [[1, 2, 3]], "f": [[true]]}}',
            (TensorMeta("i", "INT32", (1, 3)), TensorMeta("f", "BOOL", (1, 1))),
            id="named-columns",
        ),
    ],
)
def test_v1_request_through_v2_and_back(body: bytes, inputs: tuple[TensorMeta, ...]) -> None:
    request = v1.decode_request(body)
    check_inputs(request, signature(*inputs))
    expected = plain(request.inputs)

    as_v2 = v2.decode_request(v2.encode_request(request))
    assert [(n, d, s) for n, d, s, _ in plain(as_v2.inputs)] == [
        (n, d, s) for n, d, s, _ in expected
    ]
    for got, want in zip(as_v2.inputs, expected, strict=True):
        assert same_values(got.data, want[3])

    back = v1.decode_request(v1.encode_request(as_v2, columnar=request.columnar, named=True))
    check_inputs(back, signature(*inputs))
    for got, want in zip(back.inputs, expected, strict=True):
        assert (got.name, got.datatype, got.shape) == want[:3]
        assert same_values(got.data, want[3])


@pytest.mark.parametrize(
    ("tensors", "columnar"),
    [
        pytest.param([Tensor("x", "FP32", [2, 2], [1, 2, 3, 4])], False, id="fp32-int-literals"),
        pytest.param([Tensor("x", "FP64", [3], [0.5, math.nan, -math.inf])], True, id="nan"),
        pytest.param([Tensor("x", "INT64", [1, 3], [1, -2, 3])], False, id="int64"),
        pytest.param([Tensor("x", "INT32", [2], [5, 6])], True, id="int32"),
        pytest.param([Tensor("x", "FP64", [2], [1, 2])], False, id="fp64-int-literals"),
        pytest.param([Tensor("x", "BOOL", [2], [True, False])], True, id="bool"),
        pytest.param([Tensor("x", "BYTES", [2], ["a", "b"])], False, id="strings"),
        pytest.param([Tensor("x", "BYTES", [1], [b"\x00\xff"])], True, id="binary"),
        pytest.param([Tensor("x", "FP32", [], [7.0])], True, id="scalar"),
        pytest.param([Tensor("x", "FP32", [2, 0], [])], True, id="zero-width"),
        pytest.param([Tensor("x", "FP32", [1, 1, 1, 3], [1.0, 2.0, 3.0])], False, id="deep"),
        pytest.param(
            [Tensor("a", "FP32", [2], [1.0, 2.0]), Tensor("b", "BYTES", [2, 1], ["x", "y"])],
            False,
            id="two-inputs-rows",
        ),
        pytest.param(
            [Tensor("a", "INT64", [1, 2], [1, 2]), Tensor("b", "FP32", [3], [1.0, 2.0, 3.0])],
            True,
            id="two-inputs-columns",
        ),
    ],
)
def test_v2_request_through_v1_and_back(tensors: list[Tensor], columnar: bool) -> None:
    v2_body = v2.encode_request(InferenceRequest(inputs=tensors))
    request = v2.decode_request(v2_body)

    as_v1 = v1.decode_request(v1.encode_request(request, columnar=columnar, named=True))
    for got, want in zip(as_v1.inputs, tensors, strict=True):
        # Rows of a single input are its bare values (PROTOCOLS.md §4.3): the name is not sent.
        name = want.name if columnar or len(tensors) > 1 else "input_0"
        inferred = V1_INFERS.get(want.datatype, want.datatype)
        assert (got.name, got.datatype, got.shape) == (name, inferred, want.shape)
        assert same_values(got.data, want.data)

    # The v1 server knows its own datatypes; the gateway learns them from its signature.
    check_inputs(as_v1, signature(*(TensorMeta(t.name, t.datatype, None) for t in tensors)))
    back = v2.decode_request(v2.encode_request(as_v1))
    for got, want in zip(back.inputs, tensors, strict=True):
        assert (got.name, got.datatype, got.shape) == (want.name, want.datatype, want.shape)
        assert same_values(got.data, want.data)


# ---------------------------------------------------------------------------------------------
# check_inputs: fitting a request to the model's declared inputs

X = TensorMeta("x", "FP32", (-1, 4))


@pytest.mark.parametrize(
    ("protocol", "body", "inputs", "fragment"),
    [
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"z","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}',
            (X,),
            "missing input(s): x",
            id="v2-wrong-name",
        ),
        pytest.param(
            "v1",
            b'{"inputs": {"z": [[1, 2, 3, 4]]}}',
            (X,),
            "missing input(s): x",
            id="v1-wrong-name",
        ),
        pytest.param(
            "v1",
            b'{"instances": [{"x": [1, 2, 3, 4], "z": 1}]}',
            (X,),
            "unexpected input 'z'; the model takes x",
            id="v1-extra-input",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]},'
            b'{"name":"z","shape":[1],"datatype":"FP32","data":[1]}]}',
            (X,),
            "unexpected input 'z'",
            id="v2-extra-input",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}',
            (X,),
            "input 'x' has datatype INT64, the model expects FP32",
            id="v2-wrong-dtype",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP64","data":[1,2,3,4]}]}',
            (X,),
            "input 'x' has datatype FP64, the model expects FP32",
            id="v2-wider-float",
        ),
        pytest.param(
            "v1",
            b'{"instances": [["a", "b", "c", "d"]]}',
            (X,),
            "input 'x' has datatype BYTES, the model expects FP32",
            id="v1-strings-for-floats",
        ),
        pytest.param(
            "v1",
            b'{"instances": [1.5, 2]}',
            (TensorMeta("i", "INT64", (-1,)),),
            "has datatype FP32, the model expects INT64",
            id="v1-floats-for-ints",
        ),
        pytest.param(
            "v1",
            b'{"instances": [[1, 2, 3]]}',
            (X,),
            "input 'x' has shape [1, 3], the model expects [-1, 4]",
            id="v1-wrong-width",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[4],"datatype":"FP32","data":[1,2,3,4]}]}',
            (X,),
            "has shape [4], the model expects [-1, 4]",
            id="v2-wrong-rank",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}',
            (TensorMeta("x", "FP32", (2, 4)),),
            "has shape [2, 2], the model expects [2, 4]",
            id="v2-fixed-shape",
        ),
        pytest.param(
            "v1",
            b'{"instances": [{"a": 1}]}',
            (TensorMeta("a", "FP32", None), TensorMeta("b", "BYTES", (-1,))),
            "missing input(s): b",
            id="missing-second",
        ),
    ],
)
def test_check_inputs_rejects_with_422(
    protocol: str, body: bytes, inputs: tuple[TensorMeta, ...], fragment: str
) -> None:
    request = DECODE[protocol](body)
    error = raises(InvalidTensor, 422, check_inputs, request, signature(*inputs))
    assert error.code == "invalid_tensor"
    assert fragment in error.message


@pytest.mark.parametrize(
    ("protocol", "body", "inputs", "tensors"),
    [
        pytest.param(
            "v1",
            b'{"instances": [[1, 2, 3, 4]]}',
            (X,),
            [("x", "FP32", [1, 4], [1.0, 2.0, 3.0, 4.0])],
            id="v1-unnamed-takes-the-name",
        ),
        pytest.param(
            "v1",
            b'{"inputs": [1, 2]}',
            (TensorMeta("ids", "INT32", (-1,)),),
            [("ids", "INT32", [2], [1, 2])],
            id="v1-ints-to-int32",
        ),
        pytest.param(
            "v1",
            b'{"instances": [{"a": [1], "b": "s"}]}',
            (TensorMeta("a", "FP64", None), TensorMeta("b", "BYTES", (-1,))),
            [("a", "FP64", [1, 1], [1.0]), ("b", "BYTES", [1], ["s"])],
            id="v1-named-any-rank",
        ),
        pytest.param(
            "v2",
            b'{"inputs":[{"name":"x","shape":[3,4],"datatype":"FP32","data":[0,0,0,0,'
            b"0,0,0,0,0,0,0,0]}]}",
            (X,),
            [("x", "FP32", [3, 4], [0] * 12)],
            id="v2-fits",
        ),
    ],
)
def test_check_inputs_fits_the_request(
    protocol: str, body: bytes, inputs: tuple[TensorMeta, ...], tensors: list[Plain]
) -> None:
    request = DECODE[protocol](body)
    check_inputs(request, signature(*inputs))
    assert plain(request.inputs) == tensors


SHAPES = [[], [1], [4], [1, 4], [3, 4], [4, 1], [2, 2], [1, 4, 1], [0, 4]]
DECLARED = [None, (), (-1,), (4,), (-1, 4), (1, 4), (2, -1), (-1, -1, -1), (3, 4)]


@pytest.mark.parametrize("declared", DECLARED, ids=str)
def test_the_in_order_fit_agrees_with_shape_fits(declared: tuple[int, ...] | None) -> None:
    """The common case's in-order check fits exactly the shapes shape_fits does."""
    meta = TensorMeta("x", "FP32", declared)
    for shape in SHAPES:
        inputs = [Tensor("x", "FP32", shape, [0.0] * math.prod(shape))]
        assert _fits_in_order(inputs, (meta,)) is shape_fits(shape, declared), shape


def test_check_inputs_makes_v1_ints_floats_for_a_float_model() -> None:
    request = v1.decode_request(b'{"instances": [[1, 2, 3, 4]]}')
    check_inputs(request, signature(X))
    [tensor] = request.inputs
    assert [type(v) for v in tensor.data] == [float] * 4
    assert json.loads(v1.encode_request(request, columnar=False, named=False)) == {
        "instances": [[1.0, 2.0, 3.0, 4.0]]
    }


@pytest.mark.parametrize("sig", [None, Signature((), ())])
def test_check_inputs_without_a_signature_changes_nothing(sig: Signature | None) -> None:
    request = v1.decode_request(b'{"instances": [[1, 2]]}')
    check_inputs(request, sig)
    assert plain(request.inputs) == [("input_0", "INT64", [1, 2], [1, 2])]

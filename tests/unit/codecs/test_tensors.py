"""The JSON codecs: TF Serving's v1 (rows/columns), the Open Inference Protocol v2, and the
translations between them through the unified tensors of :mod:`gateway.inference`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from gateway.codecs import v1, v2
from gateway.codecs.tensors import (
    InferenceRequest,
    InferenceResponse,
    Signature,
    Tensor,
    TensorMeta,
    check_inputs,
    flatten,
    nest,
)
from gateway.errors import BadGateway, BadRequest, GatewayError, InvalidTensor

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


DECODE = {"v1": v1.decode_request, "v2": v2.decode_request}
# What a reader of v1 JSON, which has no datatypes, infers from the numbers alone.
V1_INFERS = {"FP16": "FP32", "FP64": "FP32", "BF16": "FP32", "INT32": "INT64", "INT8": "INT64"}


def raises(
    error: type[GatewayError], status: int, call: Callable[..., object], *args: Any
) -> GatewayError:
    with pytest.raises(error) as caught:
        call(*args)
    assert caught.value.status == status
    return caught.value


# ---------------------------------------------------------------------------------------------
# flatten / nest


@pytest.mark.parametrize(
    "shape",
    [[], [0], [1], [3], [2, 0], [3, 2, 0], [2, 3], [3, 1], [1, 1, 1, 3], [2, 3, 4]],
    ids=str,
)
def test_nest_then_flatten_gives_back_data_and_shape(shape: list[int]) -> None:
    flat = list(range(math.prod(shape)))
    assert flatten(nest(flat, shape), "x") == (flat, shape)


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
# v1: TF Serving's predict JSON


@pytest.mark.parametrize(
    ("body", "columnar", "tensors"),
    [
        pytest.param(
            b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}',
            False,
            [("input_0", "FP32", [2, 2], [1.0, 2.0, 3.0, 4.0])],
            id="rows",
        ),
        pytest.param(
            b'{"signature_name": "serving_default", "inputs": [3.0, 4.0]}',
            True,
            [("input_0", "FP32", [2], [3.0, 4.0])],
            id="columns",
        ),
        pytest.param(b'{"inputs": 3.5}', True, [("input_0", "FP32", [], [3.5])], id="scalar"),
        pytest.param(
            b'{"instances": [1, 2, 3]}', False, [("input_0", "INT64", [3], [1, 2, 3])], id="ints"
        ),
        pytest.param(
            b'{"instances": [1, 2.5]}', False, [("input_0", "FP32", [2], [1, 2.5])], id="mixed"
        ),
        pytest.param(
            b'{"instances": [true, false]}',
            False,
            [("input_0", "BOOL", [2], [True, False])],
            id="bools",
        ),
        pytest.param(
            b'{"instances": [["a", "b"]]}',
            False,
            [("input_0", "BYTES", [1, 2], ["a", "b"])],
            id="strings",
        ),
        pytest.param(b'{"inputs": []}', True, [("input_0", "FP32", [0], [])], id="empty-column"),
        pytest.param(
            b'{"instances": [{"x": 1.5}, {"x": 2.5}]}',
            False,
            [("x", "FP32", [2], [1.5, 2.5])],
            id="one-named-row-input",
        ),
        pytest.param(
            b'{"instances": [{"a": [1, 2], "b": "x"}, {"a": [3, 4], "b": "y"}]}',
            False,
            [("a", "INT64", [2, 2], [1, 2, 3, 4]), ("b", "BYTES", [2], ["x", "y"])],
            id="named-rows",
        ),
        pytest.param(
            b'{"instances": [{"a": 1, "b": "x"}, {"b": "y", "a": 2}]}',
            False,
            [("a", "INT64", [2], [1, 2]), ("b", "BYTES", [2], ["x", "y"])],
            id="named-rows-any-key-order",
        ),
        pytest.param(
            b'{"inputs": {"a": [[1, 2]], "b": [true]}}',
            True,
            [("a", "INT64", [1, 2], [1, 2]), ("b", "BOOL", [1], [True])],
            id="named-columns",
        ),
        pytest.param(
            b'{"instances": [{"b64": "aGVsbG8="}, {"b64": "/w=="}]}',
            False,
            [("input_0", "BYTES", [2], [b"hello", b"\xff"])],
            id="b64-rows",
        ),
        pytest.param(
            b'{"instances": [{"img": {"b64": "AAE="}, "k": 3}]}',
            False,
            [("img", "BYTES", [1], [b"\x00\x01"]), ("k", "INT64", [1], [3])],
            id="b64-in-named-row",
        ),
        pytest.param(
            b'{"inputs": {"img": [{"b64": "AAE="}, "plain"]}}',
            True,
            [("img", "BYTES", [2], [b"\x00\x01", "plain"])],
            id="b64-in-named-column",
        ),
    ],
)
def test_v1_decode_request(body: bytes, columnar: bool, tensors: list[Plain]) -> None:
    request = v1.decode_request(body)
    assert plain(request.inputs) == tensors
    assert request.typed is False  # datatypes were guessed: fitted to the model later
    assert request.columnar is columnar
    assert request.v2_json is None


def test_v1_signature_name_is_kept() -> None:
    request = v1.decode_request(b'{"signature_name": "serving_default", "inputs": [1.0]}')
    assert request.signature_name == "serving_default"
    sent = json.loads(v1.encode_request(request, columnar=True, named=False))
    assert sent == {"signature_name": "serving_default", "inputs": [1.0]}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b'{"instances": [[1, 2], [3]]}', "ragged", id="ragged-short-row"),
        pytest.param(b'{"instances": [[1, 2], 3]}', "ragged", id="ragged-scalar-row"),
        pytest.param(b'{"instances": [1, [2]]}', "ragged", id="ragged-list-late"),
        pytest.param(b'{"inputs": [[[1], [2]], [[3], 4]]}', "ragged", id="ragged-deep"),
        pytest.param(
            b'{"instances": [{"a": [1, 2]}, {"a": [3]}]}', "instances.a: ragged", id="ragged-named"
        ),
        pytest.param(b'{"instances": [1], "inputs": [1]}', "exactly one of", id="both-keys"),
        pytest.param(b'{"signature_name": "s"}', "exactly one of", id="neither-key"),
        pytest.param(b'{"instances": []}', "non-empty list", id="empty-instances"),
        pytest.param(b'{"instances": 3}', "non-empty list", id="instances-not-list"),
        pytest.param(b'{"inputs": {}}', "empty object", id="empty-named-inputs"),
        pytest.param(b"[1, 2]", "must be a JSON object", id="list-body"),
        pytest.param(b'"text"', "must be a JSON object", id="string-body"),
        pytest.param(b"", "body is empty", id="empty-body"),
        pytest.param(b"  \n", "body is empty", id="blank-body"),
        pytest.param(b'{"instances": [1, 2', "not valid JSON", id="truncated"),
        pytest.param(b'{"inputs": [1, null]}', "null is not a tensor value", id="null"),
        pytest.param(b'{"inputs": [1, "a"]}', "mixes numbers, strings", id="mixed-types"),
        pytest.param(b'{"inputs": [1, true]}', "mixes numbers, strings", id="number-and-bool"),
        pytest.param(b'{"inputs": [{"b64": "!!"}]}', "invalid base64", id="bad-base64"),
        pytest.param(b'{"inputs": [{"b64": 5}]}', '{"b64": "..."}', id="b64-not-string"),
        pytest.param(b'{"inputs": [{"x": 1}, {"x": 2}]}', '{"b64": "..."}', id="object-value"),
        pytest.param(
            b'{"instances": [{"a": 1}, {"b": 2}]}', "instances[1]: every row", id="row-names-differ"
        ),
        pytest.param(b'{"instances": [{"a": 1}, 5]}', "instances[1]: every row", id="row-not-obj"),
        pytest.param(
            b'{"signature_name": 3, "inputs": [1]}', "'signature_name' must be", id="bad-signature"
        ),
    ],
)
def test_v1_bad_requests_are_400(body: bytes, fragment: str) -> None:
    error = raises(BadRequest, 400, v1.decode_request, body)
    assert error.code == "bad_request"
    assert fragment in error.message


@pytest.mark.parametrize(
    ("body", "columnar", "named"),
    [
        (b'{"instances": [[1.0, 2.0], [3.0, 4.0]]}', False, False),
        (b'{"instances": [1, 2, 3]}', False, False),
        (b'{"instances": [{"b64": "aGVsbG8="}, {"b64": "/w=="}]}', False, False),
        (
            b'{"instances": [{"a": [1, 2], "b": {"b64": "AAE="}}, {"a": [3, 4], "b": "z"}]}',
            False,
            True,
        ),
        (b'{"inputs": [[true], [false]]}', True, False),
        (b'{"inputs": 2.5}', True, False),
        (b'{"inputs": {"a": [[1.5, 2.5]], "b": [{"b64": "/w=="}]}}', True, True),
    ],
)
def test_v1_request_re_encodes_to_the_same_json(body: bytes, columnar: bool, named: bool) -> None:
    encoded = v1.encode_request(v1.decode_request(body), columnar=columnar, named=named)
    assert json.loads(encoded) == json.loads(body)


@pytest.mark.parametrize("key", ["instances", "inputs"])
def test_v1_non_finite_numbers_survive(key: str) -> None:
    request = v1.decode_request(f'{{"{key}": [NaN, Infinity, -Infinity, 1.5]}}'.encode())
    [tensor] = request.inputs
    assert tensor.datatype == "FP32"
    assert math.isnan(tensor.data[0])
    assert tensor.data[1:] == [math.inf, -math.inf, 1.5]

    encoded = v1.encode_request(request, columnar=key == "inputs", named=False)
    assert encoded.replace(b" ", b"") == f'{{"{key}":[NaN,Infinity,-Infinity,1.5]}}'.encode()


def test_v1_response_writes_non_finite_numbers_as_tokens() -> None:
    response = InferenceResponse(outputs=[Tensor("y", "FP64", [2, 1], [math.nan, -math.inf])])
    rows = v1.encode_response(response, columnar=False)
    assert rows.replace(b" ", b"") == b'{"predictions":[[NaN],[-Infinity]]}'
    columns = v1.encode_response(response, columnar=True)
    assert columns.replace(b" ", b"") == b'{"outputs":[[NaN],[-Infinity]]}'


@pytest.mark.parametrize(
    ("outputs", "columnar", "expected"),
    [
        pytest.param(
            [Tensor("y", "FP32", [2, 2], [2.5, 3.0, 3.5, 4.0])],
            False,
            {"predictions": [[2.5, 3.0], [3.5, 4.0]]},
            id="rows-single",
        ),
        pytest.param(
            [Tensor("y", "FP32", [2], [3.5, 4.0])],
            True,
            {"outputs": [3.5, 4.0]},
            id="columns-single",
        ),
        pytest.param(
            [Tensor("s", "FP32", [], [1.5])], False, {"predictions": [1.5]}, id="rows-scalar"
        ),
        pytest.param(
            [Tensor("p", "FP32", [2, 2], [0.1, 0.9, 0.8, 0.2]), Tensor("c", "INT64", [2], [1, 0])],
            False,
            {"predictions": [{"p": [0.1, 0.9], "c": 1}, {"p": [0.8, 0.2], "c": 0}]},
            id="rows-several",
        ),
        pytest.param(
            [Tensor("p", "FP32", [1, 2], [0.1, 0.9]), Tensor("c", "INT64", [1], [1])],
            True,
            {"outputs": {"p": [[0.1, 0.9]], "c": [1]}},
            id="columns-several",
        ),
        pytest.param(
            [Tensor("img_bytes", "BYTES", [1], [b"\xff\x00"])],
            False,
            {"predictions": [{"b64": "/wA="}]},
            id="bytes-as-b64",
        ),
    ],
)
def test_v1_encode_response(outputs: list[Tensor], columnar: bool, expected: Any) -> None:
    encoded = v1.encode_response(InferenceResponse(outputs=outputs), columnar=columnar)
    assert json.loads(encoded) == expected


def test_v1_rows_need_a_shared_batch_dimension() -> None:
    outputs = [Tensor("a", "FP32", [2], [1.0, 2.0]), Tensor("b", "FP32", [3], [1.0, 2.0, 3.0])]
    response = InferenceResponse(outputs=outputs)
    error = raises(BadGateway, 502, lambda: v1.encode_response(response, columnar=False))
    assert "batch" in error.message


Y = TensorMeta("y", "FP32", (-1, 2))


@pytest.mark.parametrize(
    ("body", "sig", "names", "tensors"),
    [
        pytest.param(
            b'{"predictions": [[2.5, 3.0], [3.5, 4.0]]}',
            Signature((), (Y,)),
            None,
            [("y", "FP32", [2, 2], [2.5, 3.0, 3.5, 4.0])],
            id="declared-output-name",
        ),
        pytest.param(
            b'{"predictions": [[2, 3]]}',
            Signature((), (Y,)),
            None,
            [("y", "FP32", [1, 2], [2, 3])],
            id="declared-datatype",
        ),
        pytest.param(
            b'{"predictions": [0.5, 0.7]}',
            None,
            ["score"],
            [("score", "FP32", [2], [0.5, 0.7])],
            id="name-from-metadata",
        ),
        pytest.param(
            b'{"outputs": [0.5]}', None, None, [("output_0", "FP32", [1], [0.5])], id="no-name"
        ),
        pytest.param(
            b'{"predictions": [{"p": 0.1, "c": "a"}, {"p": 0.2, "c": "b"}]}',
            None,
            None,
            [("p", "FP32", [2], [0.1, 0.2]), ("c", "BYTES", [2], ["a", "b"])],
            id="named-rows",
        ),
        pytest.param(
            b'{"outputs": {"p": [[0.1]], "img_bytes": [{"b64": "/w=="}]}}',
            None,
            None,
            [("p", "FP32", [1, 1], [0.1]), ("img_bytes", "BYTES", [1], [b"\xff"])],
            id="named-columns-b64",
        ),
    ],
)
def test_v1_decode_response(
    body: bytes, sig: Signature | None, names: list[str] | None, tensors: list[Plain]
) -> None:
    assert plain(v1.decode_response(body, sig, names).outputs) == tensors


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"<html>oops</html>", "the model server's reply is", id="html"),
        pytest.param(b"", "the model server's reply is", id="empty"),
        pytest.param(b'{"error": "Failed"}', "neither 'predictions' nor 'outputs'", id="error"),
        pytest.param(b"[1, 2]", "neither 'predictions' nor 'outputs'", id="list"),
        pytest.param(b'{"predictions": 3}', "'predictions' is not a list", id="scalar"),
        pytest.param(b'{"predictions": [[1, 2], [3]]}', "ragged", id="ragged"),
        pytest.param(b'{"outputs": [1, null]}', "null", id="null"),
        pytest.param(b'{"outputs": {}}', "empty object", id="empty-outputs"),
    ],
)
def test_v1_bad_backend_replies_are_502(body: bytes, fragment: str) -> None:
    error = raises(BadGateway, 502, v1.decode_response, body, None)
    assert error.code == "bad_gateway"
    assert fragment in error.message


# ---------------------------------------------------------------------------------------------
# v2: the Open Inference Protocol


@pytest.mark.parametrize(
    ("body", "tensors"),
    [
        pytest.param(
            b'{"inputs":[{"name":"INPUT0","shape":[2,4],"datatype":"FP32",'
            b'"data":[1,2,3,4,0.5,0,0,1]}]}',
            [("INPUT0", "FP32", [2, 4], [1, 2, 3, 4, 0.5, 0, 0, 1])],
            id="flat",
        ),
        pytest.param(
            b'{"inputs":[{"name":"x","shape":[2,2],"datatype":"INT32","data":[[1,2],[3,4]]}]}',
            [("x", "INT32", [2, 2], [1, 2, 3, 4])],
            id="nested",
        ),
        pytest.param(
            b'{"inputs":[{"name":"s","shape":[],"datatype":"FP64","data":[5.5]}]}',
            [("s", "FP64", [], [5.5])],
            id="scalar",
        ),
        pytest.param(
            b'{"inputs":[{"name":"e","shape":[0,3],"datatype":"FP32","data":[]}]}',
            [("e", "FP32", [0, 3], [])],
            id="empty",
        ),
        pytest.param(
            b'{"inputs":[{"name":"t","shape":[2],"datatype":"BYTES","data":["a","b"]},'
            b'{"name":"m","shape":[2],"datatype":"BOOL","data":[true,false]}]}',
            [("t", "BYTES", [2], ["a", "b"]), ("m", "BOOL", [2], [True, False])],
            id="several",
        ),
        pytest.param(
            b'{"inputs":[{"name":"b","shape":[2],"datatype":"BYTES","data":["/w==","aGk="],'
            b'"parameters":{"content_type":"base64"}}]}',
            [("b", "BYTES", [2], [b"\xff", b"hi"])],
            id="base64-bytes",
        ),
    ],
)
def test_v2_decode_request(body: bytes, tensors: list[Plain]) -> None:
    request = v2.decode_request(body)
    assert plain(request.inputs) == tensors
    assert (request.typed, request.columnar, request.v2_json) == (True, True, body)


def test_v2_keeps_id_parameters_and_requested_outputs() -> None:
    body = {
        "id": "req-1",
        "parameters": {"priority": 2},
        "inputs": [
            {
                "name": "x",
                "shape": [1],
                "datatype": "FP32",
                "data": [1.5],
                "parameters": {"content_type": "np"},
            }
        ],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": False}}],
    }
    request = v2.decode_request(json.dumps(body).encode())
    assert request.id == "req-1"
    assert request.parameters == {"priority": 2}
    assert request.outputs == [{"name": "OUTPUT0", "parameters": {"binary_data": False}}]
    assert request.inputs[0].parameters == {"content_type": "np"}
    assert json.loads(v2.encode_request(request)) == body


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(
            {"inputs": [{"name": "x", "shape": [2, 3], "datatype": "FP32", "data": [1, 2, 3, 4]}]},
            "shape [2, 3] needs 6 values, got 4",
            id="count-mismatch",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [[1, 2]]}]},
            "needs 1 values, got 2",
            id="nested-too-many",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [2], "datatype": "FP32", "data": [[1, 2], [3]]}]},
            "ragged",
            id="ragged",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FLOAT", "data": [1]}]},
            "inputs[0].datatype 'FLOAT' is not a v2 datatype",
            id="bad-datatype",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1], "data": [1]}]},
            "inputs[0].datatype None",
            id="no-datatype",
        ),
        pytest.param(
            {"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]},
            "inputs[0].name must be a non-empty string",
            id="no-name",
        ),
        pytest.param(
            {"inputs": [{"name": "", "shape": [1], "datatype": "FP32", "data": [1]}]},
            "inputs[0].name must be",
            id="empty-name",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32", "data": [1]}]},
            "shape must be a list of non-negative integers",
            id="negative-dim",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": "1", "datatype": "FP32", "data": [1]}]},
            "shape must be a list",
            id="shape-not-list",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [True], "datatype": "FP32", "data": [1]}]},
            "shape must be a list",
            id="shape-bool",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32"}]},
            "inputs[0] has no 'data'",
            id="no-data",
        ),
        pytest.param(
            {
                "inputs": [
                    {"name": "x", "shape": [1], "datatype": "FP32", "data": [1]},
                    {"name": "y", "shape": [2], "datatype": "FP32", "data": [1]},
                ]
            },
            "inputs[1]: shape [2] needs 2 values",
            id="second-input",
        ),
        pytest.param(
            {
                "inputs": [
                    {
                        "name": "b",
                        "shape": [1],
                        "datatype": "BYTES",
                        "data": ["%%"],
                        "parameters": {"content_type": "base64"},
                    }
                ]
            },
            "invalid base64",
            id="bad-base64",
        ),
        pytest.param({"inputs": [5]}, "inputs[0] must be an object", id="input-not-object"),
        pytest.param({"inputs": []}, "'inputs' must be a non-empty list", id="no-inputs"),
        pytest.param({"id": "x"}, "'inputs' must be a non-empty list", id="inputs-missing"),
        pytest.param([1], "must be a JSON object", id="list-body"),
        pytest.param("inputs", "must be a JSON object", id="string-body"),
        pytest.param(
            {
                "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
                "outputs": [{"binary_data": True}],
            },
            "'outputs' must be a list of objects with a 'name'",
            id="output-without-name",
        ),
        pytest.param(
            {
                "inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}],
                "parameters": [1],
            },
            "'parameters' must be an object",
            id="parameters-not-object",
        ),
    ],
)
def test_v2_bad_requests_are_400(body: Any, fragment: str) -> None:
    error = raises(BadRequest, 400, v2.decode_request, json.dumps(body).encode())
    assert fragment in error.message


def test_v2_decode_response() -> None:
    body = (
        b'{"id":"req-1","model_name":"linear","model_version":2,"parameters":{"k":1},'
        b'"outputs":[{"name":"OUTPUT0","datatype":"FP32","shape":[2,2],"data":[2.0,18.0,1.0,2.0]}]}'
    )
    response = v2.decode_response(body)
    assert plain(response.outputs) == [("OUTPUT0", "FP32", [2, 2], [2.0, 18.0, 1.0, 2.0])]
    assert (response.id, response.parameters, response.model_version) == ("req-1", {"k": 1}, "2")


def test_v2_encode_response() -> None:
    response = InferenceResponse(
        outputs=[
            Tensor("y", "FP32", [1, 2], [math.nan, 1.0]),
            Tensor("b", "BYTES", [2], [b"\xff", b"ok"]),
        ],
        id="req-1",
    )
    encoded = v2.encode_response(response, "linear", "3")
    assert b"NaN" in encoded  # not null, which is what a strict encoder would write
    body = json.loads(encoded)
    assert same_values(body["outputs"][0].pop("data"), [math.nan, 1.0])
    assert body == {
        "model_name": "linear",
        "model_version": "3",
        "id": "req-1",
        "outputs": [
            {"name": "y", "datatype": "FP32", "shape": [1, 2]},
            {
                "name": "b",
                "datatype": "BYTES",
                "shape": [2],
                "data": ["/w==", "b2s="],
                "parameters": {"content_type": "base64"},
            },
        ],
    }


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        pytest.param(b"upstream connect error", "the model server's reply is", id="text"),
        pytest.param(b"", "the model server's reply is", id="empty"),
        pytest.param(b'{"error": "Request for unknown model"}', "no 'outputs' list", id="error"),
        pytest.param(b'{"outputs": {"y": [1]}}', "no 'outputs' list", id="outputs-not-list"),
        pytest.param(b"[]", "no 'outputs' list", id="list"),
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"FP32","shape":[1],"data":[1,2]}]}',
            "outputs[0]: shape [1] needs 1 values, got 2",
            id="count-mismatch",
        ),
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"TYPE_FP32","shape":[1],"data":[1]}]}',
            "outputs[0].datatype 'TYPE_FP32'",
            id="bad-datatype",
        ),
    ],
)
def test_v2_bad_backend_replies_are_502(body: bytes, fragment: str) -> None:
    error = raises(BadGateway, 502, v2.decode_response, body)
    assert fragment in error.message


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


@pytest.mark.parametrize(
    ("datatype", "data", "wrong"),
    [
        ("FP32", ["a", 1.0], "str"),
        ("FP32", [None, 1.0], "null"),
        ("FP32", [True, 1.0], "bool"),
        ("INT64", [1.5, 2], "float"),
        ("BOOL", [1, 0], "int"),
        ("BYTES", [1, "a"], "int"),
    ],
)
def test_v2_values_must_fit_their_datatype(datatype: str, data: list[Any], wrong: str) -> None:
    tensor = {"name": "x", "shape": [2], "datatype": datatype, "data": data}
    with pytest.raises(BadRequest, match=f"holds {wrong} values, which a {datatype} tensor"):
        v2.decode_request(json.dumps({"inputs": [tensor]}).encode())

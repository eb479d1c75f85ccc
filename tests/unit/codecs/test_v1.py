"""The v1 codec: TF Serving's predict JSON (rows and columns), requests and replies."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from google.protobuf import json_format

from gateway.codecs import tf_grpc, v1
from gateway.codecs.tensors import InferenceResponse, ModelInfo, Signature, Tensor, TensorMeta
from gateway.errors import BadGateway, BadRequest
from gateway.protos.tensorflow_serving.apis import get_model_status_pb2
from tests.unit.codecs.compare import Plain, plain, raises


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
    assert request.v2_body is None


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


def test_status_parses_as_tf_servings_message_and_matches_grpc() -> None:
    """The REST status is GetModelStatusResponse in protobuf's JSON mapping (what TF's
    clients parse it with), the same message the gRPC ModelService answers."""
    info = ModelInfo("m", None, ("1", "2"), None, (("2", True), ("1", False)))
    parsed = json_format.Parse(
        v1.encode_status(info), get_model_status_pb2.GetModelStatusResponse()
    )
    assert parsed == tf_grpc.encode_status(info)

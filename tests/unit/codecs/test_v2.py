"""The v2 codec: the Open Inference Protocol's JSON, requests and replies."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from gateway.codecs import v2
from gateway.codecs.tensors import InferenceResponse, Tensor
from gateway.errors import BadGateway, BadRequest
from tests.unit.codecs.compare import Plain, plain, raises, same_values


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
    assert (request.typed, request.columnar, request.v2_body) == (True, True, body)


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
    # as JSON toward a server, everything but the binary extension's own keys
    assert json.loads(v2.encode_request(request)) == {**body, "outputs": [{"name": "OUTPUT0"}]}


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
        pytest.param(  # was a 500: a list is unhashable (schemathesis, issue 12)
            {"inputs": [{"name": "x", "shape": [1], "datatype": ["FP32"], "data": [1]}]},
            "is not a v2 datatype",
            id="datatype-a-list",
        ),
        pytest.param(
            {"inputs": [{"name": "x", "shape": [1], "datatype": {"a": 1}, "data": [1]}]},
            "is not a v2 datatype",
            id="datatype-an-object",
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


# -- a v2 JSON reply relayed: its outputs' JSON kept, only the header written again ----------


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            b'{"model_name":"native","model_version":"7","outputs":[{"name":"OUTPUT0",'
            b'"datatype":"FP32","shape":[1,2],"data":[1.0,9.0]}]}',
            id="triton",
        ),
        pytest.param(  # MLServer's order, its id and parameters, spaces
            b'{"model_name": "native", "id": "srv-1", "parameters": {"content_type": "np"}, '
            b'"outputs": [{"name": "y", "shape": [1, 2], "datatype": "FP64", '
            b'"parameters": {"content_type": "np"}, "data": [1.5, 2]}]}',
            id="mlserver",
        ),
        pytest.param(
            b'{"outputs":[{"name":"y","datatype":"INT32","shape":[2,2],"data":[[1,2],[3,4]]}]}',
            id="nested",
        ),
        pytest.param(
            b'{"outputs":[{"name":"s","datatype":"BYTES","shape":[2],"data":["a","\\u00fc"]},'
            b'{"name":"b","datatype":"BYTES","shape":[2],"data":["/w==","aGk="],'
            b'"parameters":{"content_type":"base64"}},'
            b'{"name":"t","datatype":"BYTES","shape":[1],"data":["aGk="],'
            b'"parameters":{"content_type":"base64"}}]}',
            id="bytes-and-base64",
        ),
        pytest.param(
            b'{"outputs":[{"extra":1,"name":"y","datatype":"BOOL","shape":[],"data":[true],'
            b'"parameters":{}}]}',
            id="extra-keys-scalar-empty-parameters",
        ),
        pytest.param(b'{"outputs":[]}', id="no-outputs"),
    ],
)
@pytest.mark.parametrize("caller_id", [None, "caller-1"])
def test_v2_reply_json_is_kept_and_answers_as_the_tensors_would(
    body: bytes, caller_id: str | None
) -> None:
    response = v2.decode_response(body)
    assert response.v2_outputs is not None
    decoded = dataclasses.replace(response, v2_outputs=None)  # encoded from the tensors
    expected = v2.encode_response(decoded, "public", "3", caller_id)
    assert v2.encode_response(response, "public", "3", caller_id) == expected
    answer = json.loads(expected)
    assert (answer["model_name"], answer["model_version"]) == ("public", "3")
    assert answer.get("id") == (caller_id or response.id)  # the caller's id, else the server's


def test_v2_reply_with_nan_or_binary_outputs_keeps_no_json() -> None:
    nan = b'{"outputs":[{"name":"y","datatype":"FP32","shape":[2],"data":[NaN,1.0]}]}'
    response = v2.decode_response(nan)
    assert response.v2_outputs is None
    assert b"[NaN,1.0]" in v2.encode_response(response, "m", "1")  # not null
    head = b'{"outputs":[{"name":"y","datatype":"UINT8","shape":[2],'
    head += b'"parameters":{"binary_data_size":2}}]}'
    response = v2.decode_response(head + b"\x01\x02", len(head))
    assert response.v2_outputs is None
    assert b'"data":[1,2]' in v2.encode_response(response, "m", "1")


@pytest.mark.parametrize(
    ("tensor", "fragment"),
    [
        ({"name": "y", "datatype": "FP32", "shape": [2], "data": ["a", 1.0]}, "holds str"),
        ({"name": "y", "datatype": "FP32", "shape": [2], "data": [[1.0], 2.0]}, "ragged"),
        ({"name": "y", "datatype": "FP32", "shape": [-2], "data": []}, "non-negative"),
        ({"name": "y", "datatype": "FP32", "shape": [True], "data": [1]}, "non-negative"),
        ({"name": "y", "datatype": "FP32", "shape": [3], "data": [1, 2]}, "needs 3 values"),
        ({"name": "y", "datatype": "FP32", "shape": [2], "data": 1}, "needs 2 values"),
        ({"name": "y", "datatype": "fp32", "shape": [1], "data": [1]}, "not a v2 datatype"),
        ({"name": 5, "datatype": "FP32", "shape": [1], "data": [1]}, "name must be"),
        ({"name": "y", "datatype": "FP32", "shape": [1]}, "has no 'data'"),
    ],
)
def test_v2_a_malformed_reply_tensor_is_still_a_502(tensor: dict[str, Any], fragment: str) -> None:
    body = json.dumps({"outputs": [{"name": "ok", "datatype": "INT8", "shape": [0], "data": []}]})
    body = body[:-2] + ", " + json.dumps(tensor) + "]}"
    error = raises(BadGateway, 502, v2.decode_response, body.encode())
    assert error.message.startswith("outputs[1]")
    assert fragment in error.message

"""Pins the TF Serving double to the REST contract in PROTOCOLS.md section 4.

Every test talks to a real subprocess of the double over HTTP.
"""

from __future__ import annotations

import base64
import json
import math
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.doubles.plugin import StartTFServing, TFServingHandle

P = "/v1/models/linear:predict"
M = "/v1/models/multi:predict"
E = "/v1/models/echo_bytes:predict"
C = "/v1/models/linear:classify"
R = "/v1/models/linear:regress"

_MALFORMED = "Malformed request: {} {}"


def malformed(method: str, path: str) -> tuple[str, str, bytes | None, int, str]:
    return (method, path, b"{}" if method == "POST" else None, 400, _MALFORMED.format(method, path))


# (method, path, body, HTTP status, exact "error" message)
ERROR_CASES: list[tuple[str, str, bytes | None, int, str]] = [
    # 4.1 routing: every other shape under /v1 is 400 Malformed, never 405
    malformed("PUT", "/v1/models/linear"),
    malformed("DELETE", "/v1/models/linear"),
    malformed("PATCH", "/v1/models/linear:predict"),
    ("PUT", P, b'{"instances": [[1, 2, 3, 4]]}', 400, _MALFORMED.format("PUT", P)),
    malformed("GET", "/v1/models/linear:predict"),
    malformed("POST", "/v1/models/linear/metadata"),
    malformed("POST", "/v1/models"),
    malformed("GET", "/v1/models/linear/versions/1/labels/stable"),
    malformed("POST", "/v1/models/foo/versions/50/labels/some_label:regress"),
    malformed("GET", "/v1/models/linear/version/1"),
    malformed("POST", "/v1/models/foo/version/50:regress"),
    malformed("POST", "/v1/models/foo/label/some_label:regress"),
    malformed("GET", "/v1/models/linear/versions/abc"),
    malformed("POST", "/v1/models/foo/versions/HELLO:regress"),
    malformed("GET", "/v1/foo"),
    malformed("POST", "/v1/foo"),
    malformed("GET", "/v1/models/x/debug/y"),
    malformed("GET", "/v1/models/debug/model_name"),
    # the regexes are case-insensitive, but the method name is compared exactly
    malformed("POST", "/v1/models/linear:PREDICT"),
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    (
        "POST",
        "/v1/models/foo/versions/18446744073709551615:regress",
        b"{}",
        400,
        "Failed to convert version: 18446744073709551615 to numeric.",
    ),
    (
        "GET",
        "/v1/models/linear/versions/99999999999999999999",
        None,
        400,
        "Failed to convert version: 99999999999999999999 to numeric.",
    ),
    # 4.2 unknown models, versions and labels
    (
        "POST",
        "/v1/models/nope:predict",
        b'{"instances": [1]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/nope/versions/50:predict",
        b'{"instances": [1]}',
        404,
        "Servable not found for request: Specific(nope, 50)",
    ),
    (
        "POST",
        "/v1/models/linear/versions/3:predict",
        b'{"instances": [[1, 2, 3, 4]]}',
        404,
        "Servable not found for request: Specific(linear, 3)",
    ),
    (
        "POST",
        "/v1/models/my%20model:predict",
        b'{"instances": [1]}',
        404,
        "Servable not found for request: Latest(my model)",
    ),
    (
        "POST",
        "/v1/models/nope:classify",
        b'{"examples": [{"x": 1.0}]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    (
        "POST",
        "/v1/models/nope:regress",
        b'{"examples": [{"x": 1.0}]}',
        404,
        "Servable not found for request: Latest(nope)",
    ),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", "/v1/models/linear/versions/3", None, 404, "Could not find version 3 of model linear"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    (
        "GET",
        "/v1/models/linear/versions/3/metadata",
        None,
        404,
        "Servable not found for request: Specific(linear, 3)",
    ),
    (
        "POST",
        "/v1/models/linear/labels/bogus:predict",
        b'{"instances": ["x", "y"]}',
        400,
        "Unrecognized servable version label: bogus",
    ),
    (
        "GET",
        "/v1/models/linear/labels/bogus",
        None,
        400,
        "Unrecognized servable version label: bogus",
    ),
    (
        "GET",
        "/v1/models/nope/labels/stable/metadata",
        None,
        400,
        "Unrecognized servable version label: stable",
    ),
    # 4.2 body errors (parse errors come before the model lookup, as in TF Serving)
    ("POST", P, b"", 400, "JSON Parse error: The document is empty"),
    ("POST", "/v1/models/nope:predict", b"", 400, "JSON Parse error: The document is empty"),
    ("POST", P, b"   ", 400, "JSON Parse error: The document is empty. at offset: 3"),
    ("POST", P, b"instances = [1, 2]", 400, "JSON Parse error: Invalid value. at offset: 0"),
    (
        "POST",
        P,
        b'{"instances": [1, 2}',
        400,
        "JSON Parse error: Missing a comma or ']' after an array element. at offset: 19",
    ),
    (
        "POST",
        P,
        b'{"instances": [[1,2,3,4]]} x',
        400,
        "JSON Parse error: The document root must not be followed by other values. at offset: 27",
    ),
    (
        "POST",
        P,
        b"{instances: 1}",
        400,
        "JSON Parse error: Missing a name for object member. at offset: 1",
    ),
    (
        "POST",
        P,
        b'{"instances" [1]}',
        400,
        "JSON Parse error: Missing a colon after a name of object member. at offset: 13",
    ),
    (
        "POST",
        P,
        b'{"instances": [1.]}',
        400,
        "JSON Parse error: Miss fraction part in number. at offset: 17",
    ),
    ("POST", P, b'{"instances": [nan]}', 400, "JSON Parse error: Invalid value. at offset: 16"),
    (
        "POST",
        P,
        b'{"inputs": [1e400]}',
        400,
        "JSON Parse error: Number too big to be stored in double. at offset: 12",
    ),
    (
        "POST",
        E,
        b'{"inputs": ["\\ud800"]}',
        400,
        "JSON Parse error: The surrogate pair in string is invalid. at offset: 13",
    ),
    (
        "POST",
        E,
        b'{"inputs": ["a\x01"]}',
        400,
        "JSON Parse error: Invalid encoding in string. at offset: 14",
    ),
    (
        "POST",
        E,
        b'{"inputs": ["a',
        400,
        "JSON Parse error: Missing a closing quotation mark in string. at offset: 14",
    ),
    ("POST", P, b"[1]", 400, "JSON Value: [\n    1\n] Is not object"),
    ("POST", P, b'"x"', 400, 'JSON Value: "x" Is not object'),
    (
        "POST",
        P,
        b'{"signature_name": 100}',
        400,
        'JSON Value: {\n    "signature_name": 100\n} not formatted correctly. '
        "'signature_name' key must be a string value.",
    ),
    (
        "POST",
        P,
        b'{"signature_name": "nope", "instances": [[1, 2, 3, 4]]}',
        400,
        'Serving signature name: "nope" not found in signature def',
    ),
    # 4.3 predict request errors
    (
        "POST",
        P,
        b'{"instances": [1], "inputs": [1]}',
        400,
        'JSON Value: {\n    "instances": [\n        1\n    ],\n    "inputs": [\n        1\n    ]\n}'
        " Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist ",
    ),
    (
        "POST",
        P,
        b'{"signature_name": "serving_default"}',
        400,
        "Missing 'inputs' or 'instances' key",
    ),
    (
        "POST",
        P,
        b'{"instances": 5}',
        400,
        "JSON Value: {\n    \"instances\": 5\n} Expecting 'instances' to be an list/array",
    ),
    (
        "POST",
        P,
        b'{"instances": []}',
        400,
        "JSON Value: {\n    \"instances\": []\n} No values in 'instances' array",
    ),
    (
        "POST",
        P,
        b'{"inputs": "x"}',
        400,
        'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        "POST",
        P,
        b'{"instances": ["x", "y"]}',
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        'JSON Value: "x" Type: String is not of expected type: float',
    ),
    (
        "POST",
        P,
        b'{"inputs": [[true, 0, 0, 0]]}',
        400,
        "JSON Value: true Type: True is not of expected type: float",
    ),
    (
        "POST",
        P,
        b'{"inputs": [[null, 0, 0, 0]]}',
        400,
        "JSON Value: null Type: Null is not of expected type: float",
    ),
    (
        "POST",
        P,
        b'{"inputs": [[16777217, 0, 0, 0]]}',
        400,
        "Cannot convert JSON value: 16777217 to float without loss of precision.",
    ),
    (
        "POST",
        P,
        b'{"inputs": [[1e39, 0, 0, 0]]}',
        400,
        "Cannot convert JSON value: 1e+39 to float without loss of precision.",
    ),
    (
        "POST",
        P,
        b'{"instances": [[1, 2, 3, 4], [1, 2, 3]]}',
        400,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting tensor size: 4 but got: 3",
    ),
    (
        "POST",
        P,
        b'{"instances": [[1, 2, 3, 4], [[1, 2], [3, 4]]]}',
        400,
        "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Expecting shape [4] but got: [2,2]",
    ),
    (
        "POST",
        P,
        b'{"inputs": [[1, 2], [3]]}',
        400,
        "Encountered list at unexpected size: 1 at level: 1 expected size: 2",
    ),
    (
        "POST",
        P,
        b'{"inputs": [[1, 2], 3]}',
        400,
        "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
    ),
    (
        "POST",
        P,
        b'{"inputs": [1, [2]]}',
        400,
        "Encountered list at unexpected level: 1 expected < 1",
    ),
    (
        "POST",
        P,
        b'{"instances": [[1, 2, 3, 4], {"x": [1, 2, 3, 4]}]}',
        400,
        "Expecting value/list but got object at item 1 of input list",
    ),
    (
        "POST",
        P,
        b'{"instances": [{"y": [1, 2, 3, 4]}]}',
        400,
        "Failed to process element: 0 key: y of 'instances' list. Error: INVALID_ARGUMENT: "
        "JSON object: does not have named input: y",
    ),
    # shape errors come from the model itself, as TF's MatMul reports them
    (
        "POST",
        P,
        b'{"instances": [[1, 2, 3]]}',
        400,
        "Matrix size-incompatible: In[0]: [1,3], In[1]: [4,2]\n\t [[{{node MatMul}}]]",
    ),
    (
        "POST",
        P,
        b'{"instances": [1, 2, 3, 4]}',
        400,
        "In[0] is not a matrix. Instead it has shape [4]\n\t [[{{node MatMul}}]]",
    ),
    (
        "POST",
        M,
        b'{"instances": [[1, 2]]}',
        400,
        "instances is a plain list, but expecting list of objects as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    (
        "POST",
        M,
        b'{"inputs": [[1, 2]]}',
        400,
        "inputs is a plain value/list, but expecting an object as multiple input tensors "
        "required as per tensorinfo_map",
    ),
    ("POST", M, b'{"inputs": {"a": [[1, 2]]}}', 400, "Missing named input: b in 'inputs' object."),
    (
        "POST",
        M,
        b'{"instances": [{"a": [1, 2]}]}',
        400,
        "Failed to process element: 0 of 'instances' list. JSON object: "
        '{\n    "a": [\n        1,\n        2\n    ]\n} keys must be equal to: a,b',
    ),
    (
        "POST",
        M,
        b'{"instances": [{"a": [1, 2], "b": [1, 2]}, [1, 2]]}',
        400,
        "Expecting object but got list at item 1 of input list",
    ),
    (
        "POST",
        M,
        b'{"inputs": {"a": [[1, 2], [3, 4]], "b": [[1, 2], [3, 4], [5, 6]]}}',
        400,
        "Incompatible shapes: [2,2] vs. [3,2]\n\t [[{{node add}}]]",
    ),
    (
        "POST",
        E,
        b'{"instances": [{"b64": "!!"}]}',
        400,
        "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
        "Unable to base64 decode",
    ),
    (
        "POST",
        E,
        b'{"inputs": [{"b64": 1}]}',
        400,
        'JSON Value: {\n    "b64": 1\n} not formatted correctly for base64 data',
    ),
    (
        "POST",
        E,
        b'{"inputs": [1]}',
        400,
        "JSON Value: 1 Type: Number is not of expected type: string",
    ),
    # 4.4 classify and regress
    (
        "POST",
        C,
        b'{"signature_name": "classify_x_to_y"}',
        400,
        'JSON Value: {\n    "signature_name": "classify_x_to_y"\n} When method is classify, '
        "key 'examples' is expected and was not found",
    ),
    (
        "POST",
        R,
        b"{}",
        400,
        "JSON Value: {} When method is classify, key 'examples' is expected and was not found",
    ),
    (
        "POST",
        R,
        b'{"examples": {}}',
        400,
        "JSON Value: {\n    \"examples\": {}\n} Expecting 'examples' value to be an list/array",
    ),
    (
        "POST",
        R,
        b'{"examples": []}',
        400,
        "JSON Value: {\n    \"examples\": []\n} 'examples' value is an empty array",
    ),
    (
        "POST",
        R,
        b'{"examples": [{"x": [1.0, 2]}]}',
        400,
        "Unexpected element type in feature: x expecting type: float",
    ),
    (
        "POST",
        R,
        b'{"examples": [{"x": ["a", 2.5]}]}',
        400,
        "Unexpected element type in feature: x expecting type: bytes",
    ),
    (
        "POST",
        R,
        b'{"examples": [{"x": null}]}',
        400,
        "Feature: x has element with unexpected JSON type: Null",
    ),
    (
        "POST",
        R,
        b'{"examples": [{"x": [[1.0]]}]}',
        400,
        "Feature: x has element with unexpected JSON type: Array",
    ),
    ("POST", R, b'{"examples": [5]}', 400, "Example must be JSON object but got JSON Number"),
    (
        "POST",
        R,
        b'{"examples": [{"x": 18446744073709551615}]}',
        400,
        "Feature: x has uint64 element. Only int64 is supported.",
    ),
    (
        "POST",
        R,
        b'{"signature_name": "nope", "examples": [{"x": 1.0}]}',
        400,
        "No signature was found with the name: nope",
    ),
    (
        "POST",
        R,
        b'{"signature_name": "regress_x_to_y", "examples": [{"x": [1, 2, 3, 4]}]}',
        400,
        "Name: <unknown>, Key: x, Index: 0.  Data types don't match. Data type: int64 but "
        "expected type: float\n\t [[{{node ParseExample/ParseExampleV2}}]]",
    ),
    (
        "POST",
        R,
        b'{"signature_name": "regress_x_to_y", "examples": [{"x": [1.0]}]}',
        400,
        "Name: <unknown>, Key: x, Index: 0.  Number of float values != expected.  Values size: 1 "
        "but output shape: [4]\n\t [[{{node ParseExample/ParseExampleV2}}]]",
    ),
    (
        "POST",
        R,
        b'{"signature_name": "regress_x_to_y", "examples": [{"y": [1.0]}]}',
        400,
        "Name: <unknown>, Feature: x (data type: float) is required but could not be found."
        "\n\t [[{{node ParseExample/ParseExampleV2}}]]",
    ),
    (
        "POST",
        "/v1/models/multi:regress",
        b'{"examples": [{"a": 1.0}]}',
        400,
        "Expected one input Tensor.",
    ),
    # CORS preflight
    ("OPTIONS", P, None, 400, "Origin header is missing in CORS preflight"),
    ("OPTIONS", P, b"", 400, "Origin header is missing in CORS preflight"),
]


@pytest.fixture(scope="module")
def client(tfserving_server: TFServingHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=tfserving_server.url, timeout=10.0) as c:
        yield c


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return client.post(path, content=content, headers={"Content-Type": "application/json"})


def pretty_error(message: str) -> str:
    """MakeJsonFromStatus: RapidJSON PrettyWriter, 4-space indent, no trailing newline."""
    return '{\n    "error": ' + json.dumps(message, ensure_ascii=False) + "\n}"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "message"),
    ERROR_CASES,
    ids=[f"{m} {p} {b!r:.40}" for m, p, b, _, _ in ERROR_CASES],
)
def test_error_case(
    client: httpx.Client, method: str, path: str, body: bytes | None, status: int, message: str
) -> None:
    reply = client.request(method, path, content=body)
    assert reply.status_code == status
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"error": message}
    assert reply.text == pretty_error(message)


def test_classify_regress_signature_checks_print_the_signature(client: httpx.Client) -> None:
    reply = post(client, C, {"examples": [{"x": [1.0, 2.0, 3.0, 4.0]}]})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error.startswith('No classification inputs found in SignatureDef: inputs {\n  key: "x"')
    assert error.endswith('method_name: "tensorflow/serving/predict"\n')
    reply = post(client, C, {"signature_name": "regress_x_to_y", "examples": [{"x": 1.0}]})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith(
        'Expected classification signature outputs to contain at least one of "classes" or '
        '"scores". Signature was: inputs {'
    )
    reply = post(client, R, {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}]})
    assert reply.status_code == 400
    assert reply.json()["error"].startswith("No regression outputs found in SignatureDef: ")


# --- predict ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "expected"),
    [
        # Latest is version 2 (W2 = 2 * W1)
        (P, {"instances": [[1.0, 2.0, 3.0, 4.0]]}, {"predictions": [[2.0, 18.0]]}),
        (
            "/v1/models/linear/versions/2:predict",
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[2.0, 18.0]]},
        ),
        (
            "/v1/models/linear/versions/1:predict",
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[1.0, 9.0]]},
        ),
        (
            "/v1/models/linear/labels/stable:predict",
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[1.0, 9.0]]},
        ),
        (
            "/v1/models/linear/labels/canary:predict",
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[2.0, 18.0]]},
        ),
        (
            "/V1/MODELS/linear/VERSIONS/1:predict",
            {"instances": [[1, 2, 3, 4]]},
            {"predictions": [[1.0, 9.0]]},
        ),
        # {"instances": [[1.0, 2.0], [3.0, 4.0]]} from the handler tests, for a 4-wide input
        (
            "/v1/models/linear/versions/1:predict",
            {"instances": [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]},
            {"predictions": [[1.0, 9.0], [5.0, 21.0]]},
        ),
        (
            "/v1/models/linear/versions/1:predict",
            {"instances": [{"x": [1, 2, 3, 4]}]},
            {"predictions": [[1.0, 9.0]]},
        ),
        # columnar, with an explicit signature_name as in the handler tests
        (
            "/v1/models/linear/versions/1:predict",
            {"signature_name": "serving_default", "inputs": [[1.0, 2.0, 3.0, 4.0]]},
            {"outputs": [[1.0, 9.0]]},
        ),
        (
            "/v1/models/linear/versions/1:predict",
            {"inputs": {"x": [[0.5, 0, 0, 0.25]]}},
            {"outputs": [[0.5, 0.25]]},
        ),
        (
            M,
            {"instances": [{"a": [1, 2], "b": [3, 5]}, {"a": [0, 0], "b": [1, 1]}]},
            {
                "predictions": [
                    {"sum": [4.0, 7.0], "diff": [-2.0, -3.0]},
                    {"sum": [1.0, 1.0], "diff": [-1.0, -1.0]},
                ]
            },
        ),
        (
            M,
            {"inputs": {"a": [[1, 2]], "b": [[3, 5]]}},
            {"outputs": {"sum": [[4.0, 7.0]], "diff": [[-2.0, -3.0]]}},
        ),
        (
            M,
            {"inputs": {"a": [1, 2], "b": 1.5}},
            {"outputs": {"sum": [2.5, 3.5], "diff": [-0.5, 0.5]}},
        ),
    ],
)
def test_predict(client: httpx.Client, path: str, body: Any, expected: Any) -> None:
    reply = post(client, path, body)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == expected


def test_predict_row_response_bytes_are_rapidjson_pretty(client: httpx.Client) -> None:
    reply = post(client, P, {"instances": [[1, 2, 3, 4], [0.1, 0, 0, 0]]})
    assert reply.text == '{\n    "predictions": [[2.0, 18.0], [0.2, 0.0]\n    ]\n}'


def test_predict_columnar_response_bytes_are_rapidjson_pretty(client: httpx.Client) -> None:
    reply = post(client, "/v1/models/linear/versions/1:predict", {"inputs": [[1, 2, 3, 4]]})
    assert reply.text == (
        '{\n    "outputs": [\n        [\n            1.0,\n            9.0\n        ]\n    ]\n}'
    )


def test_multi_output_row_response_is_a_list_of_objects(client: httpx.Client) -> None:
    reply = post(client, M, {"instances": [{"a": [1, 2], "b": [3, 4]}]})
    assert reply.text == (
        '{\n    "predictions": [\n        {\n            "diff": [-2.0, -2.0],\n'
        '            "sum": [4.0, 6.0]\n        }\n    ]\n}'
    )


def test_floats_are_written_like_write_decimal(client: httpx.Client) -> None:
    reply = post(
        client,
        "/v1/models/linear/versions/1:predict",
        {"instances": [[1 / 3, 1e7, 0, 0], [123456789.0, 0.00001, 0, 0]]},
    )
    assert reply.status_code == 200
    assert "[[0.333333343, 1e+07], [123456792.0, 1e-05]" in reply.text


def test_nan_and_infinity_round_trip(client: httpx.Client) -> None:
    reply = post(client, M, b'{"instances": [{"a": [NaN, Infinity], "b": [0, -Infinity]}]}')
    assert reply.status_code == 200
    assert '"sum": [NaN, NaN]' in reply.text
    assert '"diff": [NaN, Infinity]' in reply.text
    # RapidJSON's kParseNanAndInfFlag also reads "Inf" and "-NaN"
    reply = post(client, M, b'{"inputs": {"a": [Inf, -Inf], "b": [-NaN, 0]}}')
    assert reply.text == (
        '{\n    "outputs": {\n        "diff": [\n            NaN,\n            -Infinity\n'
        '        ],\n        "sum": [\n            NaN,\n            -Infinity\n        ]\n    }\n}'
    )
    reply = post(client, M, b'{"inputs": {"a": [NaN, -Infinity], "b": [1.0, 1.0]}}')
    assert reply.status_code == 200
    out = json.loads(reply.text)["outputs"]  # Python's json accepts NaN and Infinity
    assert math.isnan(out["sum"][0])
    assert out["sum"][1] == -math.inf
    assert out["diff"][1] == -math.inf
    # NaN flows through the linear model as through a real MatMul (0 * NaN is NaN)
    reply = post(
        client, "/v1/models/linear/versions/1:predict", b'{"instances": [[1, 2, 3, -Infinity]]}'
    )
    assert reply.text == '{\n    "predictions": [[NaN, -Infinity]\n    ]\n}'


def test_b64_round_trip(client: httpx.Client) -> None:
    blob = bytes(range(256))
    encoded = base64.b64encode(blob).decode()
    reply = post(client, E, {"instances": [{"b64": encoded}, "plain text"]})
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "predictions": [{"b64": encoded}, {"b64": base64.b64encode(b"plain text").decode()}]
    }
    reply = post(client, E, {"inputs": {"b64": "aGk="}})  # a scalar: the bare value
    assert reply.json() == {"outputs": {"b64": "aGk="}}
    reply = post(client, E, {"inputs": [{"b64": "aGk"}]})  # padding is optional
    assert reply.json() == {"outputs": [{"b64": "aGk="}]}


# --- classify / regress -------------------------------------------------------------------


def test_classify_results(client: httpx.Client) -> None:
    body = {
        "signature_name": "classify_x_to_y",
        "examples": [{"x": [1.0, 2.0, 3.0, 4.0]}, {"x": [0.5, 0.0, 0.0, 0.0]}],
    }
    reply = post(client, C, body)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {"results": [[["", 2.0], ["", 18.0]], [["", 1.0], ["", 0.0]]]}
    assert reply.text == (
        '{\n    "results": [[["", 2.0], ["", 18.0]], [["", 1.0], ["", 0.0]]\n    ]\n}'
    )
    reply = post(client, "/v1/models/linear/labels/stable:classify", body)
    assert reply.json()["results"][0] == [["", 1.0], ["", 9.0]]


def test_regress_results_with_context(client: httpx.Client) -> None:
    body = {
        "signature_name": "regress_x_to_y",
        "context": {"x": [1.0, 2.0, 3.0, 4.0]},
        "examples": [{}, {"x": [1.0, 0.0, 0.0, 0.0]}],
    }
    reply = post(client, R, body)
    assert reply.status_code == 200, reply.text
    assert reply.text == '{\n    "results": [20.0, 2.0]\n}'
    reply = post(client, "/v1/models/linear/versions/1:regress", body)
    assert reply.json() == {"results": [10.0, 1.0]}


# --- model status and metadata -----------------------------------------------------------


def _status(version: str) -> dict[str, Any]:
    return {
        "version": version,
        "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }


@pytest.mark.parametrize(
    ("path", "versions"),
    [
        ("/v1/models/linear", ["2", "1"]),  # newest first
        ("/v1/models/linear/versions/1", ["1"]),
        ("/v1/models/linear/labels/canary", ["2"]),
        ("/v1/models/multi", ["1"]),
        ("/v1/models/echo_bytes", ["1"]),
        ("/V1/Models/linear", ["2", "1"]),
        ("/v1/models/linear/METADATA", ["2", "1"]),  # the subresource is compared exactly
    ],
)
def test_model_status(client: httpx.Client, path: str, versions: list[str]) -> None:
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert reply.json() == {"model_version_status": [_status(v) for v in versions]}


def test_model_status_is_protobuf_pretty_json(client: httpx.Client) -> None:
    reply = client.get("/v1/models/multi")
    assert reply.text == (
        '{\n "model_version_status": [\n  {\n   "version": "1",\n   "state": "AVAILABLE",\n'
        '   "status": {\n    "error_code": "OK",\n    "error_message": ""\n   }\n  }\n ]\n}\n'
    )


@pytest.mark.parametrize(
    ("path", "version"),
    [
        ("/v1/models/linear/metadata", "2"),
        ("/v1/models/linear/versions/1/metadata", "1"),
        ("/v1/models/linear/labels/stable/metadata", "1"),
    ],
)
def test_metadata_shape(client: httpx.Client, path: str, version: str) -> None:
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    data = reply.json()
    assert data["model_spec"] == {"name": "linear", "signature_name": "", "version": version}
    signatures = data["metadata"]["signature_def"]["signature_def"]  # nested twice
    assert set(signatures) == {"serving_default", "classify_x_to_y", "regress_x_to_y"}
    default = signatures["serving_default"]
    assert default["method_name"] == "tensorflow/serving/predict"
    assert default["defaults"] == {}
    assert default["inputs"] == {
        "x": {
            "dtype": "DT_FLOAT",
            "tensor_shape": {
                "dim": [{"size": "-1", "name": ""}, {"size": "4", "name": ""}],
                "unknown_rank": False,
            },
            "name": "x:0",
        }
    }
    assert default["outputs"]["y"]["tensor_shape"]["dim"] == [
        {"size": "-1", "name": ""},
        {"size": "2", "name": ""},
    ]
    assert signatures["classify_x_to_y"]["inputs"]["inputs"]["tensor_shape"] == {
        "dim": [],
        "unknown_rank": True,
    }
    assert reply.text.startswith('{\n"model_spec":{\n "name": "linear",')


def test_metadata_of_multi_and_echo(client: httpx.Client) -> None:
    multi = client.get("/v1/models/multi/metadata").json()["metadata"]["signature_def"]
    sig = multi["signature_def"]["serving_default"]
    assert set(sig["inputs"]) == {"a", "b"}
    assert set(sig["outputs"]) == {"sum", "diff"}
    echo = client.get("/v1/models/echo_bytes/metadata").json()["metadata"]["signature_def"]
    sig = echo["signature_def"]["serving_default"]
    assert sig["inputs"]["text_bytes"]["dtype"] == "DT_STRING"
    assert sig["outputs"]["out_bytes"]["tensor_shape"]["dim"] == [{"size": "-1", "name": ""}]


# --- transport details ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/v1"),
        ("GET", "/v2/models/linear"),
        ("POST", "/v2/models/linear/infer"),
        ("GET", "/monitoring/prometheus/metrics"),
        ("DELETE", "/models/linear"),
        ("OPTIONS", "/"),
    ],
)
def test_html_404_outside_v1(client: httpx.Client, method: str, path: str) -> None:
    reply = client.request(method, path)
    assert reply.status_code == 404
    assert reply.headers["content-type"] == "text/html; charset=ISO-8859-1"
    assert "<TITLE>404 Not Found</TITLE>" in reply.text
    with pytest.raises(json.JSONDecodeError):
        json.loads(reply.text)


def test_head_is_malformed_not_405(client: httpx.Client) -> None:
    reply = client.head("/v1/models/linear")
    assert reply.status_code == 400
    assert reply.headers["content-type"] == "application/json"


def test_query_string_is_not_part_of_the_path(client: httpx.Client) -> None:
    reply = client.get("/v1/models/linear", params={"foo": "bar"})
    assert reply.status_code == 200


def test_cors_preflight_with_origin(client: httpx.Client) -> None:
    reply = client.options(P, headers={"Origin": "https://example.test"})
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/json"
    assert "access-control-allow-origin" not in reply.headers  # only with the CORS flag


def test_cors_headers_with_the_flag(start_tfserving: StartTFServing) -> None:
    server = start_tfserving(enable_cors=True)
    with httpx.Client(base_url=server.url) as c:
        reply = c.get("/v1/models/linear")
        assert reply.headers["access-control-allow-origin"] == "*"
        assert reply.headers["access-control-allow-methods"] == "POST, GET"
        assert reply.headers["access-control-allow-headers"] == "Content-Type"


def test_no_server_header(client: httpx.Client) -> None:
    assert "server" not in client.get("/v1/models/linear").headers


# --- the knobs -----------------------------------------------------------------------------


def test_fault_injection_then_recovery(start_tfserving: StartTFServing) -> None:
    server = start_tfserving()
    with httpx.Client(base_url=server.url) as c:
        assert c.post("/__double__/fail", json={"status": 503, "count": 2}).status_code == 200
        for _ in range(2):
            reply = post(c, P, {"instances": [[1, 2, 3, 4]]})
            assert reply.status_code == 503
            assert reply.headers["content-type"] == "application/json"
            assert set(reply.json()) == {"error"}
        assert post(c, P, {"instances": [[1, 2, 3, 4]]}).status_code == 200
        c.post(
            "/__double__/fail",
            json={"status": 500, "count": 1, "route": "predict", "error": "boom"},
        )
        assert c.get("/v1/models/linear").status_code == 200  # other routes unaffected
        reply = post(c, P, {"instances": [[1, 2, 3, 4]]})
        assert (reply.status_code, reply.json()) == (500, {"error": "boom"})
        stats = c.get("/__double__/stats").json()
        assert stats["requests_total"] == 5
        assert stats["injected_failures"] == 3
        assert stats["by_route"] == {"predict": 4, "status": 1}
        assert stats["by_status"] == {"503": 2, "200": 2, "500": 1}
        assert stats["by_model"] == {"linear": 5}
        c.post("/__double__/reset")
        assert c.get("/__double__/stats").json()["requests_total"] == 0


def test_delay_and_rest_timeout(start_tfserving: StartTFServing) -> None:
    server = start_tfserving(timeout_ms=300)
    with httpx.Client(base_url=server.url, timeout=10.0) as c:
        c.post("/__double__/delay", json={"seconds": 0.2, "count": 1})
        started = time.monotonic()
        assert post(c, P, {"instances": [[1, 2, 3, 4]]}).status_code == 200
        assert time.monotonic() - started >= 0.2
        c.post("/__double__/delay", json={"seconds": 5})
        started = time.monotonic()
        reply = post(c, P, {"instances": [[1, 2, 3, 4]]})
        assert time.monotonic() - started < 3
        assert reply.status_code == 504
        assert reply.json() == {"error": "Timed out waiting for notification"}
        assert c.get("/v1/models/linear").status_code == 200  # status is not delayed
        c.post("/__double__/delay", json={"seconds": 0})
        assert post(c, P, {"instances": [[1, 2, 3, 4]]}).status_code == 200
        assert c.get("/__double__/stats").json()["delayed"] == 2


def test_model_state_knob(start_tfserving: StartTFServing) -> None:
    server = start_tfserving()
    with httpx.Client(base_url=server.url) as c:
        reply = c.post(
            "/__double__/model_state", json={"model": "linear", "version": 2, "state": "LOADING"}
        )
        assert reply.status_code == 200
        status = c.get("/v1/models/linear").json()["model_version_status"]
        assert [(s["version"], s["state"]) for s in status] == [
            ("2", "LOADING"),
            ("1", "AVAILABLE"),
        ]
        # Latest falls back to the newest available version; the loading one cannot serve
        assert post(c, P, {"instances": [[1, 2, 3, 4]]}).json() == {"predictions": [[1.0, 9.0]]}
        reply = post(c, "/v1/models/linear/versions/2:predict", {"instances": [[1, 2, 3, 4]]})
        assert reply.status_code == 404
        assert reply.json() == {"error": "Servable not found for request: Specific(linear, 2)"}
        c.post("/__double__/model_state", json={"model": "linear", "version": 1, "state": "END"})
        reply = post(c, P, {"instances": [[1, 2, 3, 4]]})
        assert reply.json() == {"error": "Servable not found for request: Latest(linear)"}
        c.post("/__double__/reset")
        assert post(c, P, {"instances": [[1, 2, 3, 4]]}).status_code == 200


def test_bad_knob_requests(client: httpx.Client) -> None:
    assert client.post("/__double__/fail", json={"status": 200}).status_code == 400
    assert client.post("/__double__/nope", json={}).status_code == 404
    assert client.get("/__double__/fail").status_code == 404


# --- the plugin ----------------------------------------------------------------------------


def _port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_handle_shape(tfserving_server: TFServingHandle) -> None:
    assert tfserving_server.kind == "tfserving"
    assert tfserving_server.management_url is None
    assert tfserving_server.url.startswith("http://127.0.0.1:")
    assert tfserving_server.pid > 0
    assert tfserving_server.alive


def test_factory_doubles_are_independent_and_stop(
    start_tfserving: StartTFServing, tfserving_server: TFServingHandle
) -> None:
    first = start_tfserving()
    second = start_tfserving()
    assert len({first.url, second.url, tfserving_server.url}) == 3
    httpx.post(f"{first.url}/__double__/fail", json={"status": 503, "count": 1})
    assert httpx.get(f"{second.url}/v1/models/linear").status_code == 200
    assert httpx.get(f"{first.url}/v1/models/linear").status_code == 503
    first.stop()
    assert not first.alive
    assert not _listening(_port_of(first.url))
    second.kill()
    assert not second.alive
    assert not _listening(_port_of(second.url))
    assert tfserving_server.alive

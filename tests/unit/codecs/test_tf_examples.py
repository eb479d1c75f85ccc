"""tf.Example inputs of Classify and Regress ↔ TF Serving's REST JSON. No sockets."""

from __future__ import annotations

import json
import math

import pytest

from gateway.codecs import tf_examples
from gateway.errors import BadGateway, BadRequest
from gateway.protos.tensorflow.core.example import example_pb2
from gateway.protos.tensorflow_serving.apis import classification_pb2, input_pb2, regression_pb2


def example(**features: list[float] | list[int] | list[bytes] | None) -> example_pb2.Example:
    out = example_pb2.Example()
    for name, value in features.items():
        feature = out.features.feature[name]
        if value is None:
            continue  # a feature with no list
        if all(isinstance(v, bytes) for v in value) and value:
            feature.bytes_list.value.extend(value)  # type: ignore[arg-type]
        elif all(isinstance(v, int) for v in value) and value:
            feature.int64_list.value.extend(value)  # type: ignore[arg-type]
        else:
            feature.float_list.value.extend(value)  # type: ignore[arg-type]
    return out


def test_an_example_list() -> None:
    source = input_pb2.Input()
    examples = source.example_list.examples
    examples.append(example(x=[1.0, 2.5, math.inf], n=[3, -4], s=[b"\x00a"], e=None))
    examples.append(example(x=[0.1]))
    body = tf_examples.examples_body(source, "classify_x_to_y")
    assert body.startswith(b'{"signature_name":"classify_x_to_y","examples":')
    assert b"Infinity" in body
    decoded = json.loads(body)
    assert decoded["examples"] == [
        {"e": [], "n": [3, -4], "s": [{"b64": "AGE="}], "x": [1.0, 2.5, math.inf]},
        {"x": [0.10000000149011612]},  # the float32, exactly: TF reads it back to 0.1f
    ]
    assert b'"x":[1.0,' in body  # floats keep their decimal point: TF reads them as floats


def test_an_example_list_with_context() -> None:
    source = input_pb2.Input()
    with_context = source.example_list_with_context
    with_context.context.CopyFrom(example(c=[1, 2]))
    with_context.examples.append(example(x=[1.0]))
    decoded = json.loads(tf_examples.examples_body(source, ""))
    assert decoded == {"context": {"c": [1, 2]}, "examples": [{"x": [1.0]}]}


@pytest.mark.parametrize("kind", ["none", "example_list", "example_list_with_context"])
def test_an_input_without_examples_is_empty(kind: str) -> None:
    source = input_pb2.Input()
    if kind == "example_list":
        source.example_list.SetInParent()
    elif kind == "example_list_with_context":
        source.example_list_with_context.context.CopyFrom(example(c=[1]))
    with pytest.raises(BadRequest, match=r"^Input is empty\.$"):
        tf_examples.examples_body(source, "")


def test_results() -> None:
    classified = classification_pb2.ClassificationResult()
    tf_examples.fill_classification(classified, b'{"results": [[["", 12], ["b", 0.5]], []]}')
    assert [[(c.label, c.score) for c in e.classes] for e in classified.classifications] == [
        [("", 12.0), ("b", 0.5)],
        [],
    ]
    regressed = regression_pb2.RegressionResult()
    tf_examples.fill_regression(regressed, b'{"results": [42, NaN, -1.5]}')
    got = [r.value for r in regressed.regressions]
    assert got[0] == 42.0
    assert math.isnan(got[1])
    assert got[2] == -1.5


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"result": []}', b'{"results": [1]}', b'{"results": [[["a"]]]}',
     b'{"results": [[["a", "b"]]]}', b'{"results": [[[1, 2]]]}'],
)  # fmt: skip
def test_a_classification_that_is_not_one_is_the_servers_fault(body: bytes) -> None:
    with pytest.raises(BadGateway):
        tf_examples.fill_classification(classification_pb2.ClassificationResult(), body)


@pytest.mark.parametrize("body", [b'{"results": ["a"]}', b'{"results": [true]}', b"{}"])
def test_a_regression_that_is_not_one_is_the_servers_fault(body: bytes) -> None:
    with pytest.raises(BadGateway):
        tf_examples.fill_regression(regression_pb2.RegressionResult(), body)


# --- toward a TF Serving backend over gRPC: its REST JSON read as TF's REST layer reads it --


def read(body: bytes | str) -> tuple[str, input_pb2.Input]:
    into = input_pb2.Input()
    name = tf_examples.read_examples(body.encode() if isinstance(body, str) else body, into)
    return name, into


def features(example: example_pb2.Example) -> dict[str, tuple[str | None, list[object]]]:
    out: dict[str, tuple[str | None, list[object]]] = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        out[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return out


def test_json_examples_become_tf_examples() -> None:
    name, source = read(
        '{"signature_name": "classify_x_to_y", "examples": ['
        '{"x": [1.0, 2.5, NaN, -Infinity], "n": [3, -4, true], "one": 0.5, "s": ["wörld", '
        '{"b64": "AGE="}, {"b64": "AGE"}], "e": [], "big": [1e20], "huge": 18446744073709551616},'
        '{"flag": false}]}'
    )
    assert name == "classify_x_to_y"
    assert source.WhichOneof("kind") == "example_list"
    first, second = source.example_list.examples
    got = features(first)
    x = got.pop("x")
    assert x[0] == "float_list"
    assert x[1][:2] == [1.0, 2.5]
    assert math.isnan(x[1][2])  # type: ignore[arg-type]
    assert x[1][3] == -math.inf
    assert got == {
        "n": ("int64_list", [3, -4, 1]),  # a boolean is an int64, as TF reads it
        "one": ("float_list", [0.5]),  # a single value is a list of one
        "s": ("bytes_list", ["wörld".encode(), b"\x00a", b"\x00a"]),  # b64 padding optional
        "e": (None, []),  # there, with no list
        "big": ("float_list", [pytest.approx(1e20)]),
        "huge": ("float_list", [pytest.approx(2.0**64)]),  # past uint64: RapidJSON's double
    }
    assert features(second) == {"flag": ("int64_list", [0])}


def test_a_context_makes_an_example_list_with_context() -> None:
    name, source = read(b'{"context": {"c": [1, 2]}, "examples": [{"x": 1.0}]}')
    assert name == ""
    assert source.WhichOneof("kind") == "example_list_with_context"
    listed = source.example_list_with_context
    assert features(listed.context) == {"c": ("int64_list", [1, 2])}
    assert [features(e) for e in listed.examples] == [{"x": ("float_list", [1.0])}]


def test_the_frontends_json_reads_back_to_the_same_examples() -> None:
    source = input_pb2.Input()
    with_context = source.example_list_with_context
    with_context.context.CopyFrom(example(c=[1, 2], s=[b"\xff\x00"]))
    with_context.examples.append(example(x=[0.1, -2.5, math.inf], n=[7], e=None))
    with_context.examples.append(example(x=[3.0]))
    name, back = read(tf_examples.examples_body(source, "sig"))
    assert name == "sig"
    assert back == source  # float32 values, int64s, bytes and empty features, exactly


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[1]", "JSON Value: [1] Is not object"),
        ('{"signature_name": 1, "examples": [{}]}',
         'JSON Value: {"signature_name":1,"examples":[{}]} not formatted correctly. '
         "'signature_name' key must be a string value."),
        ('{"signature_name": "s"}',
         'JSON Value: {"signature_name":"s"} When method is classify, key \'examples\' is '
         "expected and was not found"),
        ('{"examples": {}}',
         "JSON Value: {\"examples\":{}} Expecting 'examples' value to be an list/array"),
        ('{"examples": []}', "JSON Value: {\"examples\":[]} 'examples' value is an empty array"),
        ('{"examples": [1]}', "Example must be JSON object but got JSON Number"),
        ('{"context": [], "examples": [{}]}', "Example must be JSON object but got JSON Array"),
        ('{"examples": [{"x": null}]}', "Feature: x has element with unexpected JSON type: Null"),
        ('{"examples": [{"x": [[1.0]]}]}',
         "Feature: x has element with unexpected JSON type: Array"),
        ('{"examples": [{"x": {"a": 1}}]}',
         "Feature: x has element with unexpected JSON type: Object"),
        ('{"examples": [{"x": [1.0, 2]}]}',
         "Unexpected element type in feature: x expecting type: float"),
        ('{"examples": [{"x": ["a", true]}]}',
         "Unexpected element type in feature: x expecting type: bytes"),
        ('{"examples": [{"x": [1, 9223372036854775808]}]}',
         "Feature: x has uint64 element. Only int64 is supported."),
        ('{"examples": [{"x": [1e39]}]}',
         "Cannot convert JSON value: 1e+39 to float without loss of precision."),
        ('{"examples": [{"x": {"b64": "a"}}]}', "Unable to base64 decode"),
        ('{"examples": [{"x": {"b64": "a$=="}}]}', "Unable to base64 decode"),
    ],
)  # fmt: skip
def test_json_tf_serving_would_refuse_is_a_400_in_its_words(body: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        read(body)
    assert caught.value.message == message
    assert caught.value.status == 400


def test_bad_json_is_a_400() -> None:
    for body in (b"", b"{", b'{"examples": [}'):
        with pytest.raises(BadRequest):
            read(body)


def test_a_long_value_in_an_error_is_cut() -> None:
    with pytest.raises(BadRequest) as caught:
        read(json.dumps({"padding": "x" * 1000}))
    assert len(caught.value.message) < 300
    assert "..." in caught.value.message


def test_results_are_written_as_tf_servings_rest_api_writes_them() -> None:
    classified = classification_pb2.ClassificationResult()
    first = classified.classifications.add()
    first.classes.add(label="", score=12.0)
    first.classes.add(label="cat", score=0.1)  # the float32 0.1: TF writes 0.1
    first.classes.add(label="dog", score=1 / 3)  # 0.333333 is another float32: TF writes 9 digits
    classified.classifications.add()
    body = tf_examples.classification_json(classified)
    assert json.loads(body) == {"results": [[["", 12.0], ["cat", 0.1], ["dog", 0.333333343]], []]}
    back = classification_pb2.ClassificationResult()
    tf_examples.fill_classification(back, body)  # the frontend reads it back: the same floats
    assert back == classified
    regressed = regression_pb2.RegressionResult()
    for value in (42.0, 9e6, 3e-5, math.nan, -math.inf):
        regressed.regressions.add(value=value)
    body = tf_examples.regression_json(regressed)
    assert body == b'{"results":[42.0,9000000.0,3e-05,NaN,-Infinity]}'
    back_regressed = regression_pb2.RegressionResult()
    tf_examples.fill_regression(back_regressed, body)
    assert [r.value for r in back_regressed.regressions][:3] == [42.0, 9e6, pytest.approx(3e-5)]


def test_empty_results_are_the_servers_fault() -> None:
    with pytest.raises(BadGateway, match="Cannot convert empty ClassificationResults to JSON"):
        tf_examples.classification_json(classification_pb2.ClassificationResult())
    with pytest.raises(BadGateway, match="Cannot convert empty RegressionResults to JSON"):
        tf_examples.regression_json(regression_pb2.RegressionResult())

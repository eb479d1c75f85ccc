"""TF Serving's Classify and Regress over gRPC ↔ the JSON of its REST ``:classify`` and
``:regress`` (PROTOCOLS.md §4.4), both ways. A call's examples travel as that JSON (what the
adapters exchange), so a gRPC client's ``tf.Example`` inputs take the same call as REST ones,
and a TF Serving backend spoken to over gRPC answers as its REST API would.

From the TF Serving gRPC frontend (``edge.grpc_tfs``):

- **request**: ``Input`` (``example_list`` or ``example_list_with_context``) →
  ``{"signature_name"?, "context"?, "examples": [{feature: [values]}, ...]}``. A ``float_list``
  is written as JSON floats (always with a decimal point or an exponent, which TF reads as
  floats; ``NaN`` and ``Infinity`` as TF's parser accepts them), an ``int64_list`` as integers,
  a ``bytes_list`` as ``{"b64": ...}``, a feature with no list as ``[]``. The context's features
  join every example, the example's own winning, as TF Serving merges them.
- **reply**: ``{"results": [[[label, score], ...], ...]}`` → ``ClassificationResult``,
  ``{"results": [value, ...]}`` → ``RegressionResult``.

Toward a TF Serving backend over gRPC (``backends.tfserving_grpc``), as TF Serving's REST layer
does it (``util/json_tensor.cc``):

- **request** (``FillClassifyRegressRequestFromJson``): the JSON → ``signature_name`` and the
  ``Input``, ``example_list_with_context`` when there is a ``context``. A feature's value, or
  each value of its list: a JSON float → ``float_list`` (within float's range), an integer or
  a boolean → ``int64_list`` (a uint64 beyond int64 is refused), a string or ``{"b64": ...}``
  → ``bytes_list``; one kind per feature. Errors are 400s with TF's words.
- **reply** (``MakeJsonFrom{Classification,Regression}Result``): ``{"results": ...}`` as
  above, each score or value the decimal TF writes for its float (``WriteDecimal``: six
  significant digits when they read back to the same float, else nine), so the client reads
  the very numbers TF Serving's REST API would have sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, Final

import orjson

from gateway.codecs.tensors import loads
from gateway.errors import BadGateway, BadRequest, GatewayError
from gateway.protos.tensorflow.core.example import example_pb2, feature_pb2
from gateway.protos.tensorflow_serving.apis import (
    classification_pb2,
    input_pb2,
    regression_pb2,
)

_INT64: Final = range(-(2**63), 2**63)
_UINT64_MAX: Final = 2**64 - 1
_FLT_MAX: Final = 3.4028234663852886e38  # float(numpy.finfo(numpy.float32).max)
_B64: Final = re.compile(r"[A-Za-z0-9+/]*")
_SHOWN: Final = 200  # characters of a JSON value an error message repeats


# -- from the TF Serving gRPC frontend: gRPC → REST JSON, then the REST answer → gRPC -----------


def examples_body(source: input_pb2.Input, signature_name: str) -> bytes:
    """The REST body for ``source``'s examples; TF Serving's error for an input without any."""
    kind = source.WhichOneof("kind")
    context: example_pb2.Example | None = None
    if kind == "example_list":
        examples = list(source.example_list.examples)
    elif kind == "example_list_with_context":
        examples = list(source.example_list_with_context.examples)
        context = source.example_list_with_context.context
    else:
        examples = []
    if not examples:
        raise BadRequest("Input is empty.")  # InputToSerializedExampleTensor's text
    body: dict[str, Any] = {}
    if signature_name:
        body["signature_name"] = signature_name
    if context is not None:
        body["context"] = _features(context)
    body["examples"] = [_features(example) for example in examples]
    return json.dumps(body, allow_nan=True, separators=(",", ":")).encode()


def _features(example: example_pb2.Example) -> dict[str, list[Any]]:
    features = example.features.feature
    return {name: _values(features[name]) for name in sorted(features)}


def _values(feature: feature_pb2.Feature) -> list[Any]:
    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return [float(v) for v in feature.float_list.value]
    if kind == "int64_list":
        return list(feature.int64_list.value)
    if kind == "bytes_list":
        return [{"b64": base64.b64encode(v).decode()} for v in feature.bytes_list.value]
    return []


def fill_classification(into: classification_pb2.ClassificationResult, body: bytes) -> None:
    """TF Serving's REST classify answer → the gRPC result."""
    for i, example in enumerate(_results(body)):
        if not isinstance(example, list):
            raise BadGateway(f"the model server's results[{i}] is not a list of classes")
        classes = into.classifications.add()
        for pair in example:
            if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], str)):
                raise BadGateway(f"the model server's results[{i}] holds {pair!r}, not a class")
            classes.classes.add(label=pair[0], score=_number(pair[1], i))


def fill_regression(into: regression_pb2.RegressionResult, body: bytes) -> None:
    """TF Serving's REST regress answer → the gRPC result."""
    for i, value in enumerate(_results(body)):
        into.regressions.add(value=_number(value, i))


def _results(body: bytes) -> list[Any]:
    try:
        answer = loads(body, "the model server's reply")
    except GatewayError as exc:
        raise BadGateway(exc.message) from exc
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list):
        raise BadGateway("the model server's reply has no 'results' list")
    return results


def _number(value: Any, index: int) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadGateway(f"the model server's results[{index}] holds {value!r}, not a number")
    return float(value)


# -- toward a TF Serving backend over gRPC: REST JSON → gRPC, then the gRPC answer → REST JSON --


def read_examples(body: bytes, into: input_pb2.Input) -> str:
    """The classify/regress JSON's examples into ``into``; its ``signature_name`` ("" for the
    default). A body TF Serving would refuse is a 400 in its words."""
    doc = loads(body)
    if not isinstance(doc, dict):
        raise _format_error(doc, "Is not object")
    signature_name = doc.get("signature_name", "")
    if not isinstance(signature_name, str):
        raise _format_error(
            doc, "not formatted correctly. 'signature_name' key must be a string value."
        )
    has_context = "context" in doc
    if has_context:
        _fill_example(into.example_list_with_context.context, doc["context"])
    if "examples" not in doc:
        # TF's text, which says classify for regress too
        raise _format_error(
            doc, "When method is classify, key 'examples' is expected and was not found"
        )
    examples = doc["examples"]
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
    listed = into.example_list_with_context.examples if has_context else into.example_list.examples
    for value in examples:
        _fill_example(listed.add(), value)
    return signature_name


def _fill_example(example: example_pb2.Example, value: Any) -> None:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise BadRequest(f"Example must be JSON object but got JSON {_json_type(value)}")
    features = example.features.feature
    for name, content in value.items():
        _fill_feature(features[name], name, content if isinstance(content, list) else [content])


def _fill_feature(feature: feature_pb2.Feature, name: str, values: list[Any]) -> None:
    """AddValueToFeature for each value: one kind per feature, TF's checks in TF's order."""
    kind: str | None = None
    out: list[Any] = []
    for value in values:
        wanted = _kind(value, name)
        if kind not in (None, wanted):
            raise BadRequest(f"Unexpected element type in feature: {name} expecting type: {kind}")
        kind = wanted
        out.append(_feature_value(value, wanted, name))
    if kind == "float":
        feature.float_list.value.extend(out)
    elif kind == "int64":
        feature.int64_list.value.extend(out)
    elif kind == "bytes":
        feature.bytes_list.value.extend(out)
    # no values: the feature is there, with no list (KIND_NOT_SET), as TF leaves it


def _kind(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "int64"
    if isinstance(value, str) or (isinstance(value, dict) and _is_b64(value)):
        return "bytes"
    if isinstance(value, float) or (isinstance(value, int) and value not in _INT64):
        # RapidJSON holds an integer beyond int64 as uint64 (up to its max), else as a double
        return "int64" if isinstance(value, int) and 0 < value <= _UINT64_MAX else "float"
    if isinstance(value, int):
        return "int64"
    raise BadRequest(f"Feature: {name} has element with unexpected JSON type: {_json_type(value)}")


def _feature_value(value: Any, kind: str, name: str) -> Any:
    if kind == "bytes":
        return value.encode() if isinstance(value, str) else _b64_decode(value["b64"])
    if kind == "int64":
        if value not in _INT64:
            raise BadRequest(f"Feature: {name} has uint64 element. Only int64 is supported.")
        return int(value)
    if isinstance(value, float):
        lossy = math.isfinite(value) and abs(value) > _FLT_MAX  # NaN and ±Infinity pass
        number = value
    else:  # an integer past int64 and uint64, which RapidJSON reads as a double
        try:
            number = float(value)
            lossy = abs(number) > _FLT_MAX
        except OverflowError:
            number, lossy = math.inf, True
    if lossy:
        raise BadRequest(
            f"Cannot convert JSON value: {_show(value)} to float without loss of precision."
        )
    return number


def _is_b64(value: dict[str, Any]) -> bool:
    return len(value) == 1 and isinstance(value.get("b64"), str)


def _b64_decode(text: str) -> bytes:
    """absl::Base64Unescape: standard alphabet, the padding optional."""
    stripped = text.rstrip("=")
    if len(text) - len(stripped) > 2 or len(stripped) % 4 == 1 or not _B64.fullmatch(stripped):
        raise BadRequest("Unable to base64 decode")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest("Unable to base64 decode") from exc


def _json_type(value: Any) -> str:
    """JsonTypeString."""
    if value is None:
        return "Null"
    if value is True or value is False:
        return "True" if value else "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def _format_error(doc: Any, text: str) -> BadRequest:
    """FormatError: the JSON value, then what is wrong with it."""
    return BadRequest(f"JSON Value: {_show(doc)} {text}")


def _show(value: Any) -> str:
    shown = json.dumps(value, allow_nan=True, ensure_ascii=False, separators=(",", ":"))
    return shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."


def classification_json(result: classification_pb2.ClassificationResult) -> bytes:
    """MakeJsonFromClassificationResult: ``{"results": [[[label, score], ...], ...]}``."""
    if not result.classifications:
        raise BadGateway("Cannot convert empty ClassificationResults to JSON")
    scores: list[float] = []
    results = []
    for classifications in result.classifications:
        row: list[list[Any]] = []
        for c in classifications.classes:
            score = _decimal(c.score)
            scores.append(score)
            row.append([c.label, score])
        results.append(row)
    return _dumps({"results": results}, scores)


def regression_json(result: regression_pb2.RegressionResult) -> bytes:
    """MakeJsonFromRegressionResult: ``{"results": [value, ...]}``."""
    if not result.regressions:
        raise BadGateway("Cannot convert empty RegressionResults to JSON")
    values = [_decimal(r.value) for r in result.regressions]
    return _dumps({"results": values}, values)


def _decimal(value: float) -> float:
    """WriteDecimal<float>: the float's six significant digits when they read back to the same
    float, else nine; as the number a JSON reader makes of that text."""
    if not math.isfinite(value):
        return value
    import numpy as np  # on first use (codecs/raw.py's docstring)

    single = np.float32(value)
    text = f"{value:.6g}"
    if np.float32(float(text)) != single:
        text = f"{value:.9g}"
    return float(text)


def _dumps(obj: Any, numbers: list[float]) -> bytes:
    """orjson, unless a number is NaN or infinite (orjson writes null): then TF's ``NaN``,
    ``Infinity``, ``-Infinity``, which the stdlib writes too."""
    if all(map(math.isfinite, numbers)):
        return orjson.dumps(obj)
    return json.dumps(obj, allow_nan=True, separators=(",", ":")).encode()

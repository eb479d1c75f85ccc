"""What the decoders' property tests share (``test_properties_*.py``): the settings, the one
property, and strategies of JSON values, from arbitrary to nearly valid requests.

The property: whatever a client sends, a decoder returns a request or raises a
``GatewayError`` with a 4xx status; and a request it returns can be written for every kind of
backend (v2 JSON and binary, TF Serving JSON, both gRPC wires) or is refused with a 4xx, so it
cannot fail later as a 500 either.

Runs are derandomized and keep no example database, so CI runs the same examples every time.
``GATEWAY_PROPERTY_SCALE`` multiplies every test's examples (default 1) for a longer hunt.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from gateway.codecs import tf_grpc, v1, v2, v2_grpc
from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.tensors import InferenceRequest
from gateway.errors import GatewayError

T = TypeVar("T")
SCALE = float(os.environ.get("GATEWAY_PROPERTY_SCALE", "1"))


def examples(count: int) -> settings:
    """A property's settings: ``count`` examples (times the scale), reproducible."""
    return settings(
        max_examples=max(1, int(count * SCALE)),
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def refused_or(decode: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``decode(...)``'s value, or None when it raised a GatewayError with a 4xx status (any
    other exception fails the test)."""
    try:
        return decode(*args, **kwargs)
    except GatewayError as exc:
        refused = exc
    assert 400 <= refused.status < 500, f"{type(refused).__name__} {refused.status}: {refused}"
    return None


def sendable(request: InferenceRequest) -> None:
    """Every tensor's two forms, and the request written for every backend wire: each either
    works or is a 4xx."""
    for tensor in request.inputs:
        refused_or(lambda t=tensor: t.raw)
        refused_or(lambda t=tensor: t.data)
    refused_or(v2.encode_request, request)
    refused_or(v2.encode_request_binary, request, True)
    refused_or(v1.encode_request, request, columnar=True, named=False)
    refused_or(v1.encode_request, request, columnar=True, named=True)
    refused_or(v1.encode_request, request, columnar=False, named=False)
    refused_or(v2_grpc.encode_request, request, "m", None)
    refused_or(tf_grpc.encode_predict_request, request, "m", None)


# -- JSON ---------------------------------------------------------------------------------------

# Text of every code point, lone surrogates included (a JSON escape can name one).
TEXT = st.text(st.characters(exclude_categories=()), max_size=12)
NUMBERS = (
    st.integers()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, 1, -1, 2**63, 2**64, -(2**63) - 1, 1e39, -1e39, 3.4e38])
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=25,
)


def to_json(value: Any, ascii_only: bool = True) -> bytes:
    """``value`` as JSON text as a client might write it (NaN and Infinity as TF Serving takes
    them; lone surrogates as escapes, or as bytes that are not UTF-8)."""
    text = json.dumps(value, allow_nan=True, ensure_ascii=ascii_only)
    return text.encode("utf-8", "surrogatepass")


def json_bodies(values: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    return st.builds(to_json, values, st.booleans())


def nested(leaf: st.SearchStrategy[Any], depth: int = 3) -> st.SearchStrategy[Any]:
    """A value, or lists of it nested up to ``depth`` deep: regular (a tensor) or ragged."""
    regular = leaf
    for _ in range(depth):
        regular = st.lists(regular, min_size=0, max_size=3) | leaf
    ragged = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=12)
    return regular | ragged


# -- nearly valid KServe v2 ---------------------------------------------------------------------

DATATYPE_NAMES = st.sampled_from(sorted(DATATYPES)) | st.sampled_from(["fp32", "", "STRING"])
SHAPES = st.lists(
    st.integers(min_value=0, max_value=4) | st.sampled_from([-1, 2**40, True, 1.5, "2"]),
    max_size=3,
)
TENSOR_VALUES = (
    st.booleans()
    | NUMBERS
    | TEXT
    | st.none()
    | st.builds(lambda s: {"b64": s}, TEXT | st.sampled_from(["AAEC", "////", "=="]))
)


@st.composite
def v2_tensors(draw: st.DrawFn, binary: bool = False) -> dict[str, Any]:
    tensor: dict[str, Any] = {
        "name": draw(st.sampled_from(["INPUT0", "x"]) | TEXT),
        "datatype": draw(DATATYPE_NAMES),
        "shape": draw(SHAPES),
    }
    parameters = draw(
        st.none()
        | st.fixed_dictionaries({}, optional={"content_type": st.sampled_from(["base64", "str"])})
        | JSON_VALUES
    )
    if binary and draw(st.booleans()):
        size = draw(st.integers(min_value=-1, max_value=40) | st.sampled_from([True, 1.0, "4"]))
        parameters = {
            **(parameters if isinstance(parameters, dict) else {}),
            "binary_data_size": size,
        }
    if parameters is not None:
        tensor["parameters"] = parameters
    if draw(st.integers(0, 9)):
        tensor["data"] = draw(nested(TENSOR_VALUES))
    return tensor


_KINDS = {"BOOL": st.booleans(), "BYTES": TEXT, "INT32": st.integers(), "FP32": NUMBERS}


@st.composite
def valid_v2_tensors(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed v2 JSON tensor, flat or nested, nearly always valid (a value of another
    kind now and then): the common case the decoders' quick check reads."""
    datatype = draw(st.sampled_from(sorted(_KINDS)))
    shape = draw(st.lists(st.integers(min_value=0, max_value=3), max_size=3))
    count = math.prod(shape)
    values = _KINDS[datatype] | (SCALARS if draw(st.integers(0, 9)) == 0 else st.nothing())
    data: Any = draw(st.lists(values, min_size=count, max_size=count))
    if len(shape) > 1 and count and draw(st.booleans()):  # nested, row-major
        for size in reversed(shape[1:]):
            data = [data[i : i + size] for i in range(0, len(data), size)]
    tensor: dict[str, Any] = {"name": draw(TEXT), "datatype": datatype, "shape": shape}
    tensor["data"] = data
    parameters = draw(
        st.none()
        | st.just({})
        | st.just({"content_type": "np"})
        | st.just({"content_type": "base64"})
    )
    if parameters is not None:
        tensor["parameters"] = parameters
    keys = draw(st.permutations(list(tensor)))
    return {k: tensor[k] for k in keys}


@st.composite
def v2_requests(draw: st.DrawFn, binary: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {"inputs": draw(st.lists(v2_tensors(binary), max_size=3) | JSON_VALUES)}
    optional = {
        "id": TEXT | NUMBERS,
        "parameters": JSON_VALUES,
        "outputs": st.lists(
            st.fixed_dictionaries({"name": TEXT}, optional={"parameters": JSON_VALUES})
            | JSON_VALUES,
            max_size=2,
        )
        | JSON_VALUES,
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            body[key] = draw(strategy)
    return body


# -- nearly valid TF Serving REST --------------------------------------------------------------

V1_VALUES = st.booleans() | NUMBERS | TEXT | st.builds(lambda s: {"b64": s}, TEXT | st.just("AAEC"))


@st.composite
def v1_requests(draw: st.DrawFn) -> dict[str, Any]:
    names = st.sampled_from(["a", "b", "b64"]) | TEXT
    rows = st.lists(
        nested(V1_VALUES, 2) | st.dictionaries(names, nested(V1_VALUES, 2), max_size=3),
        max_size=4,
    )
    columns = nested(V1_VALUES) | st.dictionaries(names, nested(V1_VALUES), max_size=3)
    body: dict[str, Any] = {}
    which = draw(st.sampled_from(["instances", "inputs", "both", "neither"]))
    if which in ("instances", "both"):
        body["instances"] = draw(rows | JSON_VALUES)
    if which in ("inputs", "both"):
        body["inputs"] = draw(columns | JSON_VALUES)
    if draw(st.booleans()):
        body["signature_name"] = draw(TEXT | JSON_VALUES)
    return body


# -- nearly valid tf.Example JSON (:classify, :regress) ----------------------------------------

FEATURE_VALUES = (
    st.booleans()
    | NUMBERS
    | TEXT
    | st.none()
    | st.builds(lambda s: {"b64": s}, TEXT | st.sampled_from(["AAEC", "AAE", "A", "AA==="]))
)


@st.composite
def example_requests(draw: st.DrawFn) -> dict[str, Any]:
    features = st.dictionaries(
        TEXT, FEATURE_VALUES | st.lists(FEATURE_VALUES, max_size=4) | JSON_VALUES, max_size=3
    )
    body: dict[str, Any] = {}
    if draw(st.booleans()):
        body["examples"] = draw(st.lists(features | JSON_VALUES, max_size=3) | JSON_VALUES)
    if draw(st.booleans()):
        body["context"] = draw(features | JSON_VALUES)
    if draw(st.booleans()):
        body["signature_name"] = draw(TEXT | JSON_VALUES)
    return body

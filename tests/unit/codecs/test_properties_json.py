"""Properties of the JSON decoders (KServe v2, TF Serving REST ``:predict``, tf.Example JSON):
arbitrary bytes, arbitrary JSON and nearly valid requests are decoded or refused with a 4xx,
and what is decoded can be sent to every backend wire (``properties.sendable``)."""

from __future__ import annotations

import dataclasses

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.codecs import tensors, tf_examples, v1, v2
from gateway.errors import BadGateway, BadRequest
from gateway.protos.tensorflow_serving.apis import input_pb2
from tests.unit.codecs.compare import plain
from tests.unit.codecs.properties import (
    JSON_VALUES,
    example_requests,
    examples,
    json_bodies,
    refused_or,
    sendable,
    v1_requests,
    v2_requests,
    v2_tensors,
    valid_v2_tensors,
)

BYTES = st.binary(max_size=200) | st.sampled_from(
    [b"[" * 5000, b'{"a":' * 3000, b"\xef\xbb\xbf{}", b"NaN", b"1e999999", b"9" * 5000]
)


def decode_all(body: bytes) -> None:
    for decode in (v1.decode_request, v2.decode_request):
        request = refused_or(decode, body)
        if request is not None:
            sendable(request)
    refused_or(tf_examples.read_examples, body, input_pb2.Input())


@examples(150)
@given(BYTES)
def test_arbitrary_bytes(body: bytes) -> None:
    refused_or(tensors.loads, body)
    decode_all(body)


@examples(150)
@given(json_bodies(JSON_VALUES))
@example(b'"\\ud800"')
@example(b'{"instances": ["\\udfff", NaN]}')
def test_arbitrary_json(body: bytes) -> None:
    decode_all(body)


@examples(200)
@given(json_bodies(v2_requests()))
@example(
    b'{"inputs": [{"name": "x", "datatype": "FP32", "shape": [1000000000000, 0], "data": []}]}'
)
def test_nearly_valid_v2(body: bytes) -> None:
    request = refused_or(v2.decode_request, body)
    if request is not None:
        sendable(request)


@examples(200)
@given(json_bodies(v1_requests()))
@example(b'{"instances": [100000000000000000000000000000]}')
@example(b'{"instances": [1e999999]}')
@example(b'{"inputs": {"a": [[1, 2], [3]]}}')
@example(b'{"instances": [{"b64": "\\u0080"}]}')  # found: ValueError, a 500 (not ASCII)
@example(b'{"instances": [3.4028235677973366e+38]}')  # found: FP32 overflow (a warning)
def test_nearly_valid_v1(body: bytes) -> None:
    request = refused_or(v1.decode_request, body)
    if request is not None:
        sendable(request)


@examples(150)
@given(json_bodies(example_requests()))
@example(b'{"examples": [{"x": "\\ud800"}]}')
@example(b'{"examples": [{"x": [1e999999]}]}')
@example(b'{"examples": [{"x": [' + b"9" * 40 + b"]}]}")
def test_nearly_valid_examples(body: bytes) -> None:
    into = input_pb2.Input()
    if refused_or(tf_examples.read_examples, body, into) is not None:
        into.SerializeToString()  # what goes to the backend


@examples(300)
@given(json_bodies(valid_v2_tensors() | v2_tensors()))
@example(b'{"name": "x", "datatype": "FP32", "shape": [], "data": [1]}')
@example(b'{"name": "x", "datatype": "BOOL", "shape": [2, 0], "data": []}')
def test_the_quick_tensor_check_agrees_with_the_full_one(body: bytes) -> None:
    """``_plain`` (the common case) accepts only what ``_tensor`` accepts, as the same tensor."""
    obj = tensors.loads(body)
    quick = v2._plain(obj)
    if quick is not None:
        full = v2._tensor(obj, "inputs[0]", BadRequest)
        assert plain([quick]) == plain([full])
        assert quick.parameters == full.parameters


@examples(200)
@given(json_bodies(st.fixed_dictionaries({"outputs": st.lists(valid_v2_tensors(), max_size=3)})))
def test_a_kept_reply_answers_as_its_tensors(body: bytes) -> None:
    """A v2 JSON reply's kept outputs JSON gives the very answer its tensors would."""
    try:
        response = v2.decode_response(body)
    except BadGateway:
        return
    unkept = dataclasses.replace(response, v2_outputs=None)
    for caller_id in (None, "c-1"):
        expected = v2.encode_response(unkept, "m", "1", caller_id)
        assert v2.encode_response(response, "m", "1", caller_id) == expected

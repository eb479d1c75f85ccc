"""Joining requests along dimension 0 and splitting replies back by rows (no sockets)."""

from __future__ import annotations

import struct

import pytest

from gateway.batching.join import join, join_key, split
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Tensor
from gateway.errors import BadGateway


def request(*tensors: Tensor, **fields: object) -> InferenceRequest:
    return InferenceRequest(inputs=list(tensors), **fields)  # type: ignore[arg-type]


def fp32(rows: list[list[float]], name: str = "x") -> Tensor:
    return Tensor(name, "FP32", [len(rows), len(rows[0])], [v for r in rows for v in r])


def test_requests_join_along_the_first_dimension_and_split_back_by_rows() -> None:
    a = request(fp32([[1, 2, 3, 4]]))
    b = request(fp32([[5, 6, 7, 8], [9, 10, 11, 12]]))
    assert join_key(a) == join_key(b)
    joined = join([a, b])
    assert joined.inputs[0].shape == [3, 4]
    assert joined.inputs[0].data == list(range(1, 13))
    reply = InferenceResponse(
        outputs=[Tensor("y", "FP32", [3, 2], [1, 2, 3, 4, 5, 6])], model_version="1"
    )
    first, second = split(reply, [1, 2])
    assert (first.outputs[0].shape, first.outputs[0].data) == ([1, 2], [1, 2])
    assert (second.outputs[0].shape, second.outputs[0].data) == ([2, 2], [3, 4, 5, 6])
    assert first.model_version == second.model_version == "1"


def test_raw_tensors_join_and_split_as_bytes() -> None:
    def raw(values: list[float], rows: int) -> Tensor:
        data = struct.pack(f"<{len(values)}f", *values)
        return Tensor("x", "FP32", [rows, len(values) // rows], raw=data)

    a, b = request(raw([1, 2], 1)), request(raw([3, 4, 5, 6], 2))
    joined = join([a, b]).inputs[0]
    assert joined.has_raw
    assert (joined.shape, joined.data) == ([3, 2], [1, 2, 3, 4, 5, 6])
    out = raw([10, 20, 30, 40, 50, 60], 3)
    out.name = "y"
    first, second = split(InferenceResponse(outputs=[out]), [1, 2])
    assert first.outputs[0].has_raw
    assert (first.outputs[0].shape, first.outputs[0].data) == ([1, 2], [10, 20])
    assert (second.outputs[0].shape, second.outputs[0].data) == ([2, 2], [30, 40, 50, 60])


def test_a_raw_member_and_a_json_member_join_by_their_values() -> None:
    a = request(Tensor("x", "INT32", [1, 2], raw=struct.pack("<2i", 1, 2)))
    b = request(Tensor("x", "INT32", [1, 2], [3, 4]))
    assert join_key(a) == join_key(b)
    assert join([a, b]).inputs[0].data == [1, 2, 3, 4]


def test_bytes_tensors_join_and_split() -> None:
    a = request(Tensor("s", "BYTES", [1], [b"one"]))
    b = request(Tensor("s", "BYTES", [2], [b"two", b"three"]))
    assert join_key(a) == join_key(b)
    joined = join([a, b]).inputs[0]
    assert (joined.shape, joined.data) == ([3], [b"one", b"two", b"three"])
    # raw BYTES from a binary backend: length-prefixed, cut by elements
    out = Tensor("t", "BYTES", [3], [b"A", b"BB", b"CCC"])
    out = Tensor("t", "BYTES", [3], raw=bytes(out.raw))
    first, second = split(InferenceResponse(outputs=[out]), [1, 2])
    assert first.outputs[0].data == [b"A"]
    assert second.outputs[0].data == [b"BB", b"CCC"]


def test_several_inputs_join_by_name_whatever_their_order() -> None:
    a = request(fp32([[1, 2]], "x"), Tensor("k", "INT64", [1], [7]))
    b = request(Tensor("k", "INT64", [1], [8]), fp32([[3, 4]], "x"))
    assert join_key(a) == join_key(b)
    joined = join([a, b])
    assert {t.name: t.data for t in joined.inputs} == {"x": [1, 2, 3, 4], "k": [7, 8]}


@pytest.mark.parametrize(
    ("other", "why"),
    [
        (request(fp32([[1, 2, 3]])), "another inner dimension"),
        (request(Tensor("x", "FP64", [1, 4], [1, 2, 3, 4])), "another datatype"),
        (request(fp32([[1, 2, 3, 4]], "z")), "another input name"),
        (request(fp32([[1, 2, 3, 4]]), typed=False, columnar=False), "a v1 'instances' call"),
        (request(fp32([[1, 2, 3, 4]]), outputs=[{"name": "y"}]), "outputs asked by name"),
        (request(fp32([[1, 2, 3, 4]]), parameters={"priority": 2}), "other parameters"),
    ],
)
def test_requests_that_differ_go_in_separate_batches(other: InferenceRequest, why: str) -> None:
    base = request(fp32([[1, 2, 3, 4]]))
    assert join_key(other) is not None
    assert join_key(base) != join_key(other), why


def test_the_binary_extension_keys_do_not_part_requests() -> None:
    base = request(fp32([[1, 2, 3, 4]]), outputs=[{"name": "y"}])
    binary = request(
        fp32([[1, 2, 3, 4]]),
        outputs=[{"name": "y", "parameters": {"binary_data": True}}],
        parameters={"binary_data_output": True},
    )
    assert join_key(base) == join_key(binary)


@pytest.mark.parametrize(
    "alone",
    [
        request(Tensor("x", "FP32", [], [1.0])),  # a scalar: no first dimension
        request(fp32([[1, 2]]), fp32([[1], [2]], "z")),  # first dimensions disagree
        request(Tensor("x", "FP32", [0, 4], [])),  # no rows
        request(fp32([[1, 2]]), parameters={"sequence_id": 5}),  # a Triton sequence
        request(fp32([[1, 2]]), signature_name="other"),  # a signature of the server's own
        request(fp32([[1, 2]]), parameters={"when": object()}),  # not plain JSON
    ],
)
def test_requests_that_cannot_join_have_no_key(alone: InferenceRequest) -> None:
    assert join_key(alone) is None


def test_a_reply_without_the_batch_dimension_cannot_be_split() -> None:
    reply = InferenceResponse(outputs=[Tensor("y", "FP32", [2], [1, 2])])
    with pytest.raises(BadGateway, match="cannot be split"):
        split(reply, [1, 2])

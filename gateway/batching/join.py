"""Joining requests along dimension 0 and splitting the reply back by rows.

Two requests may share a batch when their join keys are equal: the same input names, each
with the same datatype and the same dimensions after the first; the same requested outputs;
the same request parameters (the binary extension's own keys aside: they say how a caller
wants its bytes, which its frontend honours on its own); and the same form (``typed``,
``columnar``: a v1 ``instances`` call and a v2 call join only their own kind, since the backend
is asked in the form the caller used). A request has no key, and goes alone, when it cannot be
joined: a scalar input, inputs that disagree on their first dimension, no rows, a Triton
sequence (``sequence_id``...), a signature other than the default one, or parameters that are
not plain JSON.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence
from typing import Any, Final

import orjson

from gateway.codecs import binary
from gateway.codecs.raw import element_size
from gateway.codecs.tensors import InferenceRequest, InferenceResponse, Tensor
from gateway.errors import BadGateway

DEFAULT_SIGNATURES: Final = frozenset({None, "", "serving_default"})
_SEQUENCE: Final = ("sequence_id", "sequence_start", "sequence_end")


def rows(request: InferenceRequest) -> int:
    """The request's first dimension (its rows); its join key says they all agree."""
    return request.inputs[0].shape[0]


def join_key(request: InferenceRequest) -> Hashable | None:
    """What must be equal for two requests to share a batch; None: this one goes alone."""
    if request.signature_name not in DEFAULT_SIGNATURES or not request.inputs:
        return None
    parameters = binary.without(request.parameters, binary.ALL_OUTPUTS)
    if parameters and any(name in parameters for name in _SEQUENCE):
        return None
    first = request.inputs[0].shape[0] if request.inputs[0].shape else 0
    inputs = []
    for tensor in request.inputs:
        if not tensor.shape or tensor.shape[0] != first:
            return None
        tensor_parameters = binary.without(tensor.parameters, binary.SIZE)
        inputs.append((tensor.name, tensor.datatype, tuple(tensor.shape[1:]), tensor_parameters))
    if first < 1 or len({i[0] for i in inputs}) != len(inputs):
        return None
    outputs = [
        (o.get("name"), binary.without(o.get("parameters"), binary.OUTPUT))
        for o in request.outputs or ()
    ]
    inputs.sort(key=lambda i: i[0])
    shape = (request.typed, request.columnar, inputs, outputs, parameters)
    try:
        return orjson.dumps(shape, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None  # parameters orjson cannot write: not plain JSON, so never joined


def join(requests: Sequence[InferenceRequest]) -> InferenceRequest:
    """One request holding every request's rows, in order (their join keys are equal)."""
    first = requests[0]
    inputs = []
    for tensor in first.inputs:
        parts = [_input(r, tensor.name) for r in requests]
        shape = [sum(p.shape[0] for p in parts), *tensor.shape[1:]]
        parameters = binary.without(tensor.parameters, binary.SIZE)
        if all(p.has_raw for p in parts):
            raw = b"".join(p.raw for p in parts)
            inputs.append(Tensor(tensor.name, tensor.datatype, shape, None, parameters, raw=raw))
        else:
            data = list(itertools.chain.from_iterable(p.data for p in parts))
            inputs.append(Tensor(tensor.name, tensor.datatype, shape, data, parameters))
    return InferenceRequest(
        inputs=inputs,
        typed=first.typed,
        columnar=first.columnar,
        parameters=first.parameters,
        outputs=first.outputs,
        signature_name=first.signature_name,
    )


def _input(request: InferenceRequest, name: str) -> Tensor:
    return next(t for t in request.inputs if t.name == name)


def split(response: InferenceResponse, sizes: Sequence[int]) -> list[InferenceResponse]:
    """The batch's reply cut back into one reply per member, ``sizes[i]`` rows each. An output
    whose first dimension is not the batch's rows cannot be cut: a 502 for every member."""
    total = sum(sizes)
    columns: list[list[Tensor]] = []
    for tensor in response.outputs:
        if not tensor.shape or tensor.shape[0] != total:
            raise BadGateway(
                f"the model server answered a batch of {total} rows with output "
                f"{tensor.name!r} of shape {tensor.shape}: it cannot be split back by rows"
            )
        columns.append(_cut(tensor, sizes))
    return [
        InferenceResponse(
            outputs=[column[i] for column in columns],
            parameters=dict(response.parameters) if response.parameters else None,
            model_version=response.model_version,
        )
        for i in range(len(sizes))
    ]


def _cut(tensor: Tensor, sizes: Sequence[int]) -> list[Tensor]:
    per_row = math.prod(tensor.shape[1:])
    itemsize = element_size(tensor.datatype)
    parameters = binary.without(tensor.parameters, binary.SIZE)
    pieces: list[Tensor] = []
    start = 0
    raw: memoryview | None = None
    data: list[Any] | None = None
    if tensor.has_raw and itemsize is not None:
        raw = memoryview(tensor.raw).cast("B")
    else:
        data = tensor.data
    for size in sizes:
        shape = [size, *tensor.shape[1:]]
        count = size * per_row
        if raw is not None and itemsize is not None:
            piece = bytes(raw[start * itemsize : (start + count) * itemsize])
            own = dict(parameters) if parameters else None  # each reply's own, to change freely
            pieces.append(Tensor(tensor.name, tensor.datatype, shape, None, own, raw=piece))
        elif data is not None:
            piece_data = data[start : start + count]
            own = dict(parameters) if parameters else None
            pieces.append(Tensor(tensor.name, tensor.datatype, shape, piece_data, own))
        start += count
    return pieces

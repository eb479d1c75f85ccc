"""Triton's binary tensor data extension over HTTP (KServe v2's too): the framing.

A body is a JSON header, then the binary tensors' bytes in the header's order, with no
separators; ``Inference-Header-Content-Length`` gives the header's length. Each binary tensor
says its size in ``parameters.binary_data_size`` and has no ``data``. A client asks for binary
outputs per output (``outputs[i].parameters.binary_data``) or for all of them (request
``parameters.binary_data_output``); per output wins. The values' layout is ``codecs.raw``'s.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any, Final

import orjson

from gateway.codecs.tensors import InferenceRequest, Tensor
from gateway.errors import GatewayError

HEADER: Final = "Inference-Header-Content-Length"
SIZE: Final = "binary_data_size"
OUTPUT: Final = "binary_data"
ALL_OUTPUTS: Final = "binary_data_output"
_DIGITS: Final = re.compile(r"[0-9]+")
CONTENT_TYPE: Final = "application/octet-stream"


def header_length(value: str | None, error: type[GatewayError]) -> int | None:
    """``Inference-Header-Content-Length`` as a number; None when absent."""
    if value is None:
        return None
    if not _DIGITS.fullmatch(value.strip()):  # not str.isdigit: "²" is a digit int() refuses
        raise error(f"{HEADER} must be a whole number of bytes, got {value!r}")
    return int(value)


class Reader:
    """The binary part of a body, read in the header's order."""

    __slots__ = ("_error", "_offset", "_view")

    def __init__(self, view: memoryview, error: type[GatewayError]) -> None:
        self._view = view
        self._offset = 0
        self._error = error

    def take(self, size: Any, what: str) -> memoryview:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise self._error(f"{what}: {SIZE} must be a whole number of bytes")
        start, end = self._offset, self._offset + size
        if end > len(self._view):
            raise self._error(f"{what}: {SIZE} {size} runs past the end of the body")
        self._offset = end
        return self._view[start:end]

    def finish(self) -> None:
        left = len(self._view) - self._offset
        if left:
            raise self._error(f"{left} bytes after the last binary tensor belong to none")


def split(
    body: bytes, length: int | None, error: type[GatewayError]
) -> tuple[bytes, Reader | None]:
    """(the JSON header, a reader of the binary part or None for an all-JSON body)."""
    if length is None:
        return body, None
    if length == 0:
        raise error(
            f"{HEADER}: 0 (a body of one input's bytes without a JSON header) is not "
            "supported here: send the JSON header with the tensor's name, datatype and shape"
        )
    if length > len(body):
        raise error(f"{HEADER} is {length}, but the body has only {len(body)} bytes")
    return body[:length], Reader(memoryview(body)[length:], error)


def join(header: dict[str, Any], tensors: Iterable[Tensor]) -> tuple[bytes, int]:
    """(the body, its header's length): ``header`` as JSON, then each tensor's raw bytes."""
    head = orjson.dumps(header)
    return b"".join([head, *(t.raw for t in tensors)]), len(head)


def wanted_outputs(request: InferenceRequest | None) -> Callable[[str], bool] | None:
    """Which outputs the caller wants binary (None: none of them)."""
    if request is None or (not request.parameters and not request.outputs):
        return None  # (the common case: nothing that could ask)
    default = bool((request.parameters or {}).get(ALL_OUTPUTS, False))
    named: dict[str, bool] = {}
    for output in request.outputs or ():
        parameters = output.get("parameters")
        if isinstance(parameters, dict) and OUTPUT in parameters:
            named[str(output.get("name"))] = bool(parameters[OUTPUT])
    if not default and not any(named.values()):
        return None
    return lambda name: named.get(name, default)


def without(parameters: dict[str, Any] | None, *names: str) -> dict[str, Any] | None:
    """``parameters`` without the extension's own keys (None when nothing else is left)."""
    if not parameters or not any(n in parameters for n in names):
        return parameters
    return {k: v for k, v in parameters.items() if k not in names} or None

"""Tensors, model signatures and the JSON helpers every codec and adapter translates through.

A tensor is held the way the Open Inference Protocol holds it: a name, a datatype, a shape and a
flat row-major ``data`` list. Binary strings (TF Serving's ``{"b64": ...}``) are ``bytes``
elements of a ``BYTES`` tensor, so they survive every translation. JSON is read with orjson and,
only when a body holds ``NaN``/``Infinity`` (valid for TF Serving, not for strict JSON), with the
standard library, which accepts and writes them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from gateway.codecs.datatypes import DATATYPES
from gateway.codecs.raw import from_list, to_list
from gateway.errors import BadRequest, InvalidTensor

FLOAT_TYPES = frozenset({"FP16", "FP32", "FP64", "BF16"})
INT_TYPES = frozenset(t for t in DATATYPES if "INT" in t)
UNNAMED = "input_0"  # a TF Serving tensor the client did not name


class Tensor:
    """A tensor: name, datatype, shape and its values, flat and row-major, held as Python values
    (``data``, as JSON carries them) or as raw little-endian bytes (``raw``, as the binary
    extension and gRPC's raw contents carry them). Each form is made from the other only when
    something asks for it, so bytes that go from a binary client to a binary backend never
    become Python numbers."""

    __slots__ = ("_data", "_raw", "datatype", "name", "parameters", "shape")

    def __init__(
        self,
        name: str,
        datatype: str,
        shape: list[int],
        data: list[Any] | None = None,
        parameters: dict[str, Any] | None = None,
        *,
        raw: bytes | memoryview | None = None,
    ) -> None:
        self.name = name
        self.datatype = datatype
        self.shape = shape
        self.parameters = parameters
        self._data = data if data is not None or raw is not None else []
        self._raw = raw

    @property
    def data(self) -> list[Any]:
        data = self._data
        if data is None:
            raw = self._raw if self._raw is not None else b""
            data = self._data = to_list(self.datatype, raw, element_count(self.shape), self.name)
        return data

    @data.setter
    def data(self, values: list[Any]) -> None:
        self._data, self._raw = values, None

    @property
    def raw(self) -> bytes | memoryview:
        raw = self._raw
        if raw is None:
            raw = self._raw = from_list(self.datatype, self._data or [], self.name)
        return raw

    @property
    def has_raw(self) -> bool:
        """The values are held as bytes already (reading ``raw`` costs nothing)."""
        return self._raw is not None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tensor):
            return NotImplemented
        return (self.name, self.datatype, self.shape, self.parameters, self.data) == (
            other.name,
            other.datatype,
            other.shape,
            other.parameters,
            other.data,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dataclass it replaced

    def __repr__(self) -> str:
        held = "raw" if self._data is None else "data"
        return f"Tensor({self.name!r}, {self.datatype}, {self.shape}, {held})"


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """A declared input or output: ``-1`` in ``shape`` matches any size, ``None`` any rank."""

    name: str
    datatype: str
    shape: tuple[int, ...] | None

    def as_json(self) -> dict[str, Any]:
        shape = list(self.shape) if self.shape is not None else None
        return {"name": self.name, "datatype": self.datatype, "shape": shape}


@dataclass(frozen=True, slots=True)
class Signature:
    inputs: tuple[TensorMeta, ...]
    outputs: tuple[TensorMeta, ...]

    def input(self, name: str) -> TensorMeta | None:
        return next((m for m in self.inputs if m.name == name), None)

    def output(self, name: str) -> TensorMeta | None:
        return next((m for m in self.outputs if m.name == name), None)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What a ``metadata``, ``ready`` or ``status`` call found out about a model."""

    model: str
    version: str | None  # None for a status call over every version
    versions: tuple[str, ...]  # every version served, in version order
    signature: Signature | None = None
    ready: tuple[tuple[str, bool], ...] = ()  # per version asked about: ready to serve?


@dataclass(slots=True)
class InferenceRequest:
    """A request's tensors, whatever wire format brought them.

    Two facts about the data itself travel with it, for the adapters to translate faithfully:
    ``typed`` is False when the datatypes were guessed from untyped values (TF Serving's JSON),
    so they are fitted to the model's declared inputs; ``columnar`` says the tensors came as
    named columns rather than rows (a TF Serving backend is asked the same way). ``v2_body`` is
    the exact KServe v2 HTTP body the caller sent, when it did (with ``v2_header_length`` the
    length of its JSON header when it carries binary tensor data): a v2 backend that reads
    that form gets it untouched.
    """

    inputs: list[Tensor]
    typed: bool = True
    columnar: bool = True
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[dict[str, Any]] | None = None
    signature_name: str | None = None
    v2_body: bytes | None = field(default=None, repr=False)
    v2_header_length: int | None = None


@dataclass(slots=True)
class InferenceResponse:
    """A reply's tensors. ``v2_outputs`` is the KServe v2 JSON of ``outputs`` (the array's
    objects, as ``codecs.v2`` writes them; orjson writes them back), when the decoder of a v2
    JSON reply kept it: an encoder of the reply then writes those objects rather than the
    tensors again. Neither the outputs nor those objects (which share the tensors' lists) are
    changed in place once decoded (a step that changes them makes a new response, as a
    batch's split does), so the objects stay theirs."""

    outputs: list[Tensor]
    id: str | None = None
    parameters: dict[str, Any] | None = None
    model_version: str | None = None
    v2_outputs: list[Any] | None = field(default=None, repr=False, compare=False)


def loads(body: bytes, what: str = "the request body") -> Any:
    """Parse JSON, accepting ``NaN``/``Infinity`` like TF Serving does. Raises BadRequest."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    if not body.strip():
        raise BadRequest(f"{what} is empty; expected a JSON object")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"{what} is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # nested deeper than orjson allows, and then Python
        raise BadRequest(f"{what} is nested too deeply") from exc
    if _SURROGATE_ESCAPE.search(body):
        _check_no_lone_surrogate(value, what)
    return value


# ``\ud800``-``\udfff`` escapes: the stdlib reads a lone one as a str no codec can write
_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def _check_no_lone_surrogate(value: Any, what: str) -> None:
    """orjson refuses a lone surrogate (``"\\ud800"``) and the stdlib reads it into a str
    that fails later, wherever it is encoded (toward a backend, in a log line): a 400 now."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=True).encode()
    except RecursionError as exc:
        raise BadRequest(f"{what} is nested too deeply") from exc
    except UnicodeEncodeError as exc:
        raise BadRequest(f"{what} is not valid JSON: a string holds a lone surrogate") from exc


def dumps(obj: Any, tensors: Iterable[Tensor] = ()) -> bytes:
    """Serialise JSON; non-finite floats in ``tensors`` are written as ``NaN``/``Infinity``."""
    for tensor in tensors:
        if tensor.datatype in FLOAT_TYPES and not _all_finite(tensor.data):
            return json.dumps(obj, separators=(",", ":"), allow_nan=True).encode()
    return orjson.dumps(obj)


def _all_finite(data: list[Any]) -> bool:
    # One C-level sum settles the common case: it is finite only if every value is (a sum
    # that overflows falls through to the exact check).
    try:
        total = sum(data)
    except TypeError:
        return True
    except OverflowError:
        total = math.inf
    try:
        return math.isfinite(total) or all(map(math.isfinite, data))
    except TypeError:
        return True


@dataclass(slots=True)
class Flat:
    """Nested JSON lists, flattened: the row-major values, the shape, and the Python types
    among the values (one scan, which every check of the values reads)."""

    data: list[Any]
    shape: list[int]
    kinds: set[type]


def flatten(value: Any, what: str) -> Flat:
    """Nested lists → flat row-major data, shape and value kinds. A ragged nesting is a 400."""
    shape: list[int] = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    if not shape:
        return Flat([value], [], {type(value)})
    flat: list[Any] = value
    for depth in range(1, len(shape)):
        size = shape[depth]
        next_level: list[Any] = []
        for item in flat:
            if not isinstance(item, list) or len(item) != size:
                raise BadRequest(f"{what}: ragged nested list (every row needs {size} items)")
            next_level.extend(item)
        flat = next_level
    kinds = set(map(type, flat))  # (a C-speed scan: JSON lists are exactly list)
    if list in kinds:
        raise BadRequest(f"{what}: ragged nested list")
    return Flat(flat, shape, kinds)


MAX_EMPTY_ROWS: Final = 1 << 16  # lists the nested form of a tensor without values may hold


def nest(flat: list[Any], shape: list[int]) -> Any:
    """Flat row-major data + shape → nested lists (a scalar for shape ``[]``). A shape with a
    0 has no values, yet its nested form has a list for each index before the 0: shape
    ``[10**12, 0]`` would be 10**12 empty lists, so more than ``MAX_EMPTY_ROWS`` is a 422."""
    if not shape:
        return flat[0] if flat else None
    if 0 in shape and math.prod(shape[: shape.index(0)]) > MAX_EMPTY_ROWS:
        raise InvalidTensor(
            f"shape {shape} holds no values but more than {MAX_EMPTY_ROWS} empty lists in JSON"
        )
    nested: list[Any] = flat
    for depth in range(len(shape) - 1, 0, -1):
        # Count the groups from the shape, not the data: [2, 0] is [[], []], not [].
        size, groups = shape[depth], math.prod(shape[:depth])
        nested = [nested[i * size : (i + 1) * size] for i in range(groups)]
    return nested


def element_count(shape: list[int]) -> int:
    return math.prod(shape)


def infer_datatype(kinds: set[type]) -> str:
    """The datatype of untyped JSON values of ``kinds`` (TF Serving's row/columnar formats
    carry none)."""
    if not kinds:
        return "FP32"
    if kinds <= {bool}:
        return "BOOL"
    if kinds <= {str, bytes}:
        return "BYTES"
    if kinds <= {int}:
        return "INT64"
    if kinds <= {int, float}:
        return "FP32"
    raise BadRequest("a tensor mixes numbers, strings and booleans")


def coerce(tensor: Tensor, datatype: str) -> None:
    """Give ``tensor`` the declared ``datatype``, converting JSON ints for float tensors."""
    if tensor.datatype == datatype:
        pass
    elif datatype in FLOAT_TYPES and tensor.datatype in INT_TYPES | FLOAT_TYPES:
        tensor.data = [float(x) for x in tensor.data]
    elif datatype in INT_TYPES and tensor.datatype in INT_TYPES:
        pass
    else:
        raise InvalidTensor(
            f"input {tensor.name!r} has datatype {tensor.datatype}, the model expects {datatype}"
        )
    tensor.datatype = datatype


def shape_fits(shape: list[int], declared: tuple[int, ...] | None) -> bool:
    if declared is None:
        return True
    if len(shape) != len(declared):
        return False
    for i in range(len(shape)):  # (by index: a zip, strict as ruff wants it, costs more)
        fixed = declared[i]
        if fixed != shape[i] and fixed != -1:
            return False
    return True


def _fits_in_order(inputs: list[Tensor], declared: tuple[TensorMeta, ...]) -> bool:
    """Typed inputs that are the declared ones, in their order (the common case, which
    needs no lookup by name): nothing for ``check_inputs`` to fit or to refuse."""
    if len(inputs) != len(declared):
        return False
    for i, meta in enumerate(declared):
        tensor = inputs[i]
        if (
            tensor.name != meta.name
            or tensor.datatype != meta.datatype
            or not shape_fits(tensor.shape, meta.shape)
        ):
            return False
    return True


def check_inputs(request: InferenceRequest, signature: Signature | None) -> None:
    """Fit the request to the model's declared inputs: names, datatypes, shapes (422)."""
    if signature is None or not signature.inputs:
        return
    if request.typed and _fits_in_order(request.inputs, signature.inputs):
        return
    if (
        not request.typed
        and len(signature.inputs) == 1
        and len(request.inputs) == 1
        and request.inputs[0].name == UNNAMED
    ):
        request.inputs[0].name = signature.inputs[0].name  # unnamed TF Serving input
    given = {t.name for t in request.inputs}
    missing = [m.name for m in signature.inputs if m.name not in given]
    if missing:
        raise InvalidTensor(f"missing input(s): {', '.join(missing)}")
    for tensor in request.inputs:
        meta = signature.input(tensor.name)
        if meta is None:
            expected = ", ".join(m.name for m in signature.inputs)
            raise InvalidTensor(f"unexpected input {tensor.name!r}; the model takes {expected}")
        if not request.typed:
            coerce(tensor, meta.datatype)
        elif tensor.datatype != meta.datatype:
            raise InvalidTensor(
                f"input {tensor.name!r} has datatype {tensor.datatype}, "
                f"the model expects {meta.datatype}"
            )
        if not shape_fits(tensor.shape, meta.shape):
            raise InvalidTensor(
                f"input {tensor.name!r} has shape {tensor.shape}, "
                f"the model expects {list(meta.shape or ())}"
            )

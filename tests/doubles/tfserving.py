"""A test double of TensorFlow Serving's REST API (the ``/v1`` handler of tensorflow_model_server).

The real binary cannot run on this machine, so this ASGI app reproduces its REST contract:
routing, error bodies and status codes, the JSON tensor encodings and the exact bytes of the
pretty-printed responses.

Run it with ``python -m tests.doubles.tfserving --host 127.0.0.1 --port N`` (uvicorn);
``--grpc-port M`` adds TF Serving's gRPC API from the same process (``tfserving_grpc.py``,
``--enable-serialization-as-tensor-content`` for its replies). It prints nothing that a caller
needs. Options: ``--rest-api-timeout-ms`` (like ``--rest_api_timeout_in_ms``,
default 30000), ``--enable-cors`` (like ``--rest_api_enable_cors_support``) and ``--parent-pid``
(the double exits when that process is no longer its parent, so a killed test run leaves none).

What it reproduces
------------------
* Only paths matching ``(?i)/v1/.*`` reach the handler. Any other path gets libevent's HTML 404
  (``text/html; charset=ISO-8859-1``, ``Connection: close``), never JSON.
* POST ``/v1/models/{m}[/versions/{v}|/labels/{l}]:(predict|classify|regress)`` and
  GET ``/v1/models/{m}[/versions/{v}|/labels/{l}][/metadata]``, with TF Serving's regexes. Every
  other request under ``/v1``, including PUT/DELETE/PATCH/HEAD, is ``400 {"error": "Malformed
  request: <METHOD> <path>"}`` (never 405). OPTIONS is a CORS preflight.
* Error body ``{"error": "<message>"}``, with TF's messages and its status-code to HTTP map.
* Request JSON is parsed like RapidJSON with ``kParseNanAndInfFlag``: ``NaN``, ``Infinity``,
  ``-Infinity`` (and ``Inf``) are accepted and parse errors read
  ``JSON Parse error: <RapidJSON message> at offset: N``.
* Responses are written like RapidJSON's PrettyWriter (4-space indent, rows of a row-format
  response on one line, ``[[1.0, 9.0]\\n    ]``) and floats like ``WriteDecimal``
  (``9.0``, ``NaN``, ``Infinity``, ``-Infinity``). Status and metadata are protobuf JSON
  (1-space indent, int64 as strings). Every handler response has
  ``Content-Type: application/json``.

Models
------
* ``linear`` versions 1 and 2 (Latest = 2; labels ``stable`` -> 1, ``canary`` -> 2).
  ``serving_default``: ``x`` DT_FLOAT [-1,4] -> ``y`` DT_FLOAT [-1,2], ``y = x @ W.T`` with
  W1 = [[1,0,0,0],[0,1,1,1]] and W2 = 2*W1, so [1,2,3,4] gives [1,9] (v1) and [2,18] (v2).
  ``classify_x_to_y`` (classify; ``scores`` = y, labels ``""``) and ``regress_x_to_y``
  (regress; value = y[0] + y[1]) read a float feature ``x`` of 4 values from each example.
* ``multi`` version 1: ``a``, ``b`` DT_FLOAT [-1,2] -> ``sum`` = a + b, ``diff`` = a - b.
* ``echo_bytes`` version 1: ``text_bytes`` DT_STRING [-1] -> ``out_bytes`` DT_STRING [-1] (the
  same bytes; written as ``{"b64": ...}`` because the output name ends in ``_bytes``).

Test knobs (not TF Serving; under ``/__double__/`` so they never shadow a real route)
----------------------------------------------------------------------------------------
* ``POST /__double__/fail`` ``{"status": 503, "count": 1, "error"?: str, "route"?: str}``: the
  next ``count`` requests under ``/v1`` (only those of ``route`` if given: ``predict``,
  ``classify``, ``regress``, ``status``, ``metadata``) answer ``status`` with a TF-style body
  ``{"error": ...}``. ``count`` 0 clears it. gRPC calls (``tfserving_grpc.py``) get the
  canonical code of ``status``, or ``"code"`` (which may replace ``status``); ``"face":
  "rest"|"grpc"`` limits the fault to one face.
* ``POST /__double__/delay`` ``{"seconds": s, "count"?: int|null, "route"?: str}``: predict,
  classify and regress requests (or only ``route``; ``"any"`` for every ``/v1`` request) wait
  ``s`` seconds before they are processed, for the next ``count`` requests (null: until changed;
  ``seconds`` 0 clears it). A wait at least as long as the REST timeout answers
  ``504 {"error": "Timed out waiting for notification"}`` once the timeout has passed. It holds
  gRPC calls too (``"face"`` as for ``fail``).
* ``POST /__double__/model_state`` ``{"model": m, "version": v, "state": "LOADING",
  "error_code"?: "OK", "error_message"?: ""}``: sets a version's state as model status reports it;
  a version that is not ``AVAILABLE`` cannot serve (404 ``Servable not found ...``) and Latest
  falls back to the newest available version.
* ``GET /__double__/stats``: ``{"requests_total", "by_route", "by_status", "by_model", "by_face",
  "injected_failures", "delayed", "in_flight", "max_in_flight"}`` over ``/v1`` requests and gRPC
  calls (``by_status`` keys: HTTP statuses for REST, code names for gRPC).
* ``POST /__double__/reset``: clears the knobs, the model states and the stats.

Fidelity notes
--------------
Follows shared PROTOCOLS.md section 4 where it is explicit, and tensorflow/serving's
``json_tensor.cc``, ``http_rest_api_handler.cc``, ``http_rest_api_util.cc``, ``classifier.cc`` and
``regressor.cc`` elsewhere. Where those two disagree, PROTOCOLS.md wins: ``Expecting 'instances'``
(the sources read ``Excepting``), a label on GET status picks that version (the stored
``get_model_status_impl.cc`` ignores labels), and ``Failed to convert version`` comes with an
``{"error"}`` body (the handler returns before writing one). Guessed: the texts of errors raised
inside the TF graph (MatMul, Add, ParseExample), the DEADLINE_EXCEEDED text, the body of a
successful OPTIONS (empty), nested statuses printed as ``INVALID_ARGUMENT: ...`` (absl), the
order of several outputs (sorted by name; protobuf map order in TF) and the trailing newline
of protobuf JSON. Predict on the classify/regress signatures (serialized tf.Example input) is
not modelled and answers 400.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import contextlib
import json
import math
import os
import re
import signal
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final
from urllib.parse import unquote_to_bytes

import numpy as np
import numpy.typing as npt
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

Array = npt.NDArray[Any]

# --------------------------------------------------------------------------------------------
# Status codes
# --------------------------------------------------------------------------------------------

HTTP_STATUS: Final[Mapping[str, int]] = {
    "OK": 200,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INVALID_ARGUMENT": 400,
    "DEADLINE_EXCEEDED": 504,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "PERMISSION_DENIED": 403,
    "RESOURCE_EXHAUSTED": 429,
    "FAILED_PRECONDITION": 400,
    "ABORTED": 409,
    "OUT_OF_RANGE": 400,
    "UNIMPLEMENTED": 501,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
    "DATA_LOSS": 500,
    "UNAUTHENTICATED": 401,
}

# The canonical code a fault injected with a given HTTP status stands for.
_CODE_FOR_HTTP: Final[Mapping[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class TFError(Exception):
    """A non-OK tensorflow::Status: a canonical code name and a message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self) -> int:
        return HTTP_STATUS.get(self.code, 500)

    def to_string(self) -> str:
        """absl::Status::ToString(), used where TF nests one status in another's message."""
        return f"{self.code}: {self.message}"


def invalid(message: str) -> TFError:
    return TFError("INVALID_ARGUMENT", message)


# --------------------------------------------------------------------------------------------
# JSON parsing (RapidJSON with kParseNanAndInfFlag)
# --------------------------------------------------------------------------------------------


class JObject:
    """A JSON object that keeps member order and duplicate names, like a RapidJSON Value."""

    __slots__ = ("pairs",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs

    def find(self, key: str) -> tuple[bool, Any]:
        """RapidJSON FindMember: the first member with that name."""
        for name, value in self.pairs:
            if name == key:
                return True, value
        return False, None

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"JObject({self.pairs!r})"


class JsonParseError(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1
_UINT64_MAX: Final = 2**64 - 1
_FLT_MAX: Final = float(np.finfo(np.float32).max)


def _json_int(text: str) -> int | float:
    """RapidJSON keeps integers that fit in int64 or uint64; bigger ones become doubles."""
    value = int(text)
    if _INT64_MIN <= value <= _UINT64_MAX:
        return value
    return float(text)


def _json_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError("Number too big to be stored in double.")  # RapidJSON refuses these
    return value


def _json_constant(name: str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


_ERR_EMPTY = "The document is empty."
_ERR_NOT_SINGULAR = "The document root must not be followed by other values."
_ERR_VALUE_INVALID = "Invalid value."
_ERR_MISS_NAME = "Missing a name for object member."
_ERR_MISS_COLON = "Missing a colon after a name of object member."
_ERR_MISS_COMMA_CURLY = "Missing a comma or '}' after an object member."
_ERR_MISS_COMMA_SQUARE = "Missing a comma or ']' after an array element."
_ERR_BAD_HEX = "Incorrect hex digit after \\u escape in string."
_ERR_SURROGATE = "The surrogate pair in string is invalid."
_ERR_BAD_ESCAPE = "Invalid escape character in string."
_ERR_MISS_QUOTE = "Missing a closing quotation mark in string."
_ERR_BAD_ENCODING = "Invalid encoding in string."
_ERR_TOO_BIG = "Number too big to be stored in double."
_ERR_MISS_FRACTION = "Miss fraction part in number."
_ERR_MISS_EXPONENT = "Miss exponent in number."

_ESCAPES: Final[Mapping[int, bytes]] = {
    ord('"'): b'"',
    ord("\\"): b"\\",
    ord("/"): b"/",
    ord("b"): b"\b",
    ord("f"): b"\f",
    ord("n"): b"\n",
    ord("r"): b"\r",
    ord("t"): b"\t",
}
_HEX = b"0123456789abcdefABCDEF"


class _RapidJsonParser:
    """A port of RapidJSON's recursive GenericReader over a MemoryStream, for exact errors.

    Peek() at the end of input reads as NUL, as MemoryStream's does; offsets are byte offsets.
    """

    def __init__(self, data: bytes) -> None:
        self.s = data
        self.i = 0
        self.n = len(data)

    def peek(self) -> int:
        return self.s[self.i] if self.i < self.n else 0

    def take(self) -> int:
        c = self.peek()
        if self.i < self.n:
            self.i += 1
        return c

    def consume(self, ch: str) -> bool:
        if self.peek() == ord(ch):
            self.i += 1
            return True
        return False

    def skip_ws(self) -> None:
        while self.i < self.n and self.s[self.i] in b" \n\r\t":
            self.i += 1

    def parse(self) -> Any:
        if self.s.startswith(b"\xef\xbb\xbf"):  # EncodedInputStream<UTF8> skips a BOM
            self.i = 3
        self.skip_ws()
        if self.peek() == 0:
            raise JsonParseError(_ERR_EMPTY, self.i)
        value = self.value()
        self.skip_ws()
        if self.peek() != 0:
            raise JsonParseError(_ERR_NOT_SINGULAR, self.i)
        return value

    def value(self) -> Any:
        c = self.peek()
        if c == ord("n"):
            return self.literal("null", None)
        if c == ord("t"):
            return self.literal("true", True)
        if c == ord("f"):
            return self.literal("false", False)
        if c == ord('"'):
            return self.string()
        if c == ord("{"):
            return self.object()
        if c == ord("["):
            return self.array()
        return self.number()

    def literal(self, word: str, value: Any) -> Any:
        self.take()
        for ch in word[1:]:
            if not self.consume(ch):
                raise JsonParseError(_ERR_VALUE_INVALID, self.i)
        return value

    def object(self) -> JObject:
        self.take()
        self.skip_ws()
        pairs: list[tuple[str, Any]] = []
        if self.consume("}"):
            return JObject(pairs)
        while True:
            if self.peek() != ord('"'):
                raise JsonParseError(_ERR_MISS_NAME, self.i)
            name = self.string()
            self.skip_ws()
            if not self.consume(":"):
                raise JsonParseError(_ERR_MISS_COLON, self.i)
            self.skip_ws()
            pairs.append((name, self.value()))
            self.skip_ws()
            if self.consume(","):
                self.skip_ws()
            elif self.consume("}"):
                return JObject(pairs)
            else:
                raise JsonParseError(_ERR_MISS_COMMA_CURLY, self.i)

    def array(self) -> list[Any]:
        self.take()
        self.skip_ws()
        items: list[Any] = []
        if self.consume("]"):
            return items
        while True:
            items.append(self.value())
            self.skip_ws()
            if self.consume(","):
                self.skip_ws()
            elif self.consume("]"):
                return items
            else:
                raise JsonParseError(_ERR_MISS_COMMA_SQUARE, self.i)

    def hex4(self, escape_offset: int) -> int:
        code = 0
        for _ in range(4):
            c = self.peek()
            if c == 0 or c not in _HEX:
                raise JsonParseError(_ERR_BAD_HEX, escape_offset)
            self.take()
            code = code * 16 + int(chr(c), 16)
        return code

    def string(self) -> str:
        self.take()
        out = bytearray()
        while True:
            c = self.peek()
            if c == ord("\\"):
                escape_offset = self.i
                self.take()
                e = self.peek()
                if e in _ESCAPES:
                    self.take()
                    out += _ESCAPES[e]
                elif e == ord("u"):
                    self.take()
                    code = self.hex4(escape_offset)
                    if 0xD800 <= code <= 0xDFFF:
                        if code > 0xDBFF or not (self.consume("\\") and self.consume("u")):
                            raise JsonParseError(_ERR_SURROGATE, escape_offset)
                        low = self.hex4(escape_offset)
                        if not 0xDC00 <= low <= 0xDFFF:
                            raise JsonParseError(_ERR_SURROGATE, escape_offset)
                        code = (((code - 0xD800) << 10) | (low - 0xDC00)) + 0x10000
                    out += chr(code).encode("utf-8")
                else:
                    raise JsonParseError(_ERR_BAD_ESCAPE, escape_offset)
            elif c == ord('"'):
                self.take()
                return out.decode("utf-8", "surrogateescape")
            elif c < 0x20:
                raise JsonParseError(_ERR_MISS_QUOTE if c == 0 else _ERR_BAD_ENCODING, self.i)
            else:
                out.append(self.take())

    def digits(self) -> None:
        while ord("0") <= self.peek() <= ord("9"):
            self.take()

    def number(self) -> int | float:
        start = self.i
        minus = self.consume("-")
        c = self.peek()
        if c == ord("0"):
            self.take()
        elif ord("1") <= c <= ord("9"):
            self.digits()
        else:  # kParseNanAndInfFlag
            special: float | None = None
            if self.consume("N"):
                if self.consume("a") and self.consume("N"):
                    special = math.nan
            elif self.consume("I") and self.consume("n") and self.consume("f"):
                special = -math.inf if minus else math.inf
                if self.peek() == ord("i") and not all(self.consume(ch) for ch in "inity"):
                    raise JsonParseError(_ERR_VALUE_INVALID, self.i)
            if special is None:
                raise JsonParseError(_ERR_VALUE_INVALID, self.i)
            return special
        is_double = False
        if self.consume("."):
            if not ord("0") <= self.peek() <= ord("9"):
                raise JsonParseError(_ERR_MISS_FRACTION, self.i)
            self.digits()
            is_double = True
        if self.consume("e") or self.consume("E"):
            if not self.consume("+"):
                self.consume("-")
            if not ord("0") <= self.peek() <= ord("9"):
                raise JsonParseError(_ERR_MISS_EXPONENT, self.i)
            self.digits()
            is_double = True
        text = self.s[start : self.i].decode("ascii")
        if not is_double:
            return _json_int(text)
        value = float(text)
        if math.isinf(value):
            raise JsonParseError(_ERR_TOO_BIG, start)
        return value


_SURROGATE_ESCAPE: Final = re.compile(rb"\\u[dD][89a-fA-F]")


def parse_json(body: bytes) -> Any:
    """Parse a request body as TF Serving does; raise TFError with its exact message."""
    if not body:
        raise invalid("JSON Parse error: The document is empty")
    if not _SURROGATE_ESCAPE.search(body):  # the stdlib accepts lone surrogates; RapidJSON not
        try:
            # The common case, with the C-accelerated stdlib parser.
            return json.loads(
                body.decode("utf-8"),
                object_pairs_hook=JObject,
                parse_int=_json_int,
                parse_float=_json_float,
                parse_constant=_json_constant,
            )
        except (ValueError, RecursionError):
            pass  # RapidJSON's own reading decides: an exact error, or one of its extensions.
    try:
        return _RapidJsonParser(body).parse()
    except JsonParseError as exc:
        raise invalid(f"JSON Parse error: {exc.message} at offset: {exc.offset}") from None
    except RecursionError:
        raise invalid("JSON Parse error: Terminate parsing due to Handler error.") from None


# --------------------------------------------------------------------------------------------
# JSON writing (RapidJSON PrettyWriter, json_tensor.cc WriteDecimal)
# --------------------------------------------------------------------------------------------


def _escape_json_string(text: str) -> str:
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif code < 0x20:
            out.append(
                {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}.get(code, f"\\u{code:04X}")
            )
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def write_decimal(value: float, *, single: bool) -> str:
    """json_tensor.cc WriteDecimal<float|double>: StrCat's 6 digits, or full precision."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = "%.6g" % value  # noqa: UP031 - printf semantics are the point
    back = float(np.float32(float(text))) if single else float(text)
    if back != value:
        text = ("%.9g" if single else "%.17g") % value
    if "." not in text and "e" not in text:
        text += ".0"
    return text


def rapidjson_dtoa(value: float) -> str:
    """RapidJSON Writer::Double (Grisu shortest digits, then Prettify)."""
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    tup = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(str(d) for d in tup.digits)
    k = int(tup.exponent)
    length = len(digits)
    kk = length + k
    if k >= 0 and kk <= 21:
        body = digits + "0" * k + ".0"
    elif 0 < kk <= 21:
        body = digits[:kk] + "." + digits[kk:]
    elif -6 < kk <= 0:
        body = "0." + "0" * (-kk) + digits
    elif length == 1:
        body = f"{digits}e{kk - 1}"
    else:
        body = f"{digits[0]}.{digits[1:]}e{kk - 1}"
    return sign + body


class _Truncated(Exception):
    """Writer::Double refuses NaN/Inf; RapidJSON's Accept() stops there."""


@dataclass
class _Level:
    in_array: bool
    count: int = 0


class PrettyWriter:
    """rapidjson::PrettyWriter<StringBuffer> with its default 4-space indent."""

    def __init__(self) -> None:
        self._out: list[str] = []
        self._levels: list[_Level] = []
        self.single_line_array = False  # kFormatSingleLineArray

    def _indent(self) -> None:
        self._out.append(" " * (4 * len(self._levels)))

    def _prefix(self) -> None:
        if not self._levels:
            return
        level = self._levels[-1]
        if level.in_array:
            if level.count > 0:
                self._out.append(", " if self.single_line_array else ",")
            if not self.single_line_array:
                self._out.append("\n")
                self._indent()
        else:
            if level.count > 0:
                self._out.append(",\n" if level.count % 2 == 0 else ": ")
            else:
                self._out.append("\n")
            if level.count % 2 == 0:
                self._indent()
        level.count += 1

    def start_object(self) -> None:
        self._prefix()
        self._levels.append(_Level(in_array=False))
        self._out.append("{")

    def end_object(self) -> None:
        level = self._levels.pop()
        if level.count:
            self._out.append("\n")
            self._indent()
        self._out.append("}")

    def start_array(self) -> None:
        self._prefix()
        self._levels.append(_Level(in_array=True))
        self._out.append("[")

    def end_array(self) -> None:
        level = self._levels.pop()
        if level.count and not self.single_line_array:
            self._out.append("\n")
            self._indent()
        self._out.append("]")

    def key(self, name: str) -> None:
        self._prefix()
        self._out.append(_escape_json_string(name))

    def string(self, text: str) -> None:
        self._prefix()
        self._out.append(_escape_json_string(text))

    def raw(self, text: str) -> None:
        self._prefix()
        self._out.append(text)

    def value(self, val: Any) -> None:
        """rapidjson::Value::Accept."""
        if val is None:
            self.raw("null")
        elif val is True:
            self.raw("true")
        elif val is False:
            self.raw("false")
        elif isinstance(val, int):
            self.raw(str(val))
        elif isinstance(val, float):
            if not math.isfinite(val):
                self._prefix()
                raise _Truncated
            self.raw(rapidjson_dtoa(val))
        elif isinstance(val, str):
            self.string(val)
        elif isinstance(val, list):
            self.start_array()
            for item in val:
                self.value(item)
            self.end_array()
        elif isinstance(val, JObject):
            self.start_object()
            for name, item in val.pairs:
                self.key(name)
                self.value(item)
            self.end_object()
        else:  # pragma: no cover - the parser makes nothing else
            raise TypeError(type(val))

    def getvalue(self) -> str:
        return "".join(self._out)


def json_value_to_string(val: Any) -> str:
    """json_tensor.cc JsonValueToString, used in error messages."""
    if isinstance(val, float):
        if -3.4028234e38 <= val <= 3.4028234e38:  # Value::IsFloat()
            return write_decimal(float(np.float32(val)), single=True)
        return write_decimal(val, single=False)
    writer = PrettyWriter()
    with contextlib.suppress(_Truncated):
        writer.value(val)
    return writer.getvalue()


def json_type_string(val: Any) -> str:
    if val is None:
        return "Null"
    if val is True:
        return "True"
    if val is False:
        return "False"
    if isinstance(val, JObject):
        return "Object"
    if isinstance(val, list):
        return "Array"
    if isinstance(val, str):
        return "String"
    return "Number"


def error_body(message: str) -> bytes:
    """json_tensor.cc MakeJsonFromStatus."""
    writer = PrettyWriter()
    writer.start_object()
    writer.key("error")
    writer.string(message)
    writer.end_object()
    return writer.getvalue().encode("utf-8", "surrogateescape")


def proto_json(obj: Any) -> str:
    """protobuf MessageToJsonString with add_whitespace (1-space indent, newline at the end)."""
    return json.dumps(obj, indent=1, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

DT_FLOAT: Final = "DT_FLOAT"
DT_STRING: Final = "DT_STRING"
_DTYPE_NAME: Final[Mapping[str, str]] = {DT_FLOAT: "float", DT_STRING: "string"}

PREDICT_METHOD: Final = "tensorflow/serving/predict"
CLASSIFY_METHOD: Final = "tensorflow/serving/classify"
REGRESS_METHOD: Final = "tensorflow/serving/regress"
DEFAULT_SIGNATURE: Final = "serving_default"

Tensors = dict[str, Array]
Features = dict[str, "Feature"]


@dataclass(frozen=True)
class TensorInfo:
    name: str  # graph tensor name, e.g. "x:0"
    dtype: str
    shape: tuple[int, ...] | None  # None: unknown rank


@dataclass(frozen=True)
class SignatureDef:
    inputs: Mapping[str, TensorInfo]
    outputs: Mapping[str, TensorInfo]
    method_name: str
    predict: Callable[[Tensors], Tensors] | None = None
    examples: Callable[[list[Features]], Array] | None = None  # classify/regress over Examples


@dataclass(frozen=True)
class Servable:
    name: str
    version: int
    signatures: Mapping[str, SignatureDef]


@dataclass
class Model:
    name: str
    versions: dict[int, Servable]
    labels: dict[str, int] = field(default_factory=dict)


def shape_debug_string(shape: tuple[int, ...]) -> str:
    """tensorflow::TensorShape::DebugString."""
    return "[" + ",".join(str(d) for d in shape) + "]"


def _matmul(w: Array) -> Callable[[Tensors], Tensors]:
    def run(inputs: Tensors) -> Tensors:
        x = inputs["x"]
        if x.ndim != 2:
            raise invalid(
                f"In[0] is not a matrix. Instead it has shape {shape_debug_string(x.shape)}"
                "\n\t [[{{node MatMul}}]]"
            )
        if x.shape[1] != w.shape[1]:
            raise invalid(
                f"Matrix size-incompatible: In[0]: {shape_debug_string(x.shape)}, "
                f"In[1]: [{w.shape[1]},{w.shape[0]}]\n\t [[{{{{node MatMul}}}}]]"
            )
        with np.errstate(all="ignore"):
            y = np.einsum("ij,kj->ik", x, w).astype(np.float32)
        return {"y": y}

    return run


def _elementwise(inputs: Tensors) -> Tensors:
    a, b = inputs["a"], inputs["b"]
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise invalid(
            f"Incompatible shapes: {shape_debug_string(a.shape)} vs. "
            f"{shape_debug_string(b.shape)}\n\t [[{{{{node add}}}}]]"
        ) from None
    with np.errstate(all="ignore"):
        return {"sum": (a + b).astype(np.float32), "diff": (a - b).astype(np.float32)}


def _echo(inputs: Tensors) -> Tensors:
    return {"out_bytes": inputs["text_bytes"].copy()}


_PARSE_NODE: Final = "\n\t [[{{node ParseExample/ParseExampleV2}}]]"


def _parse_x(examples: list[Features]) -> Array:
    """ParseExample with a FixedLenFeature x: float[4] (TF's fast-parsing error texts)."""
    rows: list[list[float]] = []
    for index, features in enumerate(examples):
        feature = features.get("x")
        if feature is None:
            raise invalid(
                "Name: <unknown>, Feature: x (data type: float) is required but could not be "
                "found." + _PARSE_NODE
            )
        prefix = f"Name: <unknown>, Key: x, Index: {index}.  "
        if feature.kind not in (None, "float"):
            dtype = "int64" if feature.kind == "int64" else "string"
            raise invalid(
                f"{prefix}Data types don't match. Data type: {dtype} but expected type: float"
                + _PARSE_NODE
            )
        if len(feature.values) != 4:
            raise invalid(
                f"{prefix}Number of float values != expected.  Values size: "
                f"{len(feature.values)} but output shape: [4]" + _PARSE_NODE
            )
        rows.append([float(v) for v in feature.values])
    return np.asarray(rows, dtype=np.float32)


def _linear_servable(version: int) -> Servable:
    w = np.asarray([[1, 0, 0, 0], [0, 1, 1, 1]], dtype=np.float32) * version
    matmul = _matmul(w)
    x_info = TensorInfo("x:0", DT_FLOAT, (-1, 4))
    examples_info = TensorInfo("tf_example:0", DT_STRING, None)

    def scores(examples: list[Features]) -> Array:
        return matmul({"x": _parse_x(examples)})["y"]

    def regress(examples: list[Features]) -> Array:
        y = scores(examples)
        return np.asarray(y.sum(axis=1, keepdims=True, dtype=np.float32))

    return Servable(
        name="linear",
        version=version,
        signatures={
            DEFAULT_SIGNATURE: SignatureDef(
                inputs={"x": x_info},
                outputs={"y": TensorInfo("y:0", DT_FLOAT, (-1, 2))},
                method_name=PREDICT_METHOD,
                predict=matmul,
            ),
            "classify_x_to_y": SignatureDef(
                inputs={"inputs": examples_info},
                outputs={"scores": TensorInfo("scores:0", DT_FLOAT, (-1, 2))},
                method_name=CLASSIFY_METHOD,
                examples=scores,
            ),
            "regress_x_to_y": SignatureDef(
                inputs={"inputs": examples_info},
                outputs={"outputs": TensorInfo("outputs:0", DT_FLOAT, (-1, 1))},
                method_name=REGRESS_METHOD,
                examples=regress,
            ),
        },
    )


def default_models() -> dict[str, Model]:
    multi = Servable(
        name="multi",
        version=1,
        signatures={
            DEFAULT_SIGNATURE: SignatureDef(
                inputs={
                    "a": TensorInfo("a:0", DT_FLOAT, (-1, 2)),
                    "b": TensorInfo("b:0", DT_FLOAT, (-1, 2)),
                },
                outputs={
                    "sum": TensorInfo("add:0", DT_FLOAT, (-1, 2)),
                    "diff": TensorInfo("sub:0", DT_FLOAT, (-1, 2)),
                },
                method_name=PREDICT_METHOD,
                predict=_elementwise,
            )
        },
    )
    echo = Servable(
        name="echo_bytes",
        version=1,
        signatures={
            DEFAULT_SIGNATURE: SignatureDef(
                inputs={"text_bytes": TensorInfo("text_bytes:0", DT_STRING, (-1,))},
                outputs={"out_bytes": TensorInfo("Identity:0", DT_STRING, (-1,))},
                method_name=PREDICT_METHOD,
                predict=_echo,
            )
        },
    )
    return {
        "linear": Model(
            "linear",
            {1: _linear_servable(1), 2: _linear_servable(2)},
            labels={"stable": 1, "canary": 2},
        ),
        "multi": Model("multi", {1: multi}),
        "echo_bytes": Model("echo_bytes", {1: echo}),
    }


def signature_debug_string(sig: SignatureDef) -> str:
    """SignatureDef::DebugString() (protobuf text format), as classify/regress errors print it."""
    lines: list[str] = []
    for field_name, infos in (("inputs", sig.inputs), ("outputs", sig.outputs)):
        for key in sorted(infos):
            info = infos[key]
            lines += [
                f"{field_name} {{",
                f'  key: "{key}"',
                "  value {",
                f'    name: "{info.name}"',
                f"    dtype: {info.dtype}",
                "    tensor_shape {",
            ]
            if info.shape is None:
                lines.append("      unknown_rank: true")
            else:
                for size in info.shape:
                    lines += ["      dim {", f"        size: {size}", "      }"]
            lines += ["    }", "  }", "}"]
    lines.append(f'method_name: "{sig.method_name}"')
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# JSON -> tensors (json_tensor.cc FillPredictRequestFromJson)
# --------------------------------------------------------------------------------------------


def _format_error(val: Any, text: str) -> TFError:
    return invalid(f"JSON Value: {json_value_to_string(val)} {text}")


def _type_error(val: Any, dtype: str) -> TFError:
    return invalid(
        f"JSON Value: {json_value_to_string(val)} Type: {json_type_string(val)} "
        f"is not of expected type: {_DTYPE_NAME[dtype]}"
    )


def _lossy(val: Any, target: str) -> TFError:
    return invalid(
        f"Cannot convert JSON value: {json_value_to_string(val)} to {target} "
        "without loss of precision."
    )


def _is_number(val: Any) -> bool:
    return isinstance(val, int | float) and not isinstance(val, bool)


def _is_lossless_float(val: int | float) -> bool:
    if isinstance(val, float):
        if not math.isfinite(val):
            return True
        return -_FLT_MAX <= val <= _FLT_MAX
    return abs(val) <= (1 << 24) - 1


def is_b64_object(val: Any) -> bool:
    if isinstance(val, JObject) and len(val) == 1:
        found, inner = val.find("b64")
        return found and isinstance(inner, str)
    return False


def _b64_decode(val: Any) -> bytes:
    if not is_b64_object(val):
        raise invalid(
            f"JSON Value: {json_value_to_string(val)} not formatted correctly for base64 data"
        )
    text: str = val.pairs[0][1]
    stripped = text.rstrip("=")
    if (
        len(text) - len(stripped) > 2
        or len(stripped) % 4 == 1
        or not re.fullmatch(r"[A-Za-z0-9+/]*", stripped)
    ):
        raise invalid("Unable to base64 decode")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise invalid("Unable to base64 decode") from None


def _add_value(val: Any, dtype: str, out: list[Any]) -> None:
    """AddValueToTensor."""
    if dtype == DT_FLOAT:
        if not _is_number(val):
            raise _type_error(val, dtype)
        if not _is_lossless_float(val):
            raise _lossy(val, "float")
        out.append(float(val))
    elif dtype == DT_STRING:
        if not isinstance(val, str):
            raise _type_error(val, dtype)
        out.append(val.encode("utf-8", "surrogateescape"))
    else:  # pragma: no cover - the double's models use only these two
        raise TFError("UNIMPLEMENTED", f"Conversion of JSON Value to type: {dtype}")


def dense_shape(val: Any) -> list[int]:
    """GetDenseTensorShape: follows the first element of each nested list."""
    shape: list[int] = []
    while isinstance(val, list):
        shape.append(len(val))
        if not val:
            break
        val = val[0]
    return shape


def _fill_tensor(val: Any, level: int, dtype: str, shape: list[int], out: list[Any]) -> None:
    """FillTensorProto."""
    rank = len(shape)
    if not isinstance(val, list):
        if level != rank:
            raise invalid(
                f"JSON Value: {json_value_to_string(val)} found at incorrect level: "
                f"{level + 1} in the JSON DOM. Expected at level: {rank}"
            )
        if isinstance(val, JObject):
            if dtype != DT_STRING:
                raise _type_error(val, dtype)
            out.append(_b64_decode(val))
        else:
            _add_value(val, dtype, out)
        return
    if level >= rank:
        raise invalid(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(val) != shape[level]:
        raise invalid(
            f"Encountered list at unexpected size: {len(val)} at level: {level} "
            f"expected size: {shape[level]}"
        )
    for item in val:
        _fill_tensor(item, level + 1, dtype, shape, out)


def shape_to_string(shape: list[int]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


@dataclass
class _Building:
    dtype: str
    values: list[Any] = field(default_factory=list)
    item_shape: list[int] | None = None
    item_size: int = 0


def _add_instance_item(
    item: Any, name: str, infos: Mapping[str, TensorInfo], building: dict[str, _Building]
) -> None:
    """AddInstanceItem."""
    if name not in infos:
        raise invalid(f"JSON object: does not have named input: {name}")
    entry = building.setdefault(name, _Building(infos[name].dtype))
    shape = dense_shape(item)
    before = len(entry.values)
    _fill_tensor(item, 0, entry.dtype, shape, entry.values)
    size = len(entry.values) - before
    if entry.item_shape is None:
        entry.item_shape = shape
        entry.item_size = size
    elif entry.item_size != size:
        raise invalid(f"Expecting tensor size: {entry.item_size} but got: {size}")
    elif entry.item_shape != shape:
        raise invalid(
            f"Expecting shape {shape_to_string(entry.item_shape)} but got: {shape_to_string(shape)}"
        )


def _to_array(dtype: str, values: list[Any], shape: list[int]) -> Array:
    if dtype == DT_FLOAT:
        with np.errstate(all="ignore"):
            return np.asarray(values, dtype=np.float32).reshape(shape)
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array.reshape(shape)


def tensors_from_instances(instances: list[Any], infos: Mapping[str, TensorInfo]) -> Tensors:
    """FillTensorMapFromInstancesList (row format)."""
    if not isinstance(instances[0], JObject) and len(infos) > 1:
        raise invalid(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )

    def is_element_object(val: Any) -> bool:
        return isinstance(val, JObject) and not is_b64_object(val)

    objects = is_element_object(instances[0])
    input_names = sorted(infos)
    building: dict[str, _Building] = {}
    for index, elem in enumerate(instances):
        if objects:
            if not is_element_object(elem):
                raise invalid(f"Expecting object but got list at item {index} of input list")
            keys: set[str] = set()
            for name, value in elem.pairs:
                keys.add(name)
                try:
                    _add_instance_item(value, name, infos, building)
                except TFError as exc:
                    raise invalid(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {exc.to_string()}"
                    ) from None
            if keys != set(input_names):
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{json_value_to_string(elem)} keys must be equal to: {','.join(input_names)}"
                )
        else:
            if is_element_object(elem):
                raise invalid(f"Expecting value/list but got object at item {index} of input list")
            try:
                _add_instance_item(elem, input_names[0], infos, building)
            except TFError as exc:
                raise invalid(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {exc.to_string()}"
                ) from None
    tensors: Tensors = {}
    for name, entry in building.items():
        shape = [len(instances), *(entry.item_shape or [])]
        if math.prod(shape) != len(entry.values):  # a name repeated inside one instance
            raise invalid(
                f"Input to reshape is a tensor with {len(entry.values)} values, but the "
                f"requested shape has {math.prod(shape)}"
            )
        tensors[name] = _to_array(entry.dtype, entry.values, shape)
    return tensors


def tensors_from_inputs(val: Any, infos: Mapping[str, TensorInfo]) -> Tensors:
    """FillTensorMapFromInputsMap (columnar format)."""
    tensors: Tensors = {}
    if not isinstance(val, JObject) or is_b64_object(val):
        if len(infos) > 1:
            raise invalid(
                "inputs is a plain value/list, but expecting an object as multiple input "
                "tensors required as per tensorinfo_map"
            )
        name = sorted(infos)[0]
        items = [(name, val)]
    else:
        items = []
        for name in sorted(infos):
            found, item = val.find(name)
            if not found:
                raise invalid(f"Missing named input: {name} in 'inputs' object.")
            items.append((name, item))
    for name, item in items:
        dtype = infos[name].dtype
        shape = dense_shape(item)
        values: list[Any] = []
        _fill_tensor(item, 0, dtype, shape, values)
        tensors[name] = _to_array(dtype, values, shape)
    return tensors


# --------------------------------------------------------------------------------------------
# Tensors -> JSON (MakeJsonFromTensors)
# --------------------------------------------------------------------------------------------


def _write_scalar(writer: PrettyWriter, value: Any, as_bytes: bool) -> None:
    if isinstance(value, bytes):
        if as_bytes:
            writer.start_object()
            writer.key("b64")
            writer.string(base64.b64encode(value).decode("ascii"))
            writer.end_object()
        else:
            writer.string(value.decode("utf-8", "surrogateescape"))
    else:
        writer.raw(write_decimal(float(value), single=True))


def _write_tensor(writer: PrettyWriter, array: Array, as_bytes: bool) -> None:
    """AddTensorValues."""
    if array.ndim == 0:
        _write_scalar(writer, array.item(), as_bytes)
        return
    writer.start_array()
    for sub in array:
        _write_tensor(writer, np.asarray(sub, dtype=array.dtype), as_bytes)
    writer.end_array()


def _is_bytes_output(name: str, array: Array) -> bool:
    return array.dtype == object and name.endswith("_bytes")


def make_json_from_tensors(outputs: Tensors, row_format: bool) -> str:
    names = sorted(outputs)
    writer = PrettyWriter()
    multiple = len(names) > 1
    if row_format:
        batch_size = -1
        for name in names:
            array = outputs[name]
            if array.ndim == 0:
                raise invalid(f"Tensor name: {name} has no shape information ")
            if batch_size >= 0 and batch_size != array.shape[0]:
                raise invalid(
                    f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} "
                    f"expecting: {batch_size}"
                )
            batch_size = array.shape[0]
        writer.start_object()
        writer.key("predictions")
        writer.start_array()
        for item in range(batch_size):
            if multiple:
                writer.start_object()
            writer.single_line_array = True
            for name in names:
                array = outputs[name]
                if multiple:
                    writer.key(name)
                _write_tensor(
                    writer,
                    np.asarray(array[item], dtype=array.dtype),
                    _is_bytes_output(name, array),
                )
            writer.single_line_array = False
            if multiple:
                writer.end_object()
        writer.end_array()
        writer.end_object()
    else:
        writer.start_object()
        writer.key("outputs")
        if multiple:
            writer.start_object()
        for name in names:
            array = outputs[name]
            if multiple:
                writer.key(name)
            _write_tensor(writer, array, _is_bytes_output(name, array))
        if multiple:
            writer.end_object()
        writer.end_object()
    return writer.getvalue()


# --------------------------------------------------------------------------------------------
# Classify / regress (FillClassifyRegressRequestFromJson, classifier.cc, regressor.cc)
# --------------------------------------------------------------------------------------------


@dataclass
class Feature:
    kind: str | None = None  # "bytes" | "float" | "int64"; None: KIND_NOT_SET
    values: list[Any] = field(default_factory=list)


def _add_value_to_feature(val: Any, name: str, feature: Feature) -> None:
    def need(kind: str) -> None:
        if feature.kind not in (None, kind):
            raise invalid(
                f"Unexpected element type in feature: {name} expecting type: {feature.kind}"
            )
        feature.kind = kind

    unexpected = invalid(
        f"Feature: {name} has element with unexpected JSON type: {json_type_string(val)}"
    )
    if val is None or isinstance(val, list):
        raise unexpected
    if isinstance(val, bool):
        need("int64")
        feature.values.append(1 if val else 0)
    elif isinstance(val, JObject):
        if not is_b64_object(val):
            raise unexpected
        need("bytes")
        feature.values.append(_b64_decode(val))
    elif isinstance(val, str):
        need("bytes")
        feature.values.append(val.encode("utf-8", "surrogateescape"))
    elif isinstance(val, float):
        need("float")
        if not _is_lossless_float(val):
            raise _lossy(val, "float")
        feature.values.append(float(np.float32(val)))
    else:
        need("int64")
        if val > _INT64_MAX:
            raise invalid(f"Feature: {name} has uint64 element. Only int64 is supported.")
        feature.values.append(val)


def _make_example(val: Any) -> Features:
    if not isinstance(val, JObject):
        raise invalid(f"Example must be JSON object but got JSON {json_type_string(val)}")
    features: Features = {}
    for name, content in val.pairs:
        feature = Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_value_to_feature(item, name, feature)
        features[name] = feature
    return features


def examples_from_json(doc: JObject) -> list[Features]:
    context: Features = {}
    found, value = doc.find("context")
    if found:
        context = _make_example(value)
    found, examples = doc.find("examples")
    if not found:
        raise _format_error(
            doc, "When method is classify, key 'examples' is expected and was not found"
        )
    if not isinstance(examples, list):
        raise _format_error(doc, "Expecting 'examples' value to be an list/array")
    if not examples:
        raise _format_error(doc, "'examples' value is an empty array")
    return [{**context, **_make_example(example)} for example in examples]


def run_examples(
    servable: Servable,
    signature_name: str,
    examples: Callable[[], list[Features]],
    *,
    classify: bool,
) -> tuple[str, Array]:
    """TensorFlowClassifier/Regressor (classifier.cc, regressor.cc), shared by REST and gRPC:
    the signature (its name, "" for the default one) and its checks, then the examples (read
    only then, as InputToSerializedExampleTensor reads them after the checks), run. The
    signature's name and the scores ([examples, classes]) or values ([examples, 1])."""
    name = signature_name or DEFAULT_SIGNATURE
    sig = servable.signatures.get(name)
    if sig is None:
        raise invalid(f"No signature was found with the name: {name}")
    if len(sig.inputs) != 1:
        raise invalid("Expected one input Tensor.")
    kind = "classification" if classify else "regression"
    if classify and len(sig.outputs) not in (1, 2):
        raise invalid(f"Expected one or two output Tensors, found {len(sig.outputs)}")
    if not classify and len(sig.outputs) != 1:
        raise invalid("Expected one output Tensor.")
    if "inputs" not in sig.inputs:
        raise invalid(f"No {kind} inputs found in SignatureDef: {signature_debug_string(sig)}")
    if classify and not ({"classes", "scores"} & set(sig.outputs)):
        raise invalid(
            'Expected classification signature outputs to contain at least one of "classes" '
            f'or "scores". Signature was: {signature_debug_string(sig)}'
        )
    if not classify and "outputs" not in sig.outputs:
        raise invalid(f"No regression outputs found in SignatureDef: {signature_debug_string(sig)}")
    assert sig.examples is not None  # every signature that passes the checks has one
    return name, sig.examples(examples())


# --------------------------------------------------------------------------------------------
# The REST handler (http_rest_api_handler.cc, http_rest_api_util.cc)
# --------------------------------------------------------------------------------------------

V1_PATH_RE: Final = re.compile(r"/v1/.*", re.IGNORECASE)
PREDICTION_API_RE: Final = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)",
    re.IGNORECASE | re.ASCII,
)
MODEL_STATUS_API_RE: Final = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE | re.ASCII,
)

STATES: Final = ("UNKNOWN", "START", "LOADING", "AVAILABLE", "UNLOADING", "END")


@dataclass
class ModelInfo:
    parsed: bool = False
    name: str = ""
    version: int | None = None
    label: str | None = None
    method: str = ""
    subresource: str = ""


def _decode_arg(text: str) -> str:
    """curl_easy_unescape."""
    return unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def parse_model_info(http_method: str, path: str) -> ModelInfo:
    info = ModelInfo()
    version_str = ""
    label_str = ""
    match: re.Match[str] | None = None
    if http_method == "POST":
        match = PREDICTION_API_RE.fullmatch(path)
        if match:
            info.name, version_str, label_str, info.method = (g or "" for g in match.groups())
    elif http_method == "GET":
        match = MODEL_STATUS_API_RE.fullmatch(path)
        if match:
            info.name, version_str, label_str, info.subresource = (g or "" for g in match.groups())
    info.parsed = match is not None
    if info.name:
        info.name = _decode_arg(info.name)
    if version_str:
        version = int(version_str)
        if version > _INT64_MAX:
            raise invalid(f"Failed to convert version: {version_str} to numeric.")
        info.version = version
    if label_str:
        info.label = _decode_arg(label_str)
    return info


@dataclass
class VersionState:
    state: str = "AVAILABLE"
    error_code: str = "OK"
    error_message: str = ""


class RestApiHandler:
    """HttpRestApiHandler::ProcessRequest over the double's models."""

    def __init__(self, models: dict[str, Model] | None = None) -> None:
        self.models = models if models is not None else default_models()
        self.states: dict[tuple[str, int], VersionState] = {}

    def state_of(self, name: str, version: int) -> VersionState:
        return self.states.get((name, version)) or VersionState()

    def process(self, http_method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            info = parse_model_info(http_method, path)
            output = self._dispatch(http_method, path, body, info)
        except TFError as exc:
            return exc.http_status, error_body(exc.message)
        return 200, output.encode("utf-8", "surrogateescape")

    def _dispatch(self, http_method: str, path: str, body: bytes, info: ModelInfo) -> str:
        if http_method == "POST" and info.parsed:
            if info.method == "classify":
                return self.classify_or_regress(info, body, classify=True)
            if info.method == "regress":
                return self.classify_or_regress(info, body, classify=False)
            if info.method == "predict":
                return self.predict(info, body)
        elif http_method == "GET" and info.parsed:
            if info.subresource == "metadata":
                return self.metadata(info)
            return self.model_status(info)
        raise invalid(f"Malformed request: {http_method} {path}")

    # --- servables ---------------------------------------------------------------------

    def resolve_label(self, name: str, label: str) -> int:
        model = self.models.get(name)
        if model is None or label not in model.labels:
            raise invalid(f"Unrecognized servable version label: {label}")
        return model.labels[label]

    def servable(self, info: ModelInfo) -> Servable:
        """ServerCore::GetServableHandle."""
        version = info.version
        if info.label is not None:
            version = self.resolve_label(info.name, info.label)
        model = self.models.get(info.name)
        if version is None:
            available = [
                v
                for v in (model.versions if model else {})
                if self.state_of(info.name, v).state == "AVAILABLE"
            ]
            if model is None or not available:
                raise TFError("NOT_FOUND", f"Servable not found for request: Latest({info.name})")
            return model.versions[max(available)]
        if (
            model is None
            or version not in model.versions
            or self.state_of(info.name, version).state != "AVAILABLE"
        ):
            raise TFError(
                "NOT_FOUND", f"Servable not found for request: Specific({info.name}, {version})"
            )
        return model.versions[version]

    @staticmethod
    def parse_document(body: bytes) -> tuple[JObject, str]:
        """ParseJson + FillSignature."""
        doc = parse_json(body)
        if not isinstance(doc, JObject):
            raise _format_error(doc, "Is not object")
        found, signature = doc.find("signature_name")
        if found and not isinstance(signature, str):
            raise _format_error(
                doc, "not formatted correctly. 'signature_name' key must be a string value."
            )
        return doc, signature if found else ""

    # --- predict -----------------------------------------------------------------------

    def predict(self, info: ModelInfo, body: bytes) -> str:
        doc, signature_name = self.parse_document(body)
        servable = self.servable(info)
        name = signature_name or DEFAULT_SIGNATURE
        sig = servable.signatures.get(name)
        if sig is None:
            raise invalid(f'Serving signature name: "{name}" not found in signature def')
        has_instances, instances = doc.find("instances")
        has_inputs, inputs = doc.find("inputs")
        if has_instances:
            if has_inputs:
                raise _format_error(
                    doc,
                    "Not formatted correctly expecting only one of 'inputs' or 'instances' "
                    "keys to exist ",
                )
            if not isinstance(instances, list):
                raise _format_error(doc, "Expecting 'instances' to be an list/array")
            if not instances:
                raise _format_error(doc, "No values in 'instances' array")
            tensors = tensors_from_instances(instances, sig.inputs)
            row_format = True
        elif has_inputs:
            tensors = tensors_from_inputs(inputs, sig.inputs)
            row_format = False
        else:
            raise invalid("Missing 'inputs' or 'instances' key")
        if sig.predict is None:
            # A classify/regress signature fed through predict: its input is serialized
            # tf.Example protos, which the double does not decode.
            first = next(iter(tensors.values())).reshape(-1)
            shown = first[0].decode("utf-8", "replace") if first.size else ""
            raise invalid(f"Could not parse example input, value: '{shown}'{_PARSE_NODE}")
        return make_json_from_tensors(sig.predict(tensors), row_format)

    # --- classify / regress ------------------------------------------------------------

    def classify_or_regress(self, info: ModelInfo, body: bytes, *, classify: bool) -> str:
        doc, signature_name = self.parse_document(body)
        examples = examples_from_json(doc)
        servable = self.servable(info)
        _, result = run_examples(servable, signature_name, lambda: examples, classify=classify)
        writer = PrettyWriter()
        writer.start_object()
        writer.key("results")
        if classify:
            writer.start_array()
            for row in result:
                writer.single_line_array = True
                writer.start_array()
                for score in row:
                    writer.start_array()
                    writer.string("")
                    writer.raw(write_decimal(float(score), single=True))
                    writer.end_array()
                writer.end_array()
                writer.single_line_array = False
            writer.end_array()
        else:
            writer.single_line_array = True
            writer.start_array()
            for value in result.reshape(-1):
                writer.raw(write_decimal(float(value), single=True))
            writer.end_array()
        writer.end_object()
        return writer.getvalue()

    # --- status / metadata -------------------------------------------------------------

    def model_status(self, info: ModelInfo) -> str:
        if not info.name:
            raise invalid("Missing model name in request.")
        model = self.models.get(info.name)
        version = info.version
        if info.label is not None:
            version = self.resolve_label(info.name, info.label)
        if version is not None:
            if model is None or version not in model.versions:
                raise TFError("NOT_FOUND", f"Could not find version {version} of model {info.name}")
            versions = [version]
        else:
            if model is None:
                raise TFError("NOT_FOUND", f"Could not find any versions of model {info.name}")
            versions = sorted(model.versions, reverse=True)
        statuses = []
        for v in versions:
            state = self.state_of(info.name, v)
            statuses.append(
                {
                    "version": str(v),
                    "state": state.state,
                    "status": {
                        "error_code": state.error_code,
                        "error_message": state.error_message,
                    },
                }
            )
        return proto_json({"model_version_status": statuses})

    def metadata(self, info: ModelInfo) -> str:
        if not info.name:
            raise invalid("Missing model name in request.")
        servable = self.servable(info)
        model_spec = {"name": servable.name, "signature_name": "", "version": str(servable.version)}
        signature_defs = {
            name: {
                "inputs": {k: _tensor_info_json(v) for k, v in sig.inputs.items()},
                "outputs": {k: _tensor_info_json(v) for k, v in sig.outputs.items()},
                "method_name": sig.method_name,
                "defaults": {},
            }
            for name, sig in servable.signatures.items()
        }
        # http_rest_api_util.cc ToJsonString(GetModelMetadataResponse) concatenates two
        # protobuf JSON strings by hand.
        return (
            "{\n"
            f'"model_spec":{proto_json(model_spec)},\n'
            f'"metadata": {{"signature_def": {proto_json({"signature_def": signature_defs})}}}\n'
            "}\n"
        )


def _tensor_info_json(info: TensorInfo) -> dict[str, Any]:
    dims = [] if info.shape is None else [{"size": str(d), "name": ""} for d in info.shape]
    return {
        "dtype": info.dtype,
        "tensor_shape": {"dim": dims, "unknown_rank": info.shape is None},
        "name": info.name,
    }


# --------------------------------------------------------------------------------------------
# The ASGI app, with the test knobs
# --------------------------------------------------------------------------------------------

NOT_FOUND_HTML: Final = (
    b"<HTML><HEAD>\n<TITLE>404 Not Found</TITLE>\n</HEAD><BODY>\n<H1>Not Found</H1>\n"
    b"</BODY></HTML>\n"
)
INFERENCE_ROUTES: Final = frozenset({"predict", "classify", "regress"})
CORS_HEADERS: Final[Mapping[str, str]] = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}


@dataclass
class Fault:
    status: int
    count: int
    message: str
    route: str | None
    code: str = "UNKNOWN"  # the canonical code, for the gRPC face
    face: str | None = None  # "rest" or "grpc"; None: both


@dataclass
class Delay:
    seconds: float
    count: int | None
    route: str | None
    face: str | None = None


@dataclass
class Stats:
    requests_total: int = 0
    by_route: dict[str, int] = field(default_factory=dict)
    by_status: dict[str, int] = field(default_factory=dict)
    by_model: dict[str, int] = field(default_factory=dict)
    injected_failures: int = 0
    delayed: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    by_face: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "requests_total": self.requests_total,
            "by_route": self.by_route,
            "by_status": self.by_status,
            "by_model": self.by_model,
            "by_face": self.by_face,
            "injected_failures": self.injected_failures,
            "delayed": self.delayed,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


def _route_of(http_method: str, path: str) -> tuple[str, str]:
    """(route, model) for the stats and the knobs; never raises."""
    if http_method == "OPTIONS":
        return "options", ""
    try:
        info = parse_model_info(http_method, path)
    except TFError:
        return "malformed", ""
    if http_method == "POST" and info.parsed and info.method in INFERENCE_ROUTES:
        return info.method, info.name
    if http_method == "GET" and info.parsed:
        return ("metadata" if info.subresource == "metadata" else "status"), info.name
    return "malformed", ""


def _face(payload: Mapping[str, Any]) -> str | None:
    face = payload.get("face")
    if face not in (None, "rest", "grpc"):
        raise ValueError('face must be "rest" or "grpc"')
    return None if face is None else str(face)


def _control_json(status: int, payload: Any) -> Response:
    return Response(
        json.dumps(payload, indent=1) + "\n", status_code=status, media_type="application/json"
    )


class TFServingDouble:
    """The ASGI application: TF Serving's REST port, plus ``/__double__/`` knobs."""

    def __init__(
        self, *, timeout_ms: int = 30000, enable_cors: bool = False, parent_pid: int | None = None
    ) -> None:
        self.parent_pid = parent_pid
        self._watcher: asyncio.Task[None] | None = None
        self.handler = RestApiHandler()
        self.timeout_ms = timeout_ms
        self.enable_cors = enable_cors
        self.fault: Fault | None = None
        self.delay: Delay | None = None
        self.stats = Stats()
        # Run by the ASGI lifespan (the gRPC face, tests/doubles/tfserving_grpc.py).
        self.on_startup: list[Callable[[], Awaitable[None]]] = []
        self.on_shutdown: list[Callable[[], Awaitable[None]]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    if self.parent_pid is not None:
                        self._watcher = asyncio.create_task(self._exit_with_parent())
                    try:
                        for hook in self.on_startup:
                            await hook()
                    except OSError as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    for hook in self.on_shutdown:
                        await hook()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8")
        path = raw_path.decode("latin-1")
        if path.startswith("/__double__/"):
            response = await self.control(request, path)
        elif V1_PATH_RE.fullmatch(path):
            response = await self.rest(request, path)
        else:
            response = Response(
                NOT_FOUND_HTML,
                status_code=404,
                media_type="text/html; charset=ISO-8859-1",
                headers={"Connection": "close"},
            )
        await response(scope, receive, send)

    async def _exit_with_parent(self) -> None:
        """Shut down (SIGTERM to itself) once the process that started it has gone."""
        while True:
            await asyncio.sleep(0.5)
            if os.getppid() != self.parent_pid:
                os.kill(os.getpid(), signal.SIGTERM)
                return

    # --- /v1 ---------------------------------------------------------------------------

    def _json_response(self, status: int, body: bytes) -> Response:
        headers = dict(CORS_HEADERS) if self.enable_cors else None
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    async def rest(self, request: Request, path: str) -> Response:
        http_method = request.method
        body = await request.body()
        route, model = _route_of(http_method, path)
        stats = self.stats
        stats.requests_total += 1
        stats.by_route[route] = stats.by_route.get(route, 0) + 1
        stats.by_face["rest"] = stats.by_face.get("rest", 0) + 1
        if model:
            stats.by_model[model] = stats.by_model.get(model, 0) + 1
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            status, output = await self._answer(request, http_method, path, body, route)
        finally:
            stats.in_flight -= 1
        stats.by_status[str(status)] = stats.by_status.get(str(status), 0) + 1
        return self._json_response(status, output)

    async def _answer(
        self, request: Request, http_method: str, path: str, body: bytes, route: str
    ) -> tuple[int, bytes]:
        fault = self.take_fault(route, "rest")
        if fault is not None:
            return fault.status, error_body(fault.message)
        seconds = self.take_delay(route, "rest")
        if seconds is not None:
            timeout = self.timeout_ms / 1000.0
            if seconds >= timeout > 0:
                await asyncio.sleep(timeout)
                return 504, error_body("Timed out waiting for notification")
            await asyncio.sleep(seconds)
        if http_method == "OPTIONS":
            origin = request.headers.get("origin", "")
            if re.search(r"https?://", origin):
                return 200, b""
            return 400, error_body("Origin header is missing in CORS preflight")
        return self.handler.process(http_method, path, body)

    def take_fault(self, route: str, face: str) -> Fault | None:
        """The armed fault if it applies to this request (and count it), else None."""
        fault = self.fault
        if (
            fault is None
            or fault.count <= 0
            or fault.route not in (None, route)
            or fault.face not in (None, face)
        ):
            return None
        fault.count -= 1
        if fault.count == 0:
            self.fault = None
        self.stats.injected_failures += 1
        return fault

    def take_delay(self, route: str, face: str) -> float | None:
        """The seconds this request waits, if a delay applies to it (and count it)."""
        delay = self.delay
        if delay is None or delay.face not in (None, face):
            return None
        if not (
            route in INFERENCE_ROUTES if delay.route is None else delay.route in ("any", route)
        ):
            return None
        if delay.count is not None:
            delay.count -= 1
            if delay.count <= 0:
                self.delay = None
        self.stats.delayed += 1
        return delay.seconds

    # --- /__double__ -------------------------------------------------------------------

    async def control(self, request: Request, path: str) -> Response:
        if path == "/__double__/stats" and request.method == "GET":
            return _control_json(200, self.stats.as_json())
        if request.method != "POST":
            return _control_json(404, {"error": f"no such knob: {request.method} {path}"})
        try:
            raw = await request.body()
            payload: Any = json.loads(raw) if raw.strip() else {}
            if not isinstance(payload, dict):
                raise TypeError("the body must be a JSON object")
            return self._apply_knob(path, payload)
        except (ValueError, TypeError, KeyError) as exc:
            return _control_json(400, {"error": f"bad knob request: {exc}"})

    def _apply_knob(self, path: str, payload: dict[str, Any]) -> Response:
        if path == "/__double__/reset":
            self.fault = None
            self.delay = None
            self.stats = Stats()
            self.handler.states.clear()
            return _control_json(200, {"ok": True})
        if path == "/__double__/fail":
            face = _face(payload)
            if "code" in payload and "status" not in payload:
                code = str(payload["code"])
                if code not in HTTP_STATUS or code == "OK":
                    raise ValueError(f"code must be a canonical error code, not {code}")
                status = HTTP_STATUS[code]
            else:
                status = int(payload["status"])
                code = str(payload.get("code") or _CODE_FOR_HTTP.get(status, "UNKNOWN"))
            count = int(payload.get("count", 1))
            if not 400 <= status <= 599:
                raise ValueError("status must be 4xx or 5xx")
            if code not in HTTP_STATUS or code == "OK":
                raise ValueError(f"code must be a canonical error code, not {code}")
            message = str(payload.get("error") or f"Injected fault from the test double: {code}")
            route = payload.get("route")
            self.fault = Fault(status, count, message, route, code, face) if count > 0 else None
            return _control_json(200, {"ok": True})
        if path == "/__double__/delay":
            seconds = float(payload["seconds"])
            raw_count = payload.get("count")
            delay_count = None if raw_count is None else int(raw_count)
            if seconds <= 0 or (delay_count is not None and delay_count <= 0):
                self.delay = None
            else:
                self.delay = Delay(seconds, delay_count, payload.get("route"), _face(payload))
            return _control_json(200, {"ok": True})
        if path == "/__double__/model_state":
            name = str(payload["model"])
            version = int(payload["version"])
            state = str(payload["state"])
            if name not in self.handler.models or version not in self.handler.models[name].versions:
                raise KeyError(f"{name} version {version}")
            if state not in STATES:
                raise ValueError(f"state must be one of {STATES}")
            self.handler.states[(name, version)] = VersionState(
                state, str(payload.get("error_code", "OK")), str(payload.get("error_message", ""))
            )
            return _control_json(200, {"ok": True})
        return _control_json(404, {"error": f"no such knob: POST {path}"})


def create_app(
    *, timeout_ms: int = 30000, enable_cors: bool = False, parent_pid: int | None = None
) -> TFServingDouble:
    return TFServingDouble(timeout_ms=timeout_ms, enable_cors=enable_cors, parent_pid=parent_pid)


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="TensorFlow Serving REST API test double")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8501)
    parser.add_argument("--rest-api-timeout-ms", type=int, default=30000)
    parser.add_argument("--enable-cors", action="store_true")
    parser.add_argument(
        "--grpc-port", type=int, default=None, help="also serve TF Serving's gRPC API here"
    )
    parser.add_argument(
        "--enable-serialization-as-tensor-content",
        action="store_true",
        help="gRPC Predict answers with tensor_content instead of the typed *_val fields",
    )
    parser.add_argument("--log-level", default="warning")
    parser.add_argument(
        "--parent-pid",
        type=int,
        default=None,
        help="exit when this process is no longer the parent",
    )
    args = parser.parse_args(argv)
    app = create_app(
        timeout_ms=args.rest_api_timeout_ms,
        enable_cors=args.enable_cors,
        parent_pid=args.parent_pid,
    )
    if args.grpc_port is not None:
        from tests.doubles import tfserving_grpc  # imports this module; only with --grpc-port

        tfserving_grpc.attach(
            app,
            args.host,
            args.grpc_port,
            tensor_content=args.enable_serialization_as_tensor_content,
        )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=False,
        server_header=False,
        lifespan="on",
        http="h11",
        ws="none",
        timeout_graceful_shutdown=2,
    )


if __name__ == "__main__":
    # Run the copy importable as tests.doubles.tfserving: the gRPC face imports that one, and
    # its TFError and TFServingDouble must be the ones in use.
    from tests.doubles.tfserving import main as canonical_main

    canonical_main()

"""Properties of binary tensor data (``codecs.binary`` framing, ``codecs.raw`` values) and of
request decompression (``edge.encoding``): arbitrary bytes and headers are decoded or refused
with a 4xx, and what is decoded can be sent to every backend wire."""

from __future__ import annotations

import gzip
import zlib

from hypothesis import example, given
from hypothesis import strategies as st

from gateway.codecs import binary, raw, v2
from gateway.codecs.datatypes import DATATYPES
from gateway.edge.encoding import Inflater, coding_of
from gateway.errors import BadRequest
from tests.unit.codecs.properties import examples, refused_or, sendable, to_json, v2_requests

DATATYPE = st.sampled_from(sorted(DATATYPES))


@examples(200)
@given(DATATYPE, st.binary(max_size=64), st.integers(min_value=0, max_value=20))
@example("BYTES", b"\xff\xff\xff\xff", 1)
@example("FP16", b"\x00", 1)
def test_raw_values(datatype: str, data: bytes, count: int) -> None:
    values = refused_or(raw.to_list, datatype, data, count, "x")
    if values is not None:
        assert len(values) == count
        packed = refused_or(raw.from_list, datatype, values, "x")
        if "INT" in datatype or datatype == "BYTES":  # floats: NaN payloads may not survive
            assert packed == data


@examples(100)
@given(st.text(max_size=8) | st.none())
@example("²")  # found: str.isdigit() holds, int() refuses: a ValueError, a 500
@example("٣")
def test_header_length(value: str | None) -> None:
    refused_or(binary.header_length, value, BadRequest)


@examples(250)
@given(v2_requests(binary=True), st.binary(max_size=48), st.integers(-2, 2), st.booleans())
def test_nearly_valid_binary_requests(
    header: object, tail: bytes, shift: int, ascii_only: bool
) -> None:
    head = to_json(header, ascii_only)
    body = head + tail
    request = refused_or(v2.decode_request, body, max(0, len(head) + shift))
    if request is not None:
        sendable(request)


@examples(150)
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=130))
def test_arbitrary_binary_bodies(body: bytes, length: int) -> None:
    request = refused_or(v2.decode_request, body, length)
    if request is not None:
        sendable(request)


# -- Content-Encoding ----------------------------------------------------------------------------


def inflate(coding: str, body: bytes, limit: int, step: int) -> bytes:
    inflater = Inflater(coding, limit)
    out = [inflater.feed(body[i : i + step]) for i in range(0, len(body), step)]
    out.append(inflater.finish())
    return b"".join(out)


@examples(200)
@given(
    st.sampled_from(["gzip", "deflate"]),
    st.binary(max_size=200),
    st.integers(min_value=1, max_value=300),
    st.integers(min_value=1, max_value=64),
)
@example("deflate", b"", 10, 1)
@example("gzip", gzip.compress(b"x" * 1000), 100, 7)
def test_arbitrary_compressed_bodies(coding: str, body: bytes, limit: int, step: int) -> None:
    inflated = refused_or(inflate, coding, body, limit, step)
    assert inflated is None or len(inflated) <= limit


@examples(150)
@given(
    st.sampled_from(["gzip", "deflate", "raw deflate"]),
    st.binary(max_size=400),
    st.integers(min_value=1, max_value=64),
    st.binary(max_size=4),
)
@example("raw deflate", b"", 1, b"")  # found: zlib refused the 2nd byte, too late to fall back
def test_compressed_bodies_inflate_or_are_refused(
    coding: str, payload: bytes, step: int, trailing: bytes
) -> None:
    """What a client compressed inflates to itself, within the limit and past it a 413;
    a stream cut short or with bytes after it inflates or is a 4xx."""
    if coding == "gzip":
        body = gzip.compress(payload)
    elif coding == "deflate":
        body = zlib.compress(payload)
    else:
        deflater = zlib.compressobj(wbits=-zlib.MAX_WBITS)
        body = deflater.compress(payload) + deflater.flush()
    wire = "gzip" if coding == "gzip" else "deflate"
    assert inflate(wire, body, len(payload), step) == payload
    refused_or(inflate, wire, body + trailing, len(payload) + 10, step)
    refused_or(inflate, wire, body[: len(body) // 2], len(payload) + 10, step)
    if payload:
        assert refused_or(inflate, wire, body, len(payload) - 1, step) is None


@examples(100)
@given(st.text(max_size=20) | st.none())
def test_content_encoding_header(value: str | None) -> None:
    refused_or(coding_of, value)

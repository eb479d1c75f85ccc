"""HTTP content codings on the inference endpoints: ``Content-Encoding: gzip|deflate`` request
bodies, inflated with the body limit applied to the *inflated* size (a zip bomb is refused as
soon as it passes the limit, holding at most the limit in memory), and ``Accept-Encoding``
replies. Passthrough routes leave codings as they are.

``deflate`` is the zlib format (RFC 9110 §8.4.1.2, and what tritonclient sends); a raw deflate
stream, which some clients send instead, is accepted too.
"""

from __future__ import annotations

import zlib
from typing import Final

from gateway.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

CODINGS: Final = ("gzip", "deflate")
COMPRESS_FROM: Final = 1024  # replies smaller than this are sent as they are
_WBITS: Final = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_STEP: Final = 64 * 1024


def coding_of(header: str | None) -> str | None:
    """The request's content coding (None for identity); 415 for one not supported."""
    if header is None:
        return None
    codings = [c.strip().lower() for c in header.split(",") if c.strip()]
    codings = [c for c in codings if c != "identity"]
    if not codings:
        return None
    if len(codings) > 1 or codings[0] not in CODINGS:
        raise UnsupportedMediaType(
            f"Content-Encoding {header!r} is not supported: use gzip, deflate or identity"
        )
    return codings[0]


class Inflater:
    """Inflates a body chunk by chunk, never holding more than ``limit`` inflated bytes."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.size = 0
        self._raw_fallback = coding == "deflate"
        self._seen = bytearray()  # the body so far, while it may still turn out to be raw deflate
        self._inflater = zlib.decompressobj(_WBITS[coding])

    def feed(self, chunk: bytes) -> bytes:
        out: list[bytes] = []
        data = chunk
        if self._raw_fallback:
            # zlib may take the first bytes without complaint and refuse the stream only a
            # chunk later (a 1-byte chunk cannot fail the header check): kept until the
            # first inflated byte settles the format, to start again from them as raw deflate
            self._seen += chunk
        while data:
            room = self.limit - self.size + 1  # one byte past the limit proves it is over
            try:
                piece = self._inflater.decompress(data, min(room, _STEP))
            except zlib.error as exc:
                if self._raw_fallback and self.size == 0:
                    self._raw_fallback = False
                    self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate
                    data, self._seen = bytes(self._seen), bytearray()
                    continue
                raise BadRequest(f"the {self.coding} body does not inflate: {exc}") from exc
            if piece:
                self._raw_fallback, self._seen = False, bytearray()
            self.size += len(piece)
            if self.size > self.limit:
                raise PayloadTooLarge(
                    f"the body inflates to more than the limit of {self.limit} bytes"
                )
            out.append(piece)
            data = self._inflater.unconsumed_tail
        return b"".join(out)

    def finish(self) -> bytes:
        if not self._inflater.eof:
            raise BadRequest(f"the {self.coding} body is cut short")
        return b""


def accepted(header: str | None) -> str | None:
    """The coding to answer in, by the client's ``Accept-Encoding`` (q-values honoured;
    gzip preferred on a tie); None for identity."""
    if not header:
        return None
    best, best_q = None, 0.0
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        q = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if name in CODINGS and q > best_q:
            best, best_q = name, q
    return best


def compress(body: bytes, coding: str) -> bytes:
    if coding == "gzip":
        deflater = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    else:
        deflater = zlib.compressobj(6)
    return deflater.compress(body) + deflater.flush()

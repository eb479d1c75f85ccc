"""A cache entry: the answer's tensors, when it was stored, and the headers kept with it.

Stored as one line of JSON (time, headers) and the answer in KServe v2 JSON, protocol-neutral
tensors that every frontend encodes in its own format. The caller-specific ``id`` is not
stored. An entry stays readable after its TTL so it can answer while the backend fails
(``stale_if_error``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.codecs import v2
from gateway.codecs.tensors import InferenceResponse
from gateway.errors import GatewayError


@dataclass(frozen=True, slots=True)
class Entry:
    stored_at: float
    headers: dict[str, str]
    response: InferenceResponse

    def encode(self, model: str, version: str) -> bytes:
        head = {"t": self.stored_at, "h": self.headers}
        anonymous = dataclasses.replace(self.response, id=None)
        return orjson.dumps(head) + b"\n" + v2.encode_response(anonymous, model, version)

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        head, sep, body = raw.partition(b"\n")
        try:
            meta: dict[str, Any] = orjson.loads(head) if sep else {}
            stored_at, headers = float(meta["t"]), dict(meta["h"])
            response = v2.decode_response(body)
        except (ValueError, KeyError, TypeError, GatewayError):
            return None  # written by something else (another version): a miss
        return cls(stored_at, headers, response)

    def age(self) -> float:
        return max(0.0, time.time() - self.stored_at)

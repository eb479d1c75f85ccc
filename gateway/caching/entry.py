"""A cache entry: the answer, when it was stored, and the headers kept with it.

Stored as one line of JSON (time, headers) and the answer in KServe v2 JSON for the model and
version of its key, without the caller-specific ``id``: protocol-neutral tensors that every
frontend encodes in its own format (a v2 caller without an ``id`` gets these very bytes). An
entry stays readable after its TTL so it can answer while the backend fails
(``stale_if_error``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.codecs import v2
from gateway.codecs.tensors import InferenceResponse


@dataclass(frozen=True, slots=True)
class Entry:
    stored_at: float
    headers: dict[str, str]
    body: bytes  # the answer: KServe v2 JSON, no id

    @classmethod
    def of(
        cls, response: InferenceResponse, model: str, version: str, headers: dict[str, str]
    ) -> Entry:
        body = v2.encode_response(response, model, version, server_id=False)
        return cls(time.time(), headers, body)

    def encode(self) -> bytes:
        return b"\n".join((orjson.dumps({"t": self.stored_at, "h": self.headers}), self.body))

    @classmethod
    def decode(cls, raw: bytes) -> Entry | None:
        head, sep, body = raw.partition(b"\n")
        if not body.startswith(b'{"model_name":'):
            return None  # not an answer this version wrote: a miss
        try:
            meta: dict[str, Any] = orjson.loads(head) if sep else {}
            return cls(float(meta["t"]), dict(meta["h"]), body)
        except (ValueError, KeyError, TypeError):  # orjson.JSONDecodeError is a ValueError
            return None  # written by something else: a miss

    def age(self) -> float:
        return max(0.0, time.time() - self.stored_at)

"""The JSON round trip every store record shares."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Self

import orjson


class Record:
    """JSON round trip for the record dataclasses (lists come back as tuples). Reading ignores
    fields it does not know and fills missing ones with their defaults, so gateways of two
    versions can share one Redis during a rolling upgrade."""

    __slots__ = ()

    def to_json(self) -> str:
        return orjson.dumps(asdict(self)).decode()  # type: ignore[call-overload]

    @classmethod
    def from_json(cls, text: str | bytes) -> Self:
        data = orjson.loads(text)
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in known}
        return cls(**values)

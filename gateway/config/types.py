"""The building blocks of routes.yaml's schema: durations, shares, URLs (http(s), and gRPC's
``grpc://host:port``), the strict base, and one error holding many problems (each at its own
path, hence line)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import ErrorDetails, InitErrorDetails

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> Any:
    """``"250ms"``, ``"2s"``, ``"5m"``, ``"1h"`` or a number of seconds → seconds (float)."""
    if isinstance(value, bool):
        raise ValueError("a duration must be like '250ms', '2s', '5m' or a number of seconds")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value)
        if match:
            return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    raise ValueError(f"bad duration {value!r}: use e.g. '250ms', '2s', '5m', '1h'")


def parse_ratio(value: Any) -> Any:
    """``"20%"`` or ``0.2`` → 0.2."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100.0
        except ValueError:
            raise ValueError(f"bad percentage {value!r}") from None
    return value


Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    Field(gt=0),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*(ms|s|m|h|d)\s*$"},
                {"type": "number", "exclusiveMinimum": 0},
            ],
            "description": "A duration: '250ms', '2s', '5m', '1h', '30d', or seconds.",
        }
    ),
]
Ratio = Annotated[
    float,
    BeforeValidator(parse_ratio),
    Field(ge=0, le=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": r"^\d+(\.\d+)?%$"},
                {"type": "number", "minimum": 0, "maximum": 1},
            ]
        }
    ),
]
_URL = re.compile(r"^https?://[^/\s]+(/[^\s]*)?$")
# A gRPC replica: a host name, IPv4 or [IPv6] address and a port; no path (the RPC is the path).
# grpcs:// is the same over TLS.
GRPC_URL = re.compile(r"^grpcs?://(\[[0-9A-Fa-f:.]+\]|[^/\s:\[\]@]+):(\d{1,5})/?$")


def check_url(url: str) -> str:
    if not _URL.match(url):
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url.rstrip("/")


def check_grpc_url(url: str) -> str:
    """``grpc://host:port`` or ``grpcs://host:port`` (a trailing ``/`` dropped), or ValueError
    saying what is wrong."""
    match = GRPC_URL.match(url)
    if match is None or not 0 < int(match.group(2)) < 65536:
        raise ValueError(f"not a grpc://host:port address: {url!r}")
    return url.rstrip("/")


def grpc_target(url: str) -> str:
    """``grpc://host:port`` or ``grpcs://host:port`` → ``host:port``, the target a gRPC
    channel dials."""
    return url.split("://", 1)[1]


# Checked one by one, so an error names the list item (and its line), not the whole list.
URL_PATTERN = _URL.pattern
URL = Annotated[
    str, AfterValidator(check_url), WithJsonSchema({"type": "string", "pattern": URL_PATTERN})
]


class Strict(BaseModel):
    """Unknown keys are errors; values are frozen once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# A path below the model being checked, and what is wrong there.
Problem = tuple[tuple[str | int, ...], str]


def problems_error(
    title: str, problems: Sequence[Problem], errors: Sequence[ErrorDetails] = ()
) -> ValidationError:
    """One error holding pydantic's own ``errors`` and our cross-field ``problems``, each at its
    own path (hence line), so one ``gateway check`` lists every mistake in the file."""
    details = [
        InitErrorDetails(type=e["type"], loc=e["loc"], input=e["input"], ctx=e.get("ctx", {}))
        for e in errors
    ]
    details += [
        InitErrorDetails(type="value_error", loc=loc, input=None, ctx={"error": ValueError(msg)})
        for loc, msg in problems
    ]
    return ValidationError.from_exception_data(title, details)

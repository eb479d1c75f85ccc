"""What adapters and the pool exchange: a model version as its server knows it, a buffered
upstream reply, and how a model server's error replies map to the gateway's errors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from gateway.codecs.tensors import Signature
from gateway.errors import BadGateway, UpstreamError, UpstreamTimeout


@dataclass(frozen=True, slots=True)
class Target:
    """One model version as its backend knows it."""

    model: str  # logical (public) name
    version: str  # logical (public) version
    name: str  # backend-native model name
    native_version: str | None  # backend-native version; None means the server's default
    declared: Signature | None = None  # inputs/outputs declared in routes.yaml
    # (name, native_version): made once, not at each use (a call, a health round, a reload
    # comparing 10,000 targets); the health checks' tables hold this very tuple
    key: tuple[str, str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", (self.name, self.native_version))


class ReplyHead(Protocol):
    """A reply read whole, as the h1 client gives it (``h1.connection.Reply``)."""

    status: int
    body: bytes

    @property
    def headers(self) -> Mapping[str, str]: ...

    def header(self, name: bytes) -> str | None: ...


class UpstreamReply:
    """A buffered reply of a model server and the time it took. Its headers are decoded only
    when read (``headers``); :meth:`header` reads one without the others."""

    __slots__ = ("_reply", "body", "elapsed", "status")

    def __init__(self, reply: ReplyHead, elapsed: float) -> None:
        self._reply = reply
        self.status = reply.status
        self.body = reply.body
        self.elapsed = elapsed

    @property
    def headers(self) -> Mapping[str, str]:
        return self._reply.headers

    def header(self, name: bytes) -> str | None:
        """The first value of the header ``name`` (in lower case), or None."""
        return self._reply.header(name)

    def json(self) -> Any:
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError:
            return None


def upstream_message(reply: UpstreamReply) -> str:
    """The error text a model server put in its reply, whatever its shape."""
    obj = reply.json()
    if isinstance(obj, dict):
        for key in ("error", "message", "detail"):
            if key in obj:
                value = obj[key]
                return value if isinstance(value, str) else orjson.dumps(value).decode()[:500]
    text = reply.body.decode("utf-8", "replace").strip()
    return text[:500] or f"HTTP {reply.status}"


def raise_for_status(reply: UpstreamReply) -> None:
    """Map a model server's error reply to the gateway's, keeping the server's message.

    4xx keep their status (the server judged the input); 503 and 504 keep theirs; any other
    5xx becomes 502, since the model server, not the gateway, failed.
    """
    if reply.status < 400:
        return
    message = f"the model server answered {reply.status}: {upstream_message(reply)}"
    if reply.status == 504:
        raise UpstreamTimeout(message)
    if reply.status < 500 or reply.status == 503:
        raise UpstreamError(message, status=reply.status)
    raise BadGateway(message)


def require_json_object(reply: UpstreamReply, what: str) -> dict[str, Any]:
    obj = reply.json()
    if not isinstance(obj, dict):
        raise BadGateway(f"the model server's {what} reply is not a JSON object")
    return obj

"""A read-only, case-insensitive, multi-valued view of request headers or gRPC metadata.

Every frontend hands the chain the same view: ASGI's ``(name, value)`` byte pairs (names in
lower case) or gRPC metadata turned into them. A header that may appear once and appears twice
is refused (:meth:`Headers.one`), never silently resolved to its first value: a proxy in front
that reads the last one would otherwise disagree with us about who is calling.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gateway.errors import BadRequest


class Headers:
    """Request headers; names are matched in lower case, values are latin-1 text."""

    __slots__ = ("raw",)

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.raw = raw  # as the frontend received them: lower-case names (ASGI, gRPC)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """From text pairs in any case (gRPC metadata, tests)."""
        return cls([(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs])

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (for headers where repeats are harmless)."""
        wanted = name.lower().encode("latin-1")
        for key, value in self.raw:
            if key == wanted:
                return value.decode("latin-1")
        return default

    def one(self, name: str) -> str | None:
        """The value of a header that may appear at most once; twice is a 400."""
        wanted = name.lower().encode("latin-1")
        found: bytes | None = None
        for key, value in self.raw:
            if key == wanted:
                if found is not None:
                    raise BadRequest(f"the {name} header appears more than once")
                found = value
        return found.decode("latin-1") if found is not None else None

    def getall(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k == wanted]

    def items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        wanted = name.lower().encode("latin-1")
        return any(key == wanted for key, _ in self.raw)

    def __iter__(self) -> Iterator[str]:
        return (k.decode("latin-1") for k, _ in self.raw)

    def __repr__(self) -> str:
        return f"Headers({[k.decode('latin-1') for k, _ in self.raw]})"  # names only: no secrets

"""A read-only, case-insensitive, multi-valued view of request headers or gRPC metadata.

Every frontend hands the chain the same view: ASGI's ``(name, value)`` byte pairs (names in
lower case) or gRPC metadata turned into them. A header that may appear once and appears twice
is refused (:meth:`Headers.one`), never silently resolved to its first value: a proxy in front
that reads the last one would otherwise disagree with us about who is calling.

The pairs are indexed by name on the first lookup (one pass over them per request, however
many steps ask); the hot steps ask by wire name (lower-case bytes: :meth:`Headers.value`,
:meth:`Headers.first`), with no name to lower and encode per request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from gateway.errors import BadRequest


class Headers:
    """Request headers; names are matched in lower case, values are latin-1 text."""

    __slots__ = ("_index", "_repeated", "raw")

    def __init__(self, raw: Sequence[tuple[bytes, bytes]] = ()) -> None:
        self.raw = raw  # as the frontend received them: lower-case names (ASGI, gRPC)
        self._index: dict[bytes, bytes] | None = None  # name -> its first value
        self._repeated: set[bytes] | None = None  # the names that appear more than once

    def _indexed(self) -> dict[bytes, bytes]:
        index: dict[bytes, bytes] = {}
        for key, value in self.raw:
            if key in index:
                if self._repeated is None:
                    self._repeated = set()
                self._repeated.add(key)
            else:
                index[key] = value
        self._index = index
        return index

    def value(self, wanted: bytes, name: str | None = None) -> bytes | None:
        """:meth:`one` by wire name (lower-case bytes), undecoded; twice is a 400 (naming the
        header ``name``, by default its wire name)."""
        index = self._index
        if index is None:
            index = self._indexed()
        found = index.get(wanted)
        if found is not None and self._repeated is not None and wanted in self._repeated:
            shown = name if name is not None else wanted.decode("latin-1")
            raise BadRequest(f"the {shown} header appears more than once")
        return found

    def first(self, wanted: bytes) -> bytes | None:
        """:meth:`get` by wire name (lower-case bytes), undecoded."""
        index = self._index
        if index is None:
            index = self._indexed()
        return index.get(wanted)

    @classmethod
    def of(cls, pairs: Iterable[tuple[str, str]]) -> Headers:
        """From text pairs in any case (gRPC metadata, tests)."""
        return cls([(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in pairs])

    def last(self, wanted: bytes) -> bytes | None:
        """The last value of a wire name (lower-case bytes), undecoded."""
        index = self._index
        if index is None:
            index = self._indexed()
        if self._repeated is not None and wanted in self._repeated:
            return next(v for k, v in reversed(self.raw) if k == wanted)
        return index.get(wanted)

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` (for headers where repeats are harmless)."""
        found = self.first(name.lower().encode("latin-1"))
        return found.decode("latin-1") if found is not None else default

    def one(self, name: str) -> str | None:
        """The value of a header that may appear at most once; twice is a 400."""
        found = self.value(name.lower().encode("latin-1"), name)
        return found.decode("latin-1") if found is not None else None

    def getall(self, name: str) -> list[str]:
        wanted = name.lower().encode("latin-1")
        return [v.decode("latin-1") for k, v in self.raw if k == wanted]

    def items(self) -> list[tuple[str, str]]:
        return [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.raw]

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        return self.first(name.lower().encode("latin-1")) is not None

    def __iter__(self) -> Iterator[str]:
        return (k.decode("latin-1") for k, _ in self.raw)

    def __repr__(self) -> str:
        return f"Headers({[k.decode('latin-1') for k, _ in self.raw]})"  # names only: no secrets

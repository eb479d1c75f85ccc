"""Pages of the admin API's lists by name (models, rollouts, the backends' status, shadow
traffic), in the scheme of ``/jobs`` and ``/batches``: ``?limit=`` items at most, from after
``?cursor=``, and ``next_cursor`` in the answer (null on the last page: pass it back as
``cursor`` for the next one).

Items come in name order and the cursor is the last name of the page, so a page never
repeats or skips an item that stayed while the list changed between two calls (a reload that
adds or removes models), and a cursor whose item is gone still works. The default page is
large (:data:`DEFAULT_LIMIT`): a client written before pagination, which reads one answer as
the whole list, still gets the whole list while it is that small.
"""

from __future__ import annotations

import weakref
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final

from starlette.requests import Request

from gateway.admin.access import query_limit

DEFAULT_LIMIT: Final = 1000
MAX_LIMIT: Final = 10_000


@dataclass(frozen=True, slots=True)
class Page:
    """The names of one page, and the cursor of the next (None: this is the last)."""

    names: Sequence[str]
    next_cursor: str | None


def page(request: Request, names: Sequence[str]) -> Page:
    """The page of ``names`` (sorted, no duplicates) that ``?limit=`` and ``?cursor=`` ask
    for; 400 for a limit that is not a whole number from 1 to :data:`MAX_LIMIT`."""
    limit = query_limit(request, DEFAULT_LIMIT, MAX_LIMIT)
    cursor = request.query_params.get("cursor") or None
    return cut(names, limit, cursor)


def cut(names: Sequence[str], limit: int, cursor: str | None) -> Page:
    """At most ``limit`` of ``names`` (sorted, no duplicates) after ``cursor``."""
    start = bisect_right(names, cursor) if cursor is not None else 0
    chosen = names[start : start + limit]
    more = start + limit < len(names)
    return Page(chosen, chosen[-1] if more and chosen else None)


class SortedNames:
    """Names sorted once per owner that never changes them (a route table's models or
    backends, the runtime replaced whole on reload), not once per page. The owner is held
    weakly: a replaced route table is not kept alive by this."""

    __slots__ = ("_owner", "_sorted")

    def __init__(self) -> None:
        self._owner: weakref.ref[object] | None = None
        self._sorted: list[str] = []

    def of(self, owner: object, names: Iterable[str]) -> list[str]:
        """``names`` of ``owner``, sorted (again only when the owner is another one)."""
        if self._owner is None or self._owner() is not owner:
            self._sorted, self._owner = sorted(names), weakref.ref(owner)
        return self._sorted

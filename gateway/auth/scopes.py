"""Scopes: ``action:model`` pairs (``predict:fraud``), globs allowed on either side.

``*`` grants everything, ``predict:*`` every model's predictions, ``*:fraud`` every action on
one model. ``admin`` is the admin API's scope. Actions: ``predict`` (inference), ``metadata``
(status, metadata, readiness), ``pin`` (choosing a version explicitly), ``passthrough``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from fnmatch import fnmatchcase


def grants(granted: str, required: str) -> bool:
    """Does one granted scope (maybe a glob) cover one required scope?"""
    if granted == "*" or granted == required:
        return True
    return fnmatchcase(required, granted)


def allowed(granted: Iterable[str], required: str) -> bool:
    if isinstance(granted, frozenset | set) and (required in granted or "*" in granted):
        return True  # the common case, without a glob match per granted scope
    return any(grants(g, required) for g in granted)


def narrow(scopes: Iterable[str], ceiling: Iterable[str]) -> frozenset[str]:
    """Keep the ``scopes`` a ``ceiling`` (a tenant's scopes) allows; an empty ceiling allows all.

    A scope survives when the ceiling covers it, or when it covers part of the ceiling (then the
    ceiling's narrower scopes are what it really grants).
    """
    return _narrow(frozenset(scopes), tuple(ceiling))


@functools.lru_cache(maxsize=4096)
def _narrow(scopes: frozenset[str], ceiling: tuple[str, ...]) -> frozenset[str]:
    """:func:`narrow`, memoised: a key and its tenant narrow the same way on every request."""
    if not ceiling:
        return scopes
    kept: set[str] = set()
    for scope in scopes:
        if allowed(ceiling, scope):
            kept.add(scope)
        else:
            kept.update(c for c in ceiling if grants(scope, c))
    return frozenset(kept)


def model_allowed(patterns: Iterable[str], model: str) -> bool:
    patterns = tuple(patterns)
    return not patterns or any(fnmatchcase(model, p) for p in patterns)

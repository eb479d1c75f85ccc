"""Scopes: ``action:model`` pairs (``predict:fraud``), globs allowed on either side.

``*`` grants everything, ``predict:*`` every model's predictions, ``*:fraud`` every action on
one model. ``admin`` is the admin API's scope. Actions: ``predict`` (inference), ``metadata``
(status, metadata, readiness), ``pin`` (choosing a version explicitly), ``passthrough``.
"""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase


def grants(granted: str, required: str) -> bool:
    """Does one granted scope (maybe a glob) cover one required scope?"""
    if granted == "*" or granted == required:
        return True
    return fnmatchcase(required, granted)


def allowed(granted: Iterable[str], required: str) -> bool:
    return any(grants(g, required) for g in granted)


def narrow(scopes: Iterable[str], ceiling: Iterable[str]) -> frozenset[str]:
    """Keep the ``scopes`` a ``ceiling`` (a tenant's scopes) allows; an empty ceiling allows all.

    A scope survives when the ceiling covers it, or when it covers part of the ceiling (then the
    ceiling's narrower scopes are what it really grants).
    """
    ceiling = tuple(ceiling)
    if not ceiling:
        return frozenset(scopes)
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

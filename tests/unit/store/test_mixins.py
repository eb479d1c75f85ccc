"""The stores are built from mixins (limits, rollouts, jobs, webhooks), one module each: no two
may use the same private name, or one would silently replace the other's state or script (a
job's ``_finish`` Lua script once shadowed the webhook queue's ``_finish`` method)."""

from __future__ import annotations

import ast
import inspect
from itertools import combinations

import pytest

from gateway.store.memory.store import MemoryStore
from gateway.store.redis.store import RedisStore


def names(cls: type) -> set[str]:
    """Private attributes a class assigns on ``self`` and the private methods it defines."""
    tree = ast.parse(inspect.getsource(inspect.getmodule(cls)))  # type: ignore[arg-type]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.name == cls.__name__:
            for inner in ast.walk(node):
                if isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                    if isinstance(inner.value, ast.Name) and inner.value.id == "self":
                        found.add(inner.attr)
                elif isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add(inner.name)
    return {n for n in found if n.startswith("_") and not n.startswith("__")}


@pytest.mark.parametrize("store", [MemoryStore, RedisStore])
def test_no_two_mixins_share_a_private_name(store: type) -> None:
    mixins = [c for c in store.__mro__[1:] if c.__module__.startswith("gateway.store.")]
    assert len(mixins) >= 3
    for a, b in combinations(mixins, 2):
        shared = names(a) & names(b)
        assert not shared, f"{a.__name__} and {b.__name__} both use {sorted(shared)}"

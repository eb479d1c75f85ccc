"""The import directions of ARCHITECTURE.md, pinned so the house stays navigable."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def modules(folder: str) -> list[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


@pytest.mark.parametrize("path", modules("policies"), ids=str)
def test_policies_import_only_the_chain_errors_and_store(path: Path) -> None:
    # Each policy drives the machinery of its concern (gateway.auth, .limits, .caching) and
    # stays thin; policies never import each other.
    allowed = (
        "gateway.chain",
        "gateway.errors",
        "gateway.store",
        "gateway.inference",
        "gateway.auth",  # credentials, for the auth policy
        "gateway.limits",  # which limits apply and the failure mode, for the rate-limit policy
        "gateway.caching",  # keys, entries and collapsing, for the cache policy
        "gateway.traffic",  # the split, stickiness and health, for the traffic policy
        "gateway.shadow",  # the shadow mirror, fed by the traffic policy
    )
    ours = {m for m in imports(path) if m.split(".")[0] in {"gateway", "policies"}}
    if path.name == "__init__.py":  # the registry names every policy
        ours = {m for m in ours if not m.startswith("policies.")}
    assert all(m.startswith(allowed) for m in ours), ours


@pytest.mark.parametrize("path", modules("gateway/backends"), ids=str)
def test_backends_know_nothing_of_starlette_or_policies(path: Path) -> None:
    found = {m for m in imports(path) if m.split(".")[0] in {"starlette", "policies"}}
    assert not found


@pytest.mark.parametrize("path", modules("gateway"), ids=str)
def test_only_the_app_imports_policies_and_nothing_imports_tests(path: Path) -> None:
    found = imports(path)
    assert not any(m.split(".")[0] == "tests" for m in found)
    if path.name != "app.py":
        assert not any(m.split(".")[0] == "policies" for m in found)


def test_modules_stay_small() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in modules("gateway") + modules("policies")}
    too_big = {str(p.relative_to(ROOT)): n for p, n in sizes.items() if n > 500}
    assert not too_big

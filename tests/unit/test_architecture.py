"""The import directions of ARCHITECTURE.md, pinned so the house stays navigable."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import REPO

OURS = ("gateway", "policies")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (REPO / folder).rglob("*.py"))


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """Every module ``path`` imports, type-only imports (``if TYPE_CHECKING:``) included."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    nodes: Iterator[ast.AST] = iter(tree.body) if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            # ``from gateway.codecs import v1`` imports the module gateway.codecs.v1
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def ours(path: Path) -> set[str]:
    known = {module_name(p) for p in modules(*OURS)}
    return {m for m in imports(path) if m in known}


def under(name: str, *packages: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in packages)


FRAMEWORKS = ("starlette", "aiohttp", "grpc", "uvicorn", "httpx", "fastapi")

# A policy imports the chain's contract, the errors, the live route table and its own concept.
POLICY_CONCEPTS = {
    "auth.py": ("gateway.auth",),
    "traffic.py": ("gateway.traffic",),
    "rate_limit.py": ("gateway.limits", "gateway.store"),
    "cache.py": ("gateway.caching",),
    "batch.py": ("gateway.batching",),
}


@pytest.mark.parametrize("name", sorted(POLICY_CONCEPTS))
def test_a_policy_imports_the_contract_and_its_concept_only(name: str) -> None:
    path = REPO / "policies" / name
    allowed = ("gateway.call", "gateway.errors", "gateway.config.live", *POLICY_CONCEPTS[name])
    found = ours(path)
    assert all(under(m, *allowed) for m in found), sorted(found)
    assert not any(m.split(".")[0] in FRAMEWORKS for m in imports(path))


def test_every_policy_module_is_in_the_table_above() -> None:
    policy_modules = {p.name for p in (REPO / "policies").glob("*.py")} - {"__init__.py"}
    assert policy_modules == set(POLICY_CONCEPTS)


CORE = [
    *modules("gateway/backends", "gateway/store", "gateway/codecs", "gateway/auth"),
    *modules("gateway/limits", "gateway/caching", "gateway/traffic", "gateway/telemetry"),
    *modules("gateway/batching"),
    *modules("gateway/config"),
    *(REPO / "gateway" / name for name in ("call.py", "headers.py", "errors.py")),
]


# gRPC *clients* (channels toward the backends, the messages they carry) belong to these; the
# rest of the core knows no grpc at all.
GRPC_CLIENTS = ("gateway.backends", "gateway.codecs")
GRPC_SERVING = ("grpc.server", "grpc.aio.server", "ServicerContext", "add_generic_rpc_handlers")


@pytest.mark.parametrize("path", CORE, ids=lambda p: str(p.relative_to(REPO)))
def test_the_core_knows_no_frontend(path: Path) -> None:
    """Below the frontends nothing knows Starlette, gRPC servers, the edge, the admin API, the
    policies or the composition root: a gRPC frontend runs the same code as HTTP."""
    found = imports(path)
    frameworks = {"starlette", "fastapi", "uvicorn", "grpc_health", "grpc_reflection"}
    if not under(module_name(path), *GRPC_CLIENTS):
        frameworks.add("grpc")
    assert not any(m.split(".")[0] in frameworks for m in found), sorted(found)
    source = path.read_text(encoding="utf-8")
    assert not any(name in source for name in GRPC_SERVING)
    forbidden = ("gateway.edge", "gateway.admin", "gateway.cli", "gateway.app", "gateway.state")
    assert not any(under(m, *forbidden, "policies") for m in found), sorted(found)


@pytest.mark.parametrize("path", modules(*OURS), ids=lambda p: str(p.relative_to(REPO)))
def test_only_the_composition_root_imports_the_app_and_the_policies(path: Path) -> None:
    found = imports(path)
    assert not any(m.split(".")[0] == "tests" for m in found)
    name = module_name(path)
    if not under(name, "gateway.app", "gateway.cli", "gateway.demo"):
        assert "gateway.app" not in found
    if name != "gateway.app" and not name.startswith("policies"):
        assert not any(under(m, "policies") for m in found)


# The exceptions, for start-up time and memory and never for a cycle (the cycle test below sees
# these imports too), each named with what it may defer:
# - the ``gateway`` command imports a subcommand's modules when that subcommand runs, so
#   ``gateway check`` and the admin commands (HTTP calls) start in 0.2 s, not 1.3 s (any module);
# - gRPC is imported where it is configured: the frontends when ``GATEWAY_GRPC_PORT`` is set,
#   the backends' wires when routes.yaml names a ``protocol: grpc`` backend (grpcio costs a
#   worker ~10 MiB);
# - the Redis store is imported when ``GATEWAY_REDIS_URL`` names one (redis-py: ~7 MiB that the
#   embedded default does not pay). tests/system/test_lazy_imports.py checks all three.
ANY = frozenset({"*"})
DEFERRED: dict[str, frozenset[str]] = {
    "gateway/cli/main.py": ANY,
    "gateway/cli/jobs.py": ANY,
    "gateway/app.py": frozenset({"gateway.edge.grpc_frontends"}),
    "gateway/store/open.py": frozenset(
        {"gateway.store.redis.cluster", "gateway.store.redis.store"}
    ),
    "gateway/backends/grpc_wires.py": frozenset(
        {
            "gateway.backends.grpc_pool",
            "gateway.backends.kserve_grpc",
            "gateway.backends.tfserving_grpc",
        }
    ),
}


@pytest.mark.parametrize("path", modules(*OURS), ids=lambda p: str(p.relative_to(REPO)))
def test_no_function_imports_our_modules(path: Path) -> None:
    """Every import of ours is at the top of its module: no import tucked into a function to
    dodge a cycle (the named exceptions of ``DEFERRED`` aside)."""
    deferred = DEFERRED.get(str(path.relative_to(REPO)), frozenset())
    if deferred == ANY:
        return
    at_top = imports(path, top_level_only=True) | _type_checking_imports(path)
    assert ours(path) - deferred <= at_top


def test_the_admin_commands_start_without_the_server() -> None:
    """What ``DEFERRED`` buys: the command's own module imports no server module."""
    found = imports(REPO / "gateway" / "cli" / "main.py", top_level_only=True)
    assert not any(under(m, "gateway.app", "gateway.cli.serve", "gateway.demo") for m in found)


def _type_checking_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in ast.walk(node):
                if isinstance(child, ast.ImportFrom) and child.module:
                    found.add(child.module)
    return found


def test_no_import_cycles_type_only_ones_included() -> None:
    graph = {module_name(p): ours(p) for p in modules(*OURS)}
    assert not _cycles(graph), _cycles(graph)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_modules_stay_small() -> None:
    sizes = {p: len(p.read_text().splitlines()) for p in modules(*OURS)}
    too_big = {str(p.relative_to(REPO)): n for p, n in sizes.items() if n > 500}
    assert not too_big


def test_the_cycle_finder_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


def test_checking_a_file_loads_no_client_or_server_library() -> None:
    """What the specs kept apart from the adapters (``backends.specs``) and the datatypes apart
    from the codecs buy: ``gateway check`` reads and validates routes.yaml with pydantic and
    PyYAML, and none of the libraries that serve or call."""
    code = "import sys, gateway.cli.check; print(*sorted({m.split('.')[0] for m in sys.modules}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = set(done.stdout.split())
    assert {"gateway", "pydantic", "yaml"} <= loaded
    serving = {"aiohttp", "numpy", "grpc", "redis", "uvicorn", "starlette", "httpx", "cryptography"}
    assert not loaded & serving, sorted(loaded & serving)

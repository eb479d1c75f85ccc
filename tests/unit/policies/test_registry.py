"""The policy registry: each call kind's chain is built from ``policies.POLICIES``, in its
order, of the policies whose ``kinds`` include the kind and whose ``build`` finds something to
do; a policy (or a backend kind) added in a test takes part like the built-in ones."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
import yaml

import policies
from gateway.backends.registry import ADAPTERS
from gateway.backends.specs import SPECS
from gateway.config.file import parse_config
from gateway.config.live import Runtime
from gateway.config.model import json_schema
from gateway.errors import ConfigError, Unauthorized
from policies import build_chains
from policies.auth import AuthPolicy
from policies.batch import BatchPolicy
from policies.cache import CachePolicy
from policies.rate_limit import RateLimitPolicy
from policies.traffic import TrafficPolicy
from tests.unit.policies.conftest import MakeRuntime
from tests.unit.policies.support import make_call, toy_routes, value_of
from tests.unit.policies.toys import TOY_HEADER, IdlePolicy, ToySpec, toy_policy

pytestmark = pytest.mark.anyio
MAX_BODY = 1 << 20
LIMITED = "rate_limits: {anonymous: {rate: 1/min, burst: 5}}"
CACHED = "    deterministic: true\n    cache: {ttl: 60s}"


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in headers]


def test_the_registry_is_in_chain_order() -> None:
    assert policies.POLICIES == (  # noqa: SIM300 - the registry is what is under test
        AuthPolicy,
        TrafficPolicy,
        RateLimitPolicy,
        CachePolicy,
        BatchPolicy,
    )


async def test_without_an_auth_section_there_is_no_auth_step(make_runtime: MakeRuntime) -> None:
    garbage = [("X-API-Key", "garbage"), ("Authorization", "Basic Zm9vOmJhcg==")]
    open_table = build_chains(await make_runtime(toy_routes()), MAX_BODY)
    reply = await open_table["infer"](make_call(headers=garbage))
    assert value_of(reply) == 1  # the toy backend "b1" answers its version's number
    guarded = build_chains(await make_runtime(toy_routes(extra="auth: {}")), MAX_BODY)
    with pytest.raises(Unauthorized):
        await guarded["infer"](make_call(headers=garbage))


@pytest.mark.parametrize(
    ("at", "saw"),
    [
        (0, (None, None, None)),  # before traffic: no version yet
        (2, ("1", None, None)),  # after traffic, before the limits and the cache
        (3, ("1", "allowed", None)),  # after the limits, before the cache
        (4, ("1", "allowed", "miss")),  # last: the cache has decided
    ],
    ids=["first", "after-traffic", "after-limits", "last"],
)
async def test_a_registered_policy_runs_where_the_registry_puts_it(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch, at: int, saw: tuple[Any, ...]
) -> None:
    toy = toy_policy()
    registry = list(policies.POLICIES)
    registry.insert(at, toy)
    monkeypatch.setattr(policies, "POLICIES", tuple(registry))
    runtime = await make_runtime(toy_routes(CACHED, extra=LIMITED + "\nauth: {required: false}"))
    chains = build_chains(runtime, MAX_BODY)
    reply = await chains["infer"](make_call(peer="10.0.0.1"))
    assert value_of(reply) == 1
    assert len(toy.made) == 1
    assert toy.made[0].saw == [saw]
    order = names(reply.headers)
    # steps add their headers on the way back: the inner ones first
    assert order.index("cache-status") < order.index("ratelimit") < order.index("x-model-version")
    assert order.count(TOY_HEADER.lower()) == 1
    if at == 4:  # after the cache: nearer the backend, so its header comes first
        assert order.index(TOY_HEADER.lower()) < order.index("cache-status")
        return
    inner = {0: "x-model-version", 2: "ratelimit", 3: "cache-status"}[at]
    assert order.index(inner) < order.index(TOY_HEADER.lower())


async def test_a_policy_joins_the_chains_of_its_kinds_only_built_once(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    toy = toy_policy(frozenset({"infer", "ready"}))
    monkeypatch.setattr(policies, "POLICIES", (*policies.POLICIES, toy))
    chains = build_chains(await make_runtime(toy_routes()), MAX_BODY)
    assert len(toy.made) == 1  # one policy, shared by the chains of its kinds
    infer = await chains["infer"](make_call())
    ready = await chains["ready"](make_call(kind="ready"))
    metadata = await chains["metadata"](make_call(kind="metadata"))
    assert infer.header(TOY_HEADER) == ready.header(TOY_HEADER) == "on"
    assert metadata.header(TOY_HEADER) is None
    assert metadata.info is not None
    assert metadata.info.versions == ("1", "2")
    assert [v for v, _, _ in toy.made[0].saw] == ["1", "1"]


async def test_a_policy_whose_build_finds_nothing_to_do_is_left_out(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(policies, "POLICIES", (*policies.POLICIES, IdlePolicy))
    chains = build_chains(await make_runtime(toy_routes()), MAX_BODY)
    reply = await chains["infer"](make_call())
    assert reply.header(TOY_HEADER) is None
    assert value_of(reply) == 1


async def test_build_chains_reads_the_registry_when_it_runs(
    make_runtime: MakeRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime: Runtime = await make_runtime(toy_routes())
    before = build_chains(runtime, MAX_BODY)
    toy = toy_policy()
    monkeypatch.setattr(policies, "POLICIES", (*policies.POLICIES, toy))
    after = build_chains(runtime, MAX_BODY)
    assert (await before["infer"](make_call())).header(TOY_HEADER) is None
    assert (await after["infer"](make_call())).header(TOY_HEADER) == "on"
    only = build_chains(runtime, MAX_BODY, policies=(TrafficPolicy,))
    reply = await only["infer"](make_call())
    assert reply.header(TOY_HEADER) is None  # the registry given, not the module's
    assert reply.header("X-Model-Version") == "1"


# -- the toy backend kind: one class and one registry line, known to routes.yaml ------------


def toy_file(kind: str) -> str:
    return f"""
backends:
  b: {{kind: {kind}, urls: ["http://b.invalid"], answer: 3.5}}
models:
  m:
    versions:
      "1": {{backend: b}}
"""


def test_routes_yaml_validation_knows_the_toy_kind(toy_kind: None) -> None:
    spec = parse_config(toy_file("toy")).table.backends["b"]
    assert isinstance(spec, ToySpec)
    assert spec.answer == 3.5
    with pytest.raises(ConfigError) as raised:
        parse_config(toy_file("triton"))
    assert [(i.path, i.message) for i in raised.value.issues] == [
        ("backends.b.answer", "unknown key 'answer'")
    ]


def test_an_unregistered_kind_is_refused() -> None:
    assert "toy" not in ADAPTERS
    assert "toy" not in SPECS
    with pytest.raises(ConfigError) as raised:
        parse_config(toy_file("toy"))
    assert [i.path for i in raised.value.issues] == ["backends.b.kind"]
    assert "must be one of" in raised.value.issues[0].message


def test_the_json_schema_knows_the_toy_kind(toy_kind: None) -> None:
    schema = json_schema()
    backend = schema["properties"]["backends"]["additionalProperties"]
    assert "toy" in backend["properties"]["kind"]["enum"]
    assert "answer" in schema["$defs"]["ToySpec"]["properties"]
    jsonschema.validate(yaml.safe_load(toy_file("toy")), schema)
    with pytest.raises(jsonschema.ValidationError, match="answer"):
        jsonschema.validate(yaml.safe_load(toy_file("triton")), schema)


@pytest.mark.parametrize(
    ("model", "extra", "step"),
    [
        pytest.param("", "", False, id="no-limits-no-cache"),
        pytest.param("", LIMITED, True, id="anonymous-limit"),
        pytest.param("", "plans: {gold: {rate: 10/s}}", True, id="plans"),
        pytest.param("    limits: {rate: 10/s}", "", True, id="model-limit"),
        pytest.param(CACHED, "", True, id="cache"),
    ],
)
async def test_a_rate_limit_step_only_where_a_limit_or_a_cache_can_apply(
    make_runtime: MakeRuntime, model: str, extra: str, step: bool
) -> None:
    runtime = await make_runtime(toy_routes(model, extra=extra))
    assert (RateLimitPolicy.build(runtime) is not None) is step

"""A policy and a backend kind added to their registries take part in the running app: one
class and one registry line each (the toy ones of ``tests.unit.policies.toys``)."""

from __future__ import annotations

import pytest

import policies
from gateway.backends.registry import ADAPTERS
from gateway.backends.specs import SPECS
from tests.conftest import StartGateway
from tests.unit.policies.toys import TOY_HEADER, ToyBackend, ToySpec, toy_policy

pytestmark = pytest.mark.anyio

ROUTES = """
backends:
  toys: {kind: toy, urls: ["http://toys.invalid"], answer: 3.5}
models:
  m:
    versions:
      "1": {backend: toys}
"""
BODY = {"id": "r-1", "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}]}


async def test_a_toy_policy_and_a_toy_backend_kind_serve_through_the_app(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SPECS, "toy", ToySpec)
    monkeypatch.setitem(ADAPTERS, "toy", ToyBackend)
    toy = toy_policy()
    monkeypatch.setattr(policies, "POLICIES", (*policies.POLICIES, toy))
    gateway = await start_gateway(ROUTES)
    answer = await gateway.client.post("/v2/models/m/infer", json=BODY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["id"] == "r-1"
    assert body["model_name"] == "m"
    assert body["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [1], "data": [3.5]}]
    assert answer.headers[TOY_HEADER] == "on"
    assert answer.headers["X-Model-Version"] == "1"
    assert len(toy.made) == 1
    assert toy.made[0].saw == [("1", None, None)]
    described = await gateway.client.get("/v2/models/m")
    assert described.status_code == 200, described.text
    assert described.json()["name"] == "m"
    assert TOY_HEADER not in described.headers  # not one of the toy policy's kinds

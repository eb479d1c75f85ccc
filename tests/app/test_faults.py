"""Faults against the TF Serving double: a stopped backend, a slow or failing one. (A killed
replica of a real Triton: ``tests/system/test_faults_triton.py``.)"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import StartGateway
from tests.doubles.plugin import StartTFServing
from tests.support import backend, error_of, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
V1 = {"instances": [[1.0, 2.0, 3.0, 4.0]]}


def routes(*urls: str, **options: Any) -> str:
    """Model ``linear`` (the double's, version 1) on doubles at ``urls``, backend ``options``."""
    linear = model(versions("tfs", "1", name="linear", version=1))
    return routes_yaml({"tfs": backend("tfserving", *urls, **options)}, {"linear": linear})


async def test_a_stopped_backend_answers_503_at_once(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    tfs = start_tfserving()
    gateway = await start_gateway(routes(tfs.url, timeout="60s"))
    assert (await gateway.client.post("/v1/models/linear:predict", json=V1)).status_code == 200
    tfs.stop()
    response = await gateway.client.post("/v1/models/linear:predict", json=V1)
    # Connection refused is not waited out: 503 "no healthy replica", not a 504 after 60 s.
    assert response.status_code == 503
    assert error_of(response)[0] == "no_healthy_replica"


async def test_an_idle_replicas_503_is_retried_on_another(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    replicas = [start_tfserving(), start_tfserving()]
    gateway = await start_gateway(routes(replicas[0].url, replicas[1].url))
    async with httpx.AsyncClient() as knobs:
        for replica in replicas:
            await knobs.post(f"{replica.url}/__double__/fail", json={"status": 503, "count": 1})
    for _ in range(4):
        response = await gateway.client.post("/v1/models/linear:predict", json=V1)
        assert response.status_code == 200, response.text
    async with httpx.AsyncClient() as knobs:
        stats = [(await knobs.get(f"{r.url}/__double__/stats")).json() for r in replicas]
    injected = [s["injected_failures"] for s in stats]
    assert sum(injected) >= 1


async def test_a_slow_backend_hits_the_deadline(
    start_gateway: StartGateway, start_tfserving: StartTFServing
) -> None:
    tfs = start_tfserving()
    gateway = await start_gateway(routes(tfs.url, timeout="300ms"))
    async with httpx.AsyncClient() as knobs:
        await knobs.post(f"{tfs.url}/__double__/delay", json={"seconds": 3, "count": 1})
    response = await gateway.client.post("/v1/models/linear:predict", json=V1)
    assert response.status_code == 504
    assert error_of(response)[0] == "upstream_timeout"
    again = await gateway.client.post("/v1/models/linear:predict", json=V1)
    assert again.status_code == 200

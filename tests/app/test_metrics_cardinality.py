"""``GATEWAY_METRICS_MAX_MODELS`` on a running gateway: past the first models a worker counts,
a model's series are ``model="other", version="other"``, and /metrics still adds up to every
request answered."""

from __future__ import annotations

import pytest

from tests import support
from tests.app.test_metrics import scrape, value
from tests.conftest import StartGateway
from tests.fakes import FakeReplica
from tests.support import INPUT0, V2, model, routes_yaml, versions

pytestmark = pytest.mark.anyio


async def test_models_past_the_cap_are_counted_as_other(
    start_gateway: StartGateway, backend: FakeReplica, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_METRICS_MAX_MODELS", "2")
    on_fake = versions("fake", "1", "2", inputs=[INPUT0])
    names = ["alpha", "beta", "gamma", "delta"]
    text = routes_yaml(
        {"fake": support.backend("kserve", backend.url)},
        {name: model(on_fake, default="1") for name in names},
    )
    gateway = await start_gateway(text)
    sent = {"alpha": 3, "beta": 2, "gamma": 4, "delta": 1}  # in this order: gamma is third
    for name, count in sent.items():
        for i in range(count):
            path = f"/v2/models/{name}/versions/{1 + i % 2}/infer"
            assert (await gateway.client.post(path, json=V2)).status_code == 200
    assert (await gateway.client.post("/v2/models/nope/infer", json=V2)).status_code == 404

    samples = await scrape(gateway.client)
    requests = {
        dict(labels)["model"] for (name, labels) in samples if name == "gateway_requests_total"
    }
    assert requests == {"alpha", "beta", "other", ""}
    assert value(samples, "gateway_requests_total", model="alpha") == 3
    assert value(samples, "gateway_requests_total", model="alpha", version="2") == 1
    assert value(samples, "gateway_requests_total", model="beta") == 2
    assert value(samples, "gateway_requests_total", model="other", version="other") == 5
    assert value(samples, "gateway_requests_total", model="") == 1  # the unknown name
    assert value(samples, "gateway_requests_total") == 11
    assert value(samples, "gateway_upstream_duration_seconds_count", model="other") == 5
    assert value(samples, "gateway_upstream_duration_seconds_count") == 10
    for name in ("gamma", "delta"):
        assert not any(name in str(labels) for (_, labels) in samples)

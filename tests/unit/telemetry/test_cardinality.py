"""The bounded model label (``GATEWAY_METRICS_MAX_MODELS``): the first models a worker sees
keep their labels, the rest fold into ``other``, and every total stays exact."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from gateway.batching.metrics import BatchMetrics
from gateway.config.model import RouteTable
from gateway.jobs.metrics import JobMetrics
from gateway.store import MemoryStore
from gateway.telemetry.cardinality import OTHER, LabelCap, ModelLabels
from gateway.telemetry.metrics import RequestMetrics
from gateway.traffic.rollout import RolloutController
from gateway.traffic.shadow import ShadowMetrics
from tests import support


def samples(registry: CollectorRegistry, name: str) -> dict[frozenset[tuple[str, str]], float]:
    found: dict[frozenset[tuple[str, str]], float] = {}
    for metric in registry.collect():
        for sample in metric.samples:
            if sample.name == name:
                labels: dict[str, Any] = sample.labels
                found[frozenset(labels.items())] = sample.value
    return found


def by(registry: CollectorRegistry, name: str, *keys: str) -> Counter[tuple[str, ...]]:
    """``name``'s values summed by the labels ``keys``."""
    summed: Counter[tuple[str, ...]] = Counter()
    for labels, value in samples(registry, name).items():
        found = dict(labels)
        summed[tuple(found[k] for k in keys)] += int(value)
    return summed


def test_the_first_values_keep_their_label_for_good_the_rest_are_other() -> None:
    cap = LabelCap(2)
    labels = [cap.label(v) for v in ("a", "b", "c", "a", "d", "b")]
    assert labels == ["a", "b", OTHER, "a", OTHER, "b"]
    assert cap.kept == 2
    assert [LabelCap(0).label(v) for v in ("a", "")] == [OTHER, OTHER]


def test_no_model_is_a_label_of_its_own_and_takes_no_place() -> None:
    models = ModelLabels(1)
    assert models.pair("", "") == ("", "")
    assert models.pair("fraud", "2") == ("fraud", "2")
    assert models.pair("churn", "1") == (OTHER, OTHER)  # the version folds with its model
    assert models.pair("fraud", "3") == ("fraud", "3")
    assert models.pair("", "") == ("", "")
    assert models.kept == 1


def test_requests_past_the_cap_fold_into_other_and_the_totals_stay_exact() -> None:
    registry = CollectorRegistry()
    metrics = RequestMetrics(registry, ModelLabels(3))
    sent: Counter[tuple[str, str, int]] = Counter()
    for i in range(2_000):
        model, version, status = f"m{i % 50:02d}", str(1 + i % 2), (200, 200, 404, 503)[i % 4]
        metrics.observe(model, version, status, "up", 0.002, 0.001)
        sent[(model, version, status)] += 1
    metrics.observe("", "", 401, "", 0.0001, 0.0)
    requests = by(registry, "gateway_requests_total", "model", "version")
    kept = {"m00", "m01", "m02"}  # the first three seen
    assert {model for model, _ in requests} == kept | {OTHER, ""}
    assert {version for model, version in requests if model == OTHER} == {OTHER}
    for model in kept:
        for version in ("1", "2"):
            wanted = sum(n for (m, v, _), n in sent.items() if (m, v) == (model, version))
            assert requests[(model, version)] == wanted
    folded = sum(n for (m, _, _), n in sent.items() if m not in kept)
    assert requests[(OTHER, OTHER)] == folded
    assert sum(requests.values()) == 2_001
    classes = by(registry, "gateway_requests_total", "status_class")
    assert classes == {("2xx",): 1_000, ("4xx",): 501, ("5xx",): 500}
    for histogram in ("gateway_request_duration_seconds", "gateway_overhead_duration_seconds"):
        counts = by(registry, f"{histogram}_count", "model")
        assert set(counts) == {(m,) for m in kept | {OTHER, ""}}
        assert sum(counts.values()) == 2_001
    upstream = by(registry, "gateway_upstream_duration_seconds_count", "model")
    assert upstream[(OTHER,)] == folded
    assert sum(upstream.values()) == 2_000  # the 401 never reached a model server


def test_every_metric_with_a_model_label_shares_the_one_decision() -> None:
    registry = CollectorRegistry()
    models = ModelLabels(1)
    requests = RequestMetrics(registry, models)
    batches, jobs = BatchMetrics(registry, models), JobMetrics(registry, models)
    shadow = ShadowMetrics(registry, models)
    requests.observe("first", "1", 200, "up", 0.01, 0.005)
    for name in ("first", "second", "third"):
        batches.bind(name, "1").size.observe(4)
        jobs.run.labels(jobs.model(name)).observe(0.5)
        shadow.dropped.labels(models.label(name)).inc()
    batch_sizes = by(registry, "gateway_batch_size_count", "model", "version")
    assert batch_sizes == {("first", "1"): 1, (OTHER, OTHER): 2}
    assert by(registry, "gateway_job_run_seconds_count", "model") == {("first",): 1, (OTHER,): 2}
    assert by(registry, "gateway_shadow_dropped_total", "model") == {("first",): 1, (OTHER,): 2}


@pytest.mark.parametrize("cap", [0, 1, 5])
def test_queued_jobs_past_the_cap_are_added_up_under_other(cap: int) -> None:
    registry = CollectorRegistry()
    jobs = JobMetrics(registry, ModelLabels(cap))
    depth = {"a": 3, "b": 4, "c": 5}
    jobs.sample_depth(depth)
    jobs.sample_depth(depth)  # sampled again: set, not added
    queued = by(registry, "gateway_jobs_queued", "model")
    assert sum(queued.values()) == 12
    assert len(queued) == min(cap, 3) + (1 if cap < 3 else 0)
    if cap < 3:
        assert queued[(OTHER,)] == sum(list(depth.values())[cap:])


@pytest.mark.anyio
async def test_a_rollout_past_the_cap_counts_its_transitions_as_other_without_gauges() -> None:
    rollout = {"canary": "2", "steps": [10, 100], "interval": "1h"}
    rolled = support.model(support.versions("b", "1", "2"), default="1", rollout=rollout)
    backends = {"b": support.backend("kserve", "http://127.0.0.1:9")}
    text = support.routes_yaml(backends, {"a": rolled, "z": rolled})
    table = RouteTable.model_validate(yaml.safe_load(text))
    registry = CollectorRegistry()
    controller = RolloutController(MemoryStore(), registry, models=ModelLabels(1))
    controller.follow(lambda: table)
    await controller.tick()  # both start: "a" first (models are driven in name order)
    assert controller.weights("z") == {"1": 90, "2": 10}  # the cap is the metrics' only
    assert by(registry, "gateway_rollout_transitions_total", "model", "to") == {
        ("a", "running"): 1,
        (OTHER, "running"): 1,
    }
    assert by(registry, "gateway_rollout_step", "model") == {("a",): 0}
    weights = by(registry, "gateway_rollout_weight", "model", "version")
    assert weights == {("a", "1"): 90, ("a", "2"): 10}

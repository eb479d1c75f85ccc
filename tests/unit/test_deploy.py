"""Static checks of the container image and deployment files (no Docker or cluster needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.cli.main import main
from tests.support import REPO

DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
YAML_FILES = sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def _docs(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _one(path: Path, kind: str) -> dict[str, Any]:
    found = [doc for doc in _docs(path) if doc.get("kind") == kind]
    assert len(found) == 1, f"{path.name}: expected one {kind}, found {len(found)}"
    return found[0]


def test_deploy_has_yaml() -> None:
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"compose.yaml", "routes.compose.yaml", "k8s/kustomization.yaml"} <= names


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(DEPLOY).as_posix())
def test_yaml_parses(path: Path) -> None:
    docs = _docs(path)
    assert docs, f"{path} has no YAML document"
    assert all(isinstance(doc, dict) for doc in docs)


def test_compose_routes_pass_check() -> None:
    assert main(["check", str(DEPLOY / "routes.compose.yaml")]) == 0


def test_configmap_routes_pass_check(tmp_path: Path) -> None:
    configmap = _one(K8S / "configmap.yaml", "ConfigMap")
    routes = tmp_path / "routes.yaml"
    routes.write_text(configmap["data"]["routes.yaml"], encoding="utf-8")
    assert main(["check", str(routes)]) == 0


def test_repo_routes_pass_check() -> None:
    """The image copies routes.yaml as its default table: it must be valid too."""
    assert main(["check", str(REPO / "routes.yaml")]) == 0


def _final_stage(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the last stage, with line continuations joined."""
    text = re.sub(r"\\\n", " ", dockerfile)
    instructions: list[tuple[str, str]] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        word, _, rest = stripped.partition(" ")
        instructions.append((word.upper(), rest.strip()))
    starts = [i for i, (word, _) in enumerate(instructions) if word == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]


def test_dockerfile_final_stage_runs_non_root() -> None:
    stage = _final_stage((REPO / "Dockerfile").read_text(encoding="utf-8"))
    users = [rest for word, rest in stage if word == "USER"]
    assert users, "the final stage sets no USER"
    user = users[-1].split(":")[0]
    assert user.isdigit(), f"USER {user!r}: use a numeric UID (runAsNonRoot can check it)"
    assert int(user) != 0
    words = {word for word, _ in stage}
    assert {"HEALTHCHECK", "ENTRYPOINT", "CMD", "EXPOSE"} <= words
    assert ("ENTRYPOINT", '["gateway"]') in stage
    assert any(word == "COPY" and "--from=builder" in rest for word, rest in stage)


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    containers: list[dict[str, Any]] = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_deployment_security_and_probes() -> None:
    deployment = _one(K8S / "deployment.yaml", "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = _container(deployment)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert "startupProbe" in container
    assert "preStop" in container["lifecycle"]
    assert {"requests", "limits"} <= set(container["resources"])


def test_deployment_mounts_routes_directory() -> None:
    """Hot reload needs the whole ConfigMap directory (``..data`` swaps), never a subPath."""
    deployment = _one(K8S / "deployment.yaml", "Deployment")
    container = _container(deployment)
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    routes = [n for n, v in volumes.items() if "configMap" in v]
    assert len(routes) == 1
    assert mounts[routes[0]]["mountPath"] == "/etc/gateway"
    assert "subPath" not in mounts[routes[0]]
    configmap = _one(K8S / "configmap.yaml", "ConfigMap")
    assert volumes[routes[0]]["configMap"]["name"] == configmap["metadata"]["name"]
    assert "/etc/gateway/routes.yaml" in container["args"]


def test_kustomization_lists_existing_files_and_no_example_secret() -> None:
    kustomization = _docs(K8S / "kustomization.yaml")[0]
    resources: list[str] = kustomization["resources"]
    for name in resources:
        assert (K8S / name).is_file(), name
    assert "secret.example.yaml" not in resources
    pdb = _one(K8S / "pdb.yaml", "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 2


def test_compose_stack() -> None:
    services: dict[str, dict[str, Any]] = _docs(DEPLOY / "compose.yaml")[0]["services"]
    gateway = services["gateway"]
    observability = {"jaeger", "prometheus", "grafana"}  # their UIs, on loopback; not waited for
    assert observability <= set(services)
    published = {name for name, svc in services.items() if svc.get("ports")}
    assert published == {"gateway"} | observability, "only the gateway and the UIs publish"
    for name in published:
        assert all(str(p).startswith("127.0.0.1:") for p in services[name]["ports"]), name
    assert "COLLECTOR_OTLP_ENABLED" in services["jaeger"]["environment"]
    assert gateway["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4318"
    for name, svc in services.items():
        assert name in observability or "healthcheck" in svc, f"{name} has no healthcheck"
    for name in set(services) - {"gateway"} - observability:
        assert gateway["depends_on"][name]["condition"] == "service_healthy"
    torchserve = " ".join(str(w) for w in services["torchserve"]["healthcheck"]["test"])
    assert ":8081/models/" in torchserve
    assert "READY" in torchserve
    assert "/ping" not in torchserve
    for name in ("triton", "mlserver"):
        assert "/v2/health/ready" in " ".join(services[name]["healthcheck"]["test"])
    assert "/v1/models/" in " ".join(services["tfserving"]["healthcheck"]["test"])
    assert any(v.endswith(":/etc/gateway/routes.yaml:ro") for v in gateway["volumes"])
    assert gateway["environment"]["GATEWAY_REDIS_URL"] == "redis://redis:6379/0"


def test_grafana_dashboard_charts_the_gateways_metrics() -> None:
    import json

    dashboard = json.loads((DEPLOY / "grafana/dashboards/model-gateway.json").read_text())
    exprs = " ".join(t["expr"] for panel in dashboard["panels"] for t in panel["targets"])
    for name in (
        "gateway_requests_total",
        "gateway_request_duration_seconds_bucket",
        "gateway_overhead_duration_seconds_bucket",
        "gateway_cache_requests_total",
        "gateway_backend_replica_up",
        "gateway_rollout_weight",
    ):
        assert name in exprs
    scrape = _docs(DEPLOY / "prometheus.yml")[0]["scrape_configs"][0]
    assert scrape["static_configs"][0]["targets"] == ["gateway:8080"]

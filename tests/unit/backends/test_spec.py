"""A backend's ``protocol`` and the form of its URLs, in routes.yaml and its JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest
import yaml

from gateway.backends.registry import ADAPTERS
from gateway.backends.specs import SPECS, KServeSpec, TFServingSpec, TritonSpec
from gateway.config.file import parse_config
from gateway.config.model import json_schema
from gateway.errors import ConfigError

MODEL = 'models:\n  m:\n    versions:\n      "1": {backend: a}\n'


def backends(*lines: str) -> str:
    return "backends:\n  a:\n" + "".join(f"    {line}\n" for line in lines) + MODEL


def issues(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")
    return [(i.path, i.line, i.message) for i in caught.value.issues]


@pytest.mark.parametrize("kind", ["triton", "kserve", "tfserving"])
def test_grpc_replicas_are_grpc_host_port(kind: str) -> None:
    text = backends(
        f"kind: {kind}",
        "protocol: grpc",
        "urls: ['grpc://10.0.0.5:8001/', 'grpc://[::1]:8001', 'grpc://triton.internal:8001']",
    )
    spec = parse_config(text).table.backends["a"]
    assert isinstance(spec, TritonSpec | KServeSpec | TFServingSpec)
    assert spec.protocol == "grpc"
    assert spec.urls == ["grpc://10.0.0.5:8001", "grpc://[::1]:8001", "grpc://triton.internal:8001"]
    assert (
        parse_config(backends(f"kind: {kind}", "urls: [http://h:8000]"))
        .table.backends["a"]
        .protocol
        == "http"
    )


@pytest.mark.parametrize(
    ("lines", "path", "line", "message"),
    [
        pytest.param(
            ["kind: triton", "urls: ['grpc://h:8001']"],
            "backends.a.urls.0",
            4,
            "not an http(s) URL: 'grpc://h:8001'; gRPC replicas need protocol: grpc",
            id="grpc-url-over-http",
        ),
        pytest.param(
            ["kind: triton", "protocol: grpc", "urls:", "  - grpc://h:8001", "  - http://h:8000"],
            "backends.a.urls.1",
            7,
            "not a grpc://host:port address: 'http://h:8000'",
            id="http-url-over-grpc",
        ),
        pytest.param(
            ["kind: kserve", "protocol: grpc", "urls: ['grpc://h']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'grpc://h'",
            id="no-port",
        ),
        pytest.param(
            ["kind: kserve", "protocol: grpc", "urls: ['h:8001']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'h:8001'",
            id="no-scheme",
        ),
        pytest.param(
            ["kind: kserve", "protocol: grpc", "urls: ['grpc://h:8001/v2']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'grpc://h:8001/v2'",
            id="a-path",
        ),
        pytest.param(
            ["kind: triton", "protocol: grpc", "urls: ['grpc://h:70000']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'grpc://h:70000'",
            id="port-range",
        ),
        pytest.param(
            ["kind: torchserve", "protocol: grpc", "urls: ['grpc://h:7070']"],
            "backends.a.protocol",
            4,
            "kind torchserve has no grpc protocol: use http",
            id="kind-without-grpc",
        ),
        pytest.param(
            ["kind: tfserving", "urls: ['grpc://h:8500']"],
            "backends.a.urls.0",
            4,
            "not an http(s) URL: 'grpc://h:8500'; gRPC replicas need protocol: grpc",
            id="tfserving-grpc-url-over-http",
        ),
        pytest.param(
            ["kind: tfserving", "protocol: grpc", "urls: ['http://h:8501']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'http://h:8501'",
            id="tfserving-http-url-over-grpc",
        ),
        pytest.param(
            ["kind: tfserving", "protocol: grpc", "urls: ['h:8500']"],
            "backends.a.urls.0",
            5,
            "not a grpc://host:port address: 'h:8500'",
            id="tfserving-no-scheme",
        ),
        pytest.param(
            ["kind: triton", "protocol: thrift", "urls: ['http://h:8000']"],
            "backends.a.protocol",
            4,
            "Input should be 'http' or 'grpc'",
            id="unknown-protocol",
        ),
        pytest.param(
            ["kind: triton", "protocol: grpc", "binary_data: always", "urls: ['grpc://h:8001']"],
            "backends.a.binary_data",
            5,
            "binary_data is for protocol http: over gRPC tensors always travel raw",
            id="binary-data-over-grpc",
        ),
    ],
)
def test_a_wrong_protocol_or_url_names_its_place(
    lines: list[str], path: str, line: int, message: str
) -> None:
    assert issues(backends(*lines)) == [(path, line, message)]


def test_a_passthrough_route_to_a_grpc_backend_is_refused() -> None:
    text = backends("kind: triton", "protocol: grpc", "urls: ['grpc://h:8001']")
    text += "routes:\n  - {path: /triton/, backend: a}\n"
    assert issues(text) == [
        ("routes.0.backend", 11, "'a' has protocol grpc: passthrough routes relay HTTP only")
    ]


def test_the_json_schema_knows_each_kinds_protocols() -> None:
    schema = json_schema()
    grpc = backends("kind: kserve", "protocol: grpc", "urls: ['grpc://[::1]:8001']")
    jsonschema.validate(yaml.safe_load(grpc), schema)
    tfserving = backends("kind: tfserving", "protocol: grpc", "urls: ['grpc://tfs:8500']")
    jsonschema.validate(yaml.safe_load(tfserving), schema)
    for wrong in (
        backends("kind: torchserve", "protocol: grpc", "urls: ['grpc://h:8001']"),
        backends("kind: torchserve", "urls: ['grpc://h:8001']"),
        backends("kind: http", "protocol: grpc", "urls: ['grpc://h:8001']"),
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(yaml.safe_load(wrong), schema)
    for spec in ("TritonSpec", "KServeSpec", "TFServingSpec"):
        assert schema["$defs"][spec]["properties"]["protocol"]["enum"] == ["http", "grpc"]
    assert schema["$defs"]["TorchServeSpec"]["properties"]["protocol"]["enum"] == ["http"]


def test_every_kind_has_its_spec_and_its_adapter_and_they_agree() -> None:
    assert list(SPECS) == list(ADAPTERS)
    for kind, adapter in ADAPTERS.items():
        assert adapter.spec is SPECS[kind], kind
        assert adapter.kind == kind

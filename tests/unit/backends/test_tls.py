"""A backend's ``tls:`` block in routes.yaml: its files are loaded at validation, every mistake
is an error at its line, and a reload keeps the context only while the files are unchanged."""

from __future__ import annotations

import ssl
from pathlib import Path

import jsonschema
import pytest
import yaml

from gateway.backends.grpc_pool import channel_options, uses_tls
from gateway.backends.spec import BackendSpec
from gateway.config.file import parse_config
from gateway.config.model import json_schema
from gateway.errors import ConfigError
from tests.certs import CA, Issued, encrypted_key

MODEL = 'models:\n  m:\n    versions:\n      "1": {backend: a}\n'


def routes(*lines: str) -> str:
    return "backends:\n  a:\n" + "".join(f"    {line}\n" for line in lines) + MODEL


def backend_of(text: str) -> BackendSpec:
    return parse_config(text, "routes.yaml").table.backends["a"]


def issues(text: str) -> list[tuple[str, int | None, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "routes.yaml")
    return [(i.path, i.line, i.message) for i in caught.value.issues]


@pytest.fixture
def ca(tmp_path: Path) -> CA:
    return CA(tmp_path / "pki")


@pytest.fixture
def client(ca: CA) -> Issued:
    return ca.client()


def test_a_full_tls_block_loads_into_a_verifying_context(ca: CA, client: Issued) -> None:
    spec = backend_of(
        routes(
            "kind: kserve",
            "urls: ['https://127.0.0.1:8443']",
            "tls:",
            f"  ca_file: {ca.cert}",
            f"  cert_file: {client.cert}",
            f"  key_file: {client.key}",
            "  server_name: models.internal",
        )
    )
    assert spec.tls is not None
    material = spec.tls.material
    assert material.ca == ca.cert.read_bytes()
    assert (material.cert, material.key) == (client.cert.read_bytes(), client.key.read_bytes())
    context = material.context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "test CA"),),)]
    assert client.key.read_text() not in repr(spec)  # the key's bytes are never shown


def test_https_needs_no_tls_block_and_a_ca_alone_will_do(ca: CA) -> None:
    assert backend_of(routes("kind: kserve", "urls: ['https://h:8443']")).tls is None
    spec = backend_of(
        routes("kind: kserve", "urls: ['https://h:8443']", "tls:", f"  ca_file: {ca.cert}")
    )
    assert spec.tls is not None
    assert spec.tls.material.cert is None


def test_insecure_skip_verify_turns_verification_off(ca: CA) -> None:
    spec = backend_of(
        routes("kind: kserve", "urls: ['https://h:8443']", "tls: {insecure_skip_verify: true}")
    )
    assert spec.tls is not None
    context = spec.tls.material.context
    assert context.verify_mode == ssl.CERT_NONE
    assert not context.check_hostname


def test_tls_block_mistakes_name_their_line(tmp_path: Path, ca: CA, client: Issued) -> None:
    other = CA(tmp_path / "other", "other CA").client()
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    head = ["kind: kserve", "urls: ['https://h:8443']", "tls:"]
    cases = [
        (
            [f"  ca_file: {tmp_path / 'missing.pem'}"],
            "backends.a.tls.ca_file",
            6,
            f"cannot read '{tmp_path / 'missing.pem'}': No such file or directory",
        ),
        (
            [f"  ca_file: {tmp_path}"],
            "backends.a.tls.ca_file",
            6,
            f"cannot read '{tmp_path}': Is a directory",
        ),
        (
            [f"  ca_file: {garbage}"],
            "backends.a.tls.ca_file",
            6,
            f"no PEM certificate in '{garbage}'",
        ),
        (
            [f"  cert_file: {client.cert}"],
            "backends.a.tls.key_file",
            5,  # not there: the block's line
            "cert_file needs key_file (a client certificate and key)",
        ),
        (
            [f"  key_file: {client.key}"],
            "backends.a.tls.cert_file",
            5,
            "key_file needs cert_file (a client certificate and key)",
        ),
        (
            [f"  cert_file: {client.cert}", f"  key_file: {other.key}"],
            "backends.a.tls.key_file",
            7,
            f"'{client.cert}' and '{other.key}' do not load as a certificate and its "
            "unencrypted key (key values mismatch)",
        ),
        (
            [f"  cert_file: {client.cert}", f"  key_file: {encrypted_key(client, b'pw')}"],
            "backends.a.tls.key_file",
            7,
            "do not load as a certificate and its unencrypted key",
        ),
        (["  server_name: ''"], "backends.a.tls.server_name", 6, "at least 1 character"),
        (["  verify: false"], "backends.a.tls.verify", 6, "unknown key 'verify'"),
    ]
    for lines, path, line, message in cases:
        [(got_path, got_line, got_message)] = issues(routes(*head, *lines))
        assert (got_path, got_line) == (path, line), got_message
        assert message in got_message


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            ["kind: kserve", "urls: ['https://h:1', 'http://h:2']", "tls: {}"],
            "tls needs https:// urls; 'http://h:2' is plain http",
        ),
        (
            [
                "kind: kserve",
                "protocol: grpc",
                "urls: ['grpcs://h:1']",
                "tls: {insecure_skip_verify: true}",
            ],
            "insecure_skip_verify is not available with protocol grpc",
        ),
    ],
)
def test_a_tls_block_must_fit_the_wire(lines: list[str], message: str) -> None:
    [(path, _, got)] = issues(routes(*lines))
    assert path == "backends.a.tls"
    assert message in got


def test_grpcs_urls_and_the_server_name_option(ca: CA) -> None:
    spec = backend_of(
        routes(
            "kind: triton",
            "protocol: grpc",
            "urls: ['grpcs://[::1]:8001', 'grpc://h:8001/']",
            "tls:",
            f"  ca_file: {ca.cert}",
            "  server_name: triton.models",
        )
    )
    assert spec.urls == ["grpcs://[::1]:8001", "grpc://h:8001"]
    assert ("grpc.ssl_target_name_override", "triton.models") in channel_options(spec)
    plain = backend_of(routes("kind: triton", "protocol: grpc", "urls: ['grpc://h:8001']"))
    assert all(name != "grpc.ssl_target_name_override" for name, _ in channel_options(plain))


def test_grpc_channels_are_secure_for_grpcs_or_a_tls_block(ca: CA) -> None:
    def secure(*lines: str) -> list[bool]:
        spec = backend_of(routes("kind: triton", "protocol: grpc", *lines))
        return [uses_tls(spec, url) for url in spec.urls]

    assert secure("urls: ['grpcs://h:1', 'grpc://h:2']") == [True, False]
    assert secure("urls: ['grpc://h:1']", f"tls: {{ca_file: {ca.cert}}}") == [True]


def test_reload_keeps_the_context_while_the_files_are_unchanged(ca: CA, client: Issued) -> None:
    text = routes(
        "kind: kserve",
        "urls: ['https://h:8443']",
        "tls:",
        f"  ca_file: {ca.cert}",
        f"  cert_file: {client.cert}",
        f"  key_file: {client.key}",
    )
    first, again = backend_of(text), backend_of(text)
    assert first == again  # build_runtime carries the backend (and its pool) over
    ca.client()  # a renewed client certificate at the same paths
    renewed = backend_of(text)
    assert renewed != first
    assert renewed.tls is not None
    assert first.tls is not None
    assert renewed.tls.material.cert != first.tls.material.cert


def test_the_json_schema_has_the_tls_block(ca: CA) -> None:
    schema = json_schema()
    good = routes(
        "kind: triton", "protocol: grpc", "urls: ['grpcs://h:8001']", f"tls: {{ca_file: {ca.cert}}}"
    )
    jsonschema.validate(yaml.safe_load(good), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            yaml.safe_load(routes("kind: kserve", "urls: [https://h:1]", "tls: {x: 1}")), schema
        )

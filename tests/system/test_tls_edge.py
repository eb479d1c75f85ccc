"""TLS at the edge against a real ``gateway serve`` (certificates made here, never committed):
TLS 1.2+ only, the certificate rotated from its files without a restart, client certificates
required (mTLS) and mapped to a tenant, the ASGI TLS extension, and the gRPC frontend on TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import socket
import ssl
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
import tritonclient.grpc.aio as triton
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from starlette.responses import JSONResponse
from tritonclient.utils import InferenceServerException

from gateway.edge.server import server_config
from gateway.settings import Settings
from tests.fakes import FakeReplica
from tests.support import ADMIN, ADMIN_TOKEN, V2, auth_routes, eventually, free_port
from tests.system.serving import gateway_serve

pytestmark = pytest.mark.anyio
CLIENT_NAME = "CN=svc-a,O=acme"


# ---------------------------------------------------------------------------------------------
# certificates


@dataclass
class Issued:
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    def write(self, cert_path: Path, key_path: Path) -> None:
        """Write key and certificate, each replaced in one rename (as cert-manager does)."""
        key_pem = self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        for path, data in (
            (key_path, key_pem),
            (cert_path, self.cert.public_bytes(serialization.Encoding.PEM)),
        ):
            part = path.with_suffix(".part")
            part.write_bytes(data)
            os.replace(part, path)


def _name(common: str, org: str | None = None) -> x509.Name:
    parts = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org)] if org else []
    return x509.Name([*parts, x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    subject: x509.Name,
    issuer: Issued | None,
    *,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    sans: list[x509.GeneralName] | None = None,
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    # What Python 3.13's default contexts (VERIFY_X509_STRICT) require of a chain: a CA with
    # key usage and a subject key identifier, leaves naming it by an authority key identifier.
    if ca:
        usages = dict.fromkeys(_KEY_USAGES, False) | {"key_cert_sign": True, "crl_sign": True}
        builder = builder.add_extension(x509.KeyUsage(**usages), critical=True)
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
        )
    signer = issuer.key if issuer else key
    builder = builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), critical=False
    )
    return Issued(builder.sign(signer, hashes.SHA256()), key)


_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
    "encipher_only",
    "decipher_only",
)


@dataclass
class PKI:
    folder: Path
    ca: Issued

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def cert_file(self) -> Path:
        return self.folder / "tls.crt"

    @property
    def key_file(self) -> Path:
        return self.folder / "tls.key"

    def server(self) -> Issued:
        sans: list[x509.GeneralName] = [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
        ]
        return _issue(_name("gateway"), self.ca, usage=ExtendedKeyUsageOID.SERVER_AUTH, sans=sans)

    def client(self, folder: Path) -> tuple[Path, Path]:
        sans: list[x509.GeneralName] = [x509.UniformResourceIdentifier("spiffe://acme/svc-a")]
        issued = _issue(
            _name("svc-a", "acme"), self.ca, usage=ExtendedKeyUsageOID.CLIENT_AUTH, sans=sans
        )
        cert, key = folder / "client.crt", folder / "client.key"
        issued.write(cert, key)
        return cert, key

    def flags(self, *, client_ca: bool = False) -> list[str]:
        flags = ["--tls-cert", str(self.cert_file), "--tls-key", str(self.key_file)]
        return [*flags, "--tls-client-ca", str(self.ca_file)] if client_ca else flags

    def context(
        self,
        client: tuple[Path, Path] | None = None,
        version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """A client context trusting the CA, maybe with a client certificate, maybe pinned to
        one TLS version."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if version is not None:
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # let the client offer old versions
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # TLS 1.1: on purpose
                context.minimum_version = context.maximum_version = version
        if client is not None:
            context.load_cert_chain(*map(str, client))
        return context


@pytest.fixture
def pki(tmp_path: Path) -> PKI:
    folder = tmp_path / "tls"
    folder.mkdir()
    ca = _issue(_name("test CA"), None, ca=True)
    pki = PKI(folder, ca)
    pki.ca_file.write_bytes(ca.cert.public_bytes(serialization.Encoding.PEM))
    pki.server().write(pki.cert_file, pki.key_file)
    return pki


def _served_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial number of the certificate a new handshake gets."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return x509.load_der_x509_certificate(der).serial_number


def _handshake(port: int, context: ssl.SSLContext) -> str | None:
    """The TLS version a handshake agreed on (after one request: TLS 1.3 verifies the client
    certificate after the client thinks the handshake is done)."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        assert tls.recv(12).startswith(b"HTTP/1.1 200")
        return tls.version()


def _refused(port: int, context: ssl.SSLContext) -> bool:
    """Whether the server ends the connection without answering a request (with TLS 1.3 a
    refused client certificate shows only after the client's side of the handshake)."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            return tls.recv(12) == b""
    except (ssl.SSLError, ConnectionError):
        return True


# ---------------------------------------------------------------------------------------------
# versions, rotation


def test_tls_1_2_and_1_3_are_served_and_1_1_is_refused(tmp_path: Path, pki: PKI) -> None:
    with gateway_serve(tmp_path, *pki.flags(), https=pki.context()) as served:
        assert _handshake(served.port, pki.context(version=ssl.TLSVersion.TLSv1_2)) == "TLSv1.2"
        assert _handshake(served.port, pki.context(version=ssl.TLSVersion.TLSv1_3)) == "TLSv1.3"
        with pytest.raises(ssl.SSLError) as refused:
            _handshake(served.port, pki.context(version=ssl.TLSVersion.TLSv1_1))
        # The client did offer TLS 1.1 (else: NO_PROTOCOLS_AVAILABLE); the server ended it
        # (an alert, or the connection closed mid-handshake: OpenSSL builds word that as an
        # EOF reason or, Debian's 3.0, as a zero return with none).
        assert refused.value.reason != "NO_PROTOCOLS_AVAILABLE"
        assert isinstance(refused.value, ssl.SSLZeroReturnError | ssl.SSLEOFError) or (
            refused.value.reason in ("TLSV1_ALERT_PROTOCOL_VERSION", "UNEXPECTED_EOF_WHILE_READING")
        ), refused.value
        with httpx.Client(verify=pki.context()) as client:
            assert client.get(f"{served.url}/healthz").status_code == 200


async def test_a_rotated_certificate_is_served_without_a_restart(tmp_path: Path, pki: PKI) -> None:
    """Two workers, each rotating on its own; a bad new pair is refused and the last good
    one kept."""
    first = x509.load_pem_x509_certificate(pki.cert_file.read_bytes()).serial_number
    context = pki.context()
    with gateway_serve(tmp_path, *pki.flags(), "--workers", "2", https=context) as served:
        assert _served_serial(served.port, context) == first
        second = pki.server()
        second.write(pki.cert_file, pki.key_file)

        async def rotated() -> bool:
            serials = {_served_serial(served.port, context) for _ in range(6)}
            return serials == {second.cert.serial_number}  # every worker

        await eventually(rotated, seconds=30)
        mismatched = Issued(pki.server().cert, second.key)  # a certificate with another's key
        mismatched.write(pki.cert_file, pki.key_file)

        async def refused() -> bool:
            return served.log.read_text(errors="replace").count("do not load") >= 2

        await eventually(refused, seconds=30)
        assert {_served_serial(served.port, context) for _ in range(6)} == {
            second.cert.serial_number
        }


# ---------------------------------------------------------------------------------------------
# client certificates


async def test_mtls_required_refuses_a_client_without_certificate_and_maps_one_to_its_tenant(
    tmp_path: Path, pki: PKI, backend: FakeReplica
) -> None:
    client_files = pki.client(tmp_path)
    routes = auth_routes(backend.url, client_certs={CLIENT_NAME: "tenant-a"})
    with_cert = pki.context(client=client_files)
    env = {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    flags = pki.flags(client_ca=True)
    with gateway_serve(tmp_path, *flags, env=env, routes=routes, https=with_cert) as served:
        assert await asyncio.to_thread(_refused, served.port, pki.context())
        async with httpx.AsyncClient(base_url=served.url, verify=with_cert, timeout=10) as client:
            created = await client.post(
                "/admin/tenants", json={"name": "tenant-a", "models": ["linear"]}, headers=ADMIN
            )
            assert created.status_code == 201, created.text
            served_call = await client.post("/v2/models/linear/infer", json=V2)
            assert served_call.status_code == 200, served_call.text
            other = await client.post("/v2/models/other/infer", json=V2)
            assert other.status_code == 403
            assert "tenant 'tenant-a'" in other.json()["error"]


async def test_an_unmapped_client_certificate_is_no_credential(
    tmp_path: Path, pki: PKI, backend: FakeReplica
) -> None:
    client_files = pki.client(tmp_path)
    routes = auth_routes(backend.url, client_certs={"uri:spiffe://acme/other": "tenant-b"})
    with_cert = pki.context(client=client_files)
    flags = pki.flags(client_ca=True)
    with gateway_serve(tmp_path, *flags, routes=routes, https=with_cert) as served:
        async with httpx.AsyncClient(base_url=served.url, verify=with_cert, timeout=10) as client:
            answer = await client.post("/v2/models/linear/infer", json=V2)
            assert answer.status_code == 401


async def _echo_tls(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls")
    await JSONResponse({"tls": tls, "scheme": scope["scheme"]})(scope, receive, send)


@pytest.fixture
async def echo_server(pki: PKI) -> AsyncIterator[tuple[str, PKI]]:
    """An app echoing its scope's TLS extension, behind the gateway's server (optional mTLS)."""
    port = free_port()
    settings = Settings(
        port=port,
        log_level="warning",
        tls_cert=pki.cert_file,
        tls_key=pki.key_file,
        tls_client_ca=pki.ca_file,
        tls_client_cert="optional",
    )
    server = uvicorn.Server(server_config(settings, _echo_tls, lifespan="off"))
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started))
    yield f"https://127.0.0.1:{port}", pki
    server.should_exit = True
    await task


async def test_the_scope_carries_the_asgi_tls_extension(
    tmp_path: Path, echo_server: tuple[str, PKI]
) -> None:
    url, pki = echo_server
    client_files = pki.client(tmp_path)
    async with httpx.AsyncClient(verify=pki.context(client=client_files)) as client:
        body = (await client.get(url)).json()
    tls = body["tls"]
    assert body["scheme"] == "https"
    assert tls["client_cert_name"] == CLIENT_NAME
    assert tls["client_cert_chain"][0] == client_files[0].read_text()
    assert tls["tls_version"] == 0x0304
    assert isinstance(tls["cipher_suite"], int)
    async with httpx.AsyncClient(verify=pki.context()) as client:  # optional: none given
        anonymous = (await client.get(url)).json()["tls"]
    assert anonymous["client_cert_chain"] == []
    assert anonymous["client_cert_name"] is None


# ---------------------------------------------------------------------------------------------
# gRPC


async def test_the_grpc_frontend_serves_tls_and_requires_the_client_certificate(
    tmp_path: Path, pki: PKI
) -> None:
    client_cert, client_key = pki.client(tmp_path)
    grpc_port = free_port()
    flags = [*pki.flags(client_ca=True), "--grpc-port", str(grpc_port)]
    with_cert = pki.context(client=(client_cert, client_key))
    with gateway_serve(tmp_path, *flags, https=with_cert):
        root = pki.ca_file.read_bytes()
        good = grpc.ssl_channel_credentials(root, client_key.read_bytes(), client_cert.read_bytes())
        async with grpc.aio.secure_channel(f"127.0.0.1:{grpc_port}", good) as channel:
            stub: Any = health_pb2_grpc.HealthStub(channel)  # typed for sync channels only
            answer = await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
        anonymous = grpc.ssl_channel_credentials(root)
        async with grpc.aio.secure_channel(f"127.0.0.1:{grpc_port}", anonymous) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Check(health_pb2.HealthCheckRequest(), timeout=10)


async def test_tritonclient_over_grpc_mtls_is_authenticated_as_the_certificates_tenant(
    tmp_path: Path, pki: PKI, backend: FakeReplica
) -> None:
    client_cert, client_key = pki.client(tmp_path)
    routes = auth_routes(backend.url, client_certs={"uri:spiffe://acme/svc-a": "tenant-a"})
    grpc_port = free_port()
    flags = [*pki.flags(client_ca=True), "--grpc-port", str(grpc_port)]
    with_cert = pki.context(client=(client_cert, client_key))
    env = {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    with gateway_serve(tmp_path, *flags, env=env, routes=routes, https=with_cert) as served:
        async with httpx.AsyncClient(base_url=served.url, verify=with_cert, timeout=10) as admin:
            tenant = {"name": "tenant-a", "models": ["linear"]}
            created = await admin.post("/admin/tenants", json=tenant, headers=ADMIN)
            assert created.status_code == 201, created.text
        client = triton.InferenceServerClient(
            f"127.0.0.1:{grpc_port}",
            ssl=True,
            root_certificates=str(pki.ca_file),
            private_key=str(client_key),
            certificate_chain=str(client_cert),
        )
        try:
            tensor = triton.InferInput("INPUT0", [1, 4], "FP32")
            tensor.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.float32))
            answer = await client.infer("linear", [tensor])
            assert answer.as_numpy("y") is not None
            with pytest.raises(InferenceServerException) as refused:
                await client.infer("other", [tensor])
            assert refused.value.status() == "StatusCode.PERMISSION_DENIED"
            assert "tenant 'tenant-a'" in str(refused.value.message())
        finally:
            await client.close()

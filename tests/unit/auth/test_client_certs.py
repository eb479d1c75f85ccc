"""Client certificate identities and their mapping to tenants."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.auth.client_certs import ClientCert, client_cert_of, tenant_of


def _pem(sans: list[x509.GeneralName]) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "acme"),
            x509.NameAttribute(NameOID.COMMON_NAME, "svc-a"),
        ]
    )
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(hours=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()


def test_the_identity_has_the_rfc4514_subject_and_the_sans() -> None:
    sans = [x509.DNSName("svc-a.acme"), x509.UniformResourceIdentifier("spiffe://acme/svc-a")]
    cert = client_cert_of({"tls": {"client_cert_chain": [_pem(sans)]}})
    assert cert == ClientCert("CN=svc-a,O=acme", ("svc-a.acme",), ("spiffe://acme/svc-a",))
    assert client_cert_of({"tls": {"client_cert_chain": [_pem([])]}}) == ClientCert(
        "CN=svc-a,O=acme"
    )


def test_no_tls_or_no_certificate_is_no_identity() -> None:
    assert client_cert_of(None) is None
    assert client_cert_of({}) is None
    assert client_cert_of({"tls": {"client_cert_chain": []}}) is None
    assert client_cert_of({"tls": None}) is None


def test_uris_then_dns_names_then_the_subject_are_tried() -> None:
    cert = ClientCert("CN=svc-a,O=acme", ("svc-a.acme",), ("spiffe://acme/svc-a",))
    mapping = {"CN=svc-a,O=acme": "by-subject", "dns:svc-a.acme": "by-dns"}
    assert tenant_of(cert, mapping) == ("dns:svc-a.acme", "by-dns")
    mapping["uri:spiffe://acme/svc-a"] = "by-uri"
    assert tenant_of(cert, mapping) == ("uri:spiffe://acme/svc-a", "by-uri")
    assert tenant_of(cert, {"CN=other": "x"}) is None

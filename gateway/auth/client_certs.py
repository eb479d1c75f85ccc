"""Client certificates as credentials: the identity of a certificate the TLS edge verified,
and the tenant routes.yaml maps it to (``auth: {client_certs: {...}}``).

A mapping key is the certificate's subject as RFC 4514 prints it (``CN=svc-a,O=acme``, most
specific first, as ``openssl x509 -noout -subject -nameopt RFC2253`` shows it), or one of its
subject alternative names as ``dns:<name>`` or ``uri:<uri>`` (a SPIFFE ID, say). URIs are
tried first, then DNS names, then the subject. Only certificates the TLS handshake verified
against the configured client CA ever reach here.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography import x509


@dataclass(frozen=True, slots=True)
class ClientCert:
    """The identity of a verified client certificate."""

    subject: str  # RFC 4514
    dns: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """The mapping keys this certificate answers to, in the order they are tried."""
        return (
            *(f"uri:{u}" for u in self.uris),
            *(f"dns:{d}" for d in self.dns),
            self.subject,
        )


def tenant_of(cert: ClientCert, mapping: Mapping[str, str]) -> tuple[str, str] | None:
    """(matched key, tenant) of the first of ``cert``'s names ``mapping`` has, else None."""
    for name in cert.names():
        tenant = mapping.get(name)
        if tenant is not None:
            return name, tenant
    return None


@functools.lru_cache(maxsize=1024)
def client_cert_from_pem(pem: str) -> ClientCert:
    """The identity of a PEM certificate (memoised: one parse per client certificate, not per
    request)."""
    cert = x509.load_pem_x509_certificate(pem.encode("ascii"))
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = tuple(alt.get_values_for_type(x509.DNSName))
        uris = tuple(alt.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        dns, uris = (), ()
    return ClientCert(cert.subject.rfc4514_string(), dns, uris)


def client_cert_of(extensions: Mapping[str, object] | None) -> ClientCert | None:
    """The verified client certificate of an ASGI scope's ``extensions`` (the TLS extension's
    ``client_cert_chain``), or None."""
    tls = extensions.get("tls") if extensions else None
    if not isinstance(tls, Mapping):
        return None
    chain = tls.get("client_cert_chain")
    if not chain or not isinstance(chain, list | tuple) or not isinstance(chain[0], str):
        return None
    return client_cert_from_pem(chain[0])

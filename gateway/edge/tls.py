"""TLS at the edge: the server context (TLS 1.2+, optional client certificates), rotated
when its files change, and the ASGI TLS extension of a connection.

Rotation (cert-manager rewrites the files of a mounted secret): a daemon thread watches the
folders of the certificate, key and client CA files. When their bytes change it builds a
*new* context from them, off the event loop; if that fails (a half-written or mismatched
pair) it logs and keeps serving the current one. Every handshake starts on the first
context, whose SNI callback (called for every ClientHello, SNI sent or not) switches the
connection to the newest context. Calling ``load_cert_chain`` again on the live context
instead would read files on the event loop, and a new certificate with a key that does not
match leaves OpenSSL with no usable key: every later handshake would fail.
"""

from __future__ import annotations

import hashlib
import logging
import ssl
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import watchfiles
from cryptography import x509

logger = logging.getLogger("gateway.tls")

ClientCertMode = Literal["required", "optional"]
_VERSIONS = {"TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """The files of the edge's TLS: certificate chain and key (PEM), and the CA bundle that
    client certificates must chain to (mTLS; None: client certificates are not asked for)."""

    cert: str
    key: str
    client_ca: str | None = None
    client_cert: ClientCertMode = "required"

    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.cert, self.key, self.client_ca) if f)


def server_context(options: TLSOptions) -> ssl.SSLContext:
    """A server context from the files as they are now (raises ``ssl.SSLError`` or
    ``OSError`` on a bad file or a key that does not match the certificate)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(options.cert, options.key)
    if options.client_ca:
        context.load_verify_locations(cafile=options.client_ca)
        required = options.client_cert == "required"
        context.verify_mode = ssl.CERT_REQUIRED if required else ssl.CERT_OPTIONAL
    return context


class _Rotation:
    """The newest good context, switched to by the first context's SNI callback."""

    def __init__(self, options: TLSOptions) -> None:
        self.options = options
        # None: the first context (not held here, so that the watcher notices it is gone).
        self.current: ssl.SSLContext | None = None
        self.digest = _digest(options)

    def select(self, connection: ssl.SSLObject, server_name: str | None, first: object) -> None:
        current = self.current  # one read: the watcher may replace it meanwhile
        if current is not None and current is not first:
            connection.context = current

    def reload(self) -> None:
        digest = _digest(self.options)
        if digest == self.digest:
            return
        try:
            fresh = server_context(self.options)
        except (OSError, ssl.SSLError, ValueError) as exc:
            logger.warning("TLS files changed but do not load; keeping the current ones: %s", exc)
            return
        self.digest = digest
        self.current = fresh
        logger.info("TLS certificate reloaded from %s", self.options.cert)


def rotating_server_context(options: TLSOptions) -> ssl.SSLContext:
    """The context to serve with: :func:`server_context`, switching each new handshake to a
    context rebuilt from the files whenever they change (see the module's docstring)."""
    first = server_context(options)
    rotation = _Rotation(options)
    first.sni_callback = rotation.select
    watcher = threading.Thread(
        target=_watch, args=(rotation, weakref.ref(first)), name="tls-watch", daemon=True
    )
    watcher.start()
    return first


def _watch(rotation: _Rotation, alive: weakref.ref[ssl.SSLContext]) -> None:
    # The folders, not the files: a Kubernetes secret volume swaps a symlinked folder.
    folders = sorted({str(Path(f).resolve().parent) for f in rotation.options.files()})
    folders += sorted({str(Path(f).absolute().parent) for f in rotation.options.files()})
    for _changes in watchfiles.watch(
        *sorted(set(folders)), yield_on_timeout=True, rust_timeout=1000, debounce=200
    ):
        if alive() is None:
            return  # the server is gone
        try:
            rotation.reload()
        except Exception:  # the watcher must outlive anything a reload meets
            logger.exception("TLS reload failed; keeping the current certificate")


def _digest(options: TLSOptions) -> bytes:
    digest = hashlib.sha256()
    for name in options.files():
        try:
            digest.update(Path(name).read_bytes())
        except OSError:
            digest.update(b"\0missing")
    return digest.digest()


def tls_extension(connection: ssl.SSLObject) -> dict[str, object]:
    """The ASGI TLS extension (``scope["extensions"]["tls"]``) of a handshaken connection:
    the verified client certificate (PEM chain, RFC 4514 subject), TLS version, cipher."""
    der = connection.getpeercert(binary_form=True)
    chain: list[str] = []
    name: str | None = None
    if der:
        verified = getattr(connection, "get_verified_chain", None)  # Python 3.13+
        # 3.13's SSLObject.get_verified_chain() gives each certificate as DER bytes
        chain = [ssl.DER_cert_to_PEM_cert(bytes(c)) for c in (verified() if verified else [der])]
        name = x509.load_der_x509_certificate(der).subject.rfc4514_string()
    cipher = connection.cipher()
    version = connection.version()
    return {
        "server_cert": None,
        "client_cert_chain": chain,
        "client_cert_name": name,
        "client_cert_error": None,
        "tls_version": _VERSIONS.get(version) if version else None,
        "cipher_suite": _cipher_id(connection.context, cipher[0]) if cipher else None,
    }


_CIPHER_IDS: dict[str, int] = {}


def _cipher_id(context: ssl.SSLContext, name: str) -> int | None:
    if not _CIPHER_IDS:
        for cipher in context.get_ciphers():  # OpenSSL's id: 0x0300 + the IANA number
            _CIPHER_IDS[cipher["name"]] = int(cipher["id"]) & 0xFFFF
    return _CIPHER_IDS.get(name)

"""TLS toward a backend's replicas: the ``tls:`` block of a backend in routes.yaml.

```yaml
backends:
  triton:
    kind: triton
    urls: ["https://triton-0.models:8000"]   # grpcs://host:port with protocol: grpc
    tls:
      ca_file: /etc/gateway/models-ca.pem    # verify the server with this CA bundle
      cert_file: /etc/gateway/client.pem     # present this client certificate (mTLS) ...
      key_file: /etc/gateway/client-key.pem  # ... with its key (unencrypted PEM)
      server_name: triton.models             # SNI and the name verified, when not the URL's
      insecure_skip_verify: false            # true: no verification at all (warned at load)
```

The files are read, and the TLS context built, when routes.yaml is validated (in the loader's
thread, never on the event loop), so a missing file, a key that does not match its
certificate or a bundle with no certificate is a load error at its line. A backend's context
lives as long as its pool: a reload keeps both when the block and the files' bytes are
unchanged, and builds new ones when either changed (a renewed certificate is taken on reload).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from pydantic import Field, PrivateAttr, model_validator

from gateway.config.types import Problem, Strict, problems_error


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    """What the files of a ``tls:`` block hold: the PEM bytes (gRPC's channel credentials take
    bytes) and the HTTP client's context. Equal when the bytes are equal."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None = field(repr=False)
    context: ssl.SSLContext = field(compare=False, repr=False)


class BackendTLS(Strict):
    """TLS settings toward one backend's replicas (module docstring). Paths are relative to
    the gateway's working directory."""

    ca_file: str | None = Field(
        default=None,
        description="PEM CA bundle to verify the replicas' certificates (default: the system's).",
    )
    cert_file: str | None = Field(
        default=None, description="PEM client certificate (chain) for mTLS; needs key_file."
    )
    key_file: str | None = Field(
        default=None, description="The client certificate's private key (unencrypted PEM)."
    )
    server_name: str | None = Field(
        default=None,
        min_length=1,
        description="The name sent as SNI and verified in the certificate (default: the URL's).",
    )
    insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the replicas' certificates (logged at load)."
    )
    _material: TLSMaterial | None = PrivateAttr(default=None)

    @property
    def material(self) -> TLSMaterial:
        if self._material is None:  # pragma: no cover - set by the validator
            raise RuntimeError("BackendTLS was not validated")
        return self._material

    @model_validator(mode="after")
    def _load(self) -> Self:
        problems: list[Problem] = []
        if (self.cert_file is None) != (self.key_file is None):
            given, missing = ("cert_file", "key_file")
            if self.cert_file is None:
                given, missing = missing, given
            problems.append(((missing,), f"{given} needs {missing} (a client certificate and key)"))
        files = {name: getattr(self, name) for name in ("ca_file", "cert_file", "key_file")}
        data: dict[str, bytes | None] = {}
        for name, path in files.items():
            data[name] = None
            if path is not None:
                try:
                    data[name] = Path(path).read_bytes()
                except OSError as exc:
                    problems.append(((name,), f"cannot read {path!r}: {exc.strerror or exc}"))
        if not problems:
            try:
                context = self._context(data["ca_file"])
            except _TLSFileError as exc:
                problems.append(((exc.field,), exc.message))
        if problems:
            raise problems_error(type(self).__name__, problems)
        self._material = TLSMaterial(data["ca_file"], data["cert_file"], data["key_file"], context)
        return self

    def _context(self, ca: bytes | None) -> ssl.SSLContext:
        """The HTTP client's context: TLS 1.2+, the CA bundle (or the system's), the client
        certificate; raises :class:`_TLSFileError` naming the file that would not load."""
        if ca is None:
            context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)  # the system's CAs
        else:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # this bundle only
            try:
                context.load_verify_locations(cadata=ca.decode("ascii", "replace"))
            except (ssl.SSLError, ValueError) as exc:
                reason = f"no PEM certificate in {self.ca_file!r} ({tls_reason(exc)})"
                raise _TLSFileError("ca_file", reason) from exc
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.cert_file is not None and self.key_file is not None:
            try:
                # a password that never fits: an encrypted key fails here instead of OpenSSL
                # prompting on the terminal
                context.load_cert_chain(self.cert_file, self.key_file, password=_no_password)
            except (ssl.SSLError, OSError, ValueError) as exc:
                reason = (
                    f"{self.cert_file!r} and {self.key_file!r} do not load as a certificate and "
                    f"its unencrypted key ({tls_reason(exc)})"
                )
                raise _TLSFileError("key_file", reason) from exc
        if self.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


class _TLSFileError(Exception):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _no_password() -> bytes:
    raise ValueError("encrypted keys are not supported")


def tls_reason(exc: BaseException) -> str:
    """Why a TLS handshake failed, in OpenSSL's words ("certificate verify failed: unable to
    get local issuer certificate", "tlsv13 alert certificate required"), from an aiohttp or
    ssl error (aiohttp keeps the ssl error as ``os_error`` or as its own base)."""
    inner = getattr(exc, "os_error", None) or getattr(exc, "certificate_error", None) or exc
    # (.verify_message and .reason are set by the ssl module's own raises, not always)
    verify = getattr(inner, "verify_message", None)
    if isinstance(inner, ssl.SSLCertVerificationError) and verify:
        return f"certificate verify failed: {verify}"
    reason = getattr(inner, "reason", None)
    if isinstance(inner, ssl.SSLError) and isinstance(reason, str) and reason:
        return reason.lower().replace("_", " ")
    return str(inner)

"""The routes.yaml keys every backend has; each adapter's own spec extends :class:`BackendSpec`.

```yaml
backends:
  triton:
    kind: triton                 # the kind's name in gateway.backends.specs.SPECS
    protocol: http               # or grpc, where the kind has it (urls: grpc://host:port)
    urls: ["http://10.0.0.5:8000", "http://10.0.0.6:8000"]
    timeout: 30s                 # per try
    retries: {attempts: 2, budget: 20%}
    health: {interval: 5s, unhealthy_after: 2, probes_per_second: 10}
    outlier: {consecutive_failures: 5, ejection: 10s}
    tls: {ca_file: ca.pem}       # https:// or grpcs:// replicas: CA, client cert (``tls``)
```
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from gateway.backends.tls import BackendTLS
from gateway.config.types import (
    GRPC_URL,
    URL_PATTERN,
    Duration,
    Ratio,
    Strict,
    check_grpc_url,
    check_url,
    problems_error,
)

Transport = Literal["http", "grpc"]
"""The wire toward a backend's replicas: HTTP (each kind's REST API) or gRPC."""


def _check_replica_url(url: str, info: ValidationInfo) -> str:
    """An http(s) URL, or ``grpc(s)://host:port`` when the backend's ``protocol`` is grpc."""
    protocol = info.data.get("protocol")
    if protocol == "grpc":
        return check_grpc_url(url)
    grpc_url = url.startswith(("grpc://", "grpcs://"))
    if protocol is None:  # the protocol itself is wrong, and reported on its own
        return check_grpc_url(url) if grpc_url else check_url(url)
    if grpc_url:
        raise ValueError(f"not an http(s) URL: {url!r}; gRPC replicas need protocol: grpc")
    return check_url(url)


_REPLICA_PATTERN = f"{URL_PATTERN}|{GRPC_URL.pattern}"
ReplicaURL = Annotated[
    str,
    AfterValidator(_check_replica_url),
    WithJsonSchema({"type": "string", "pattern": _REPLICA_PATTERN}),
]


def _narrow_schema(schema: dict[str, Any], cls: type) -> None:
    """A kind's JSON Schema lists only its own protocols (and URL forms)."""
    protocols: tuple[Transport, ...] = getattr(cls, "protocols", ("http",))
    properties = schema.get("properties", {})
    if "protocol" in properties:
        properties["protocol"]["enum"] = list(protocols)
    if "urls" in properties and "grpc" not in protocols:
        properties["urls"]["items"]["pattern"] = URL_PATTERN


_PROBES_PER_SECOND = (
    "Per-model readiness probes a second to one replica, at most: for kinds without a bulk "
    "readiness API (TF Serving), TorchServe's workers, and any kind whose bulk call fails."
)


class HealthCheck(Strict):
    """Active health checks with each server kind's real readiness: the server and the bulk
    model index per replica every ``interval``, per-model probes lazily at a bounded rate
    (``gateway.backends.health``)."""

    interval: Duration = 5.0
    timeout: Duration = 1.0
    unhealthy_after: int = Field(default=2, ge=1, description="Failed probes before ejection.")
    healthy_after: int = Field(default=1, ge=1, description="Good probes before readmission.")
    probes_per_second: float = Field(default=10.0, gt=0, description=_PROBES_PER_SECOND)


class OutlierDetection(Strict):
    """Passive ejection of a replica after consecutive failures seen on live traffic."""

    consecutive_failures: int = Field(default=5, ge=1)
    ejection: Duration = Field(default=10.0, description="Base ejection time, grows per repeat.")
    max_ejected: Ratio = Field(default=0.5, description="Never eject more than this share.")


class Retries(Strict):
    """Retries on another replica, only where safe (connect errors, 503 from an idle replica)."""

    attempts: int = Field(default=2, ge=1, le=10, description="Tries in all, the first included.")
    budget: Ratio = Field(default=0.2, description="Retries allowed as a share of requests.")
    min_per_second: float = Field(default=3.0, ge=0, description="Retries always allowed.")


_PROTOCOL = (
    "The wire toward the replicas: http (the kind's REST API; urls are http(s)://host:port) "
    "or grpc (the kind's gRPC API; urls are grpc://host:port, grpcs:// over TLS), where the "
    "kind has it."
)
_TLS = (
    "TLS toward the replicas: a CA bundle, a client certificate (mTLS), the verified name. "
    "With protocol http the urls must be https://; with grpc every channel uses TLS."
)


class BackendSpec(Strict):
    """One backend: its kind, its replicas and how they are called and watched.

    ``protocols`` lists the wires a kind speaks (http only unless its adapter says more);
    ``protocol`` is validated before ``urls``, so each URL is checked for its wire's form.
    """

    model_config = ConfigDict(json_schema_extra=_narrow_schema)
    protocols: ClassVar[tuple[Transport, ...]] = ("http",)
    serves_models: ClassVar[bool] = True  # False: passthrough routes only, no inference

    kind: str
    protocol: Transport = Field(default="http", description=_PROTOCOL)
    urls: list[ReplicaURL] = Field(
        min_length=1,
        description="Replica base URLs (http(s)://…) or gRPC addresses (grpc://…, grpcs://…).",
    )
    timeout: Duration = Field(default=30.0, description="Per-try timeout.")
    connect_timeout: Duration = 1.0
    deadline: Duration | None = Field(
        default=None, description="Overall deadline including retries (default: 2 × timeout)."
    )
    max_in_flight: int = Field(default=1024, ge=1, description="Circuit breaker: cap per backend.")
    retries: Retries = Retries()
    health: HealthCheck = HealthCheck()
    outlier: OutlierDetection = OutlierDetection()
    tls: BackendTLS | None = Field(default=None, description=_TLS)

    @field_validator("protocol")
    @classmethod
    def _spoken_by_the_kind(cls, value: Transport, info: ValidationInfo) -> Transport:
        if value not in cls.protocols:
            kind = info.data.get("kind", cls.__name__)
            spoken = " or ".join(cls.protocols)
            raise ValueError(f"kind {kind} has no {value} protocol: use {spoken}")
        return value

    @model_validator(mode="after")
    def _tls_fits_the_wire(self) -> Self:
        tls = self.tls
        if tls is None:
            return self
        problem = None
        plain = [url for url in self.urls if url.startswith("http://")]
        if self.protocol == "http" and plain:
            problem = f"tls needs https:// urls; {plain[0]!r} is plain http"
        elif self.protocol == "grpc" and tls.insecure_skip_verify:
            problem = "insecure_skip_verify is not available with protocol grpc (grpcio has none)"
        if problem is not None:
            raise problems_error(type(self).__name__, [(("tls",), problem)])
        return self

    @property
    def overall_deadline(self) -> float:
        return self.deadline if self.deadline is not None else 2 * self.timeout

    def replica_urls(self) -> list[tuple[str, str | None]]:
        """Each replica's URL and, where the kind has one, its separate management URL."""
        return [(url, None) for url in self.urls]

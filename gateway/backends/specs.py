"""Each backend kind's routes.yaml spec (a :class:`BackendSpec` subclass) and the table of them,
``SPECS``: what validating routes.yaml needs, without the adapters (``registry.ADAPTERS``) and
the HTTP and gRPC clients they import, so that ``gateway check`` loads none of those.
A kind is one line here and one in ``registry.ADAPTERS`` (its adapter's ``spec`` is this one).
"""

from __future__ import annotations

from typing import ClassVar, Literal, Self

from pydantic import Field, model_validator

from gateway.backends.spec import BackendSpec, Transport
from gateway.config.types import URL, problems_error

BinaryMode = Literal["auto", "always", "never"]
"""Triton's binary tensor data extension toward a v2 server over HTTP (``kserve_http``)."""


class TorchServeSpec(BackendSpec):
    kind: Literal["torchserve"]
    management_urls: list[URL] | None = Field(
        default=None,
        description="The management API, one per replica (required): readiness comes from "
        "there, since /ping says Healthy while workers crash.",
    )

    @model_validator(mode="after")
    def _one_management_url_per_replica(self) -> Self:
        problem = None
        if self.management_urls is None:
            problem = (
                "kind torchserve needs management_urls: readiness comes from the management "
                "API, since /ping says Healthy while workers crash"
            )
        elif len(self.management_urls) != len(self.urls):
            problem = "management_urls needs one entry per url"
        if problem is not None:
            raise problems_error(type(self).__name__, [(("management_urls",), problem)])
        return self

    def replica_urls(self) -> list[tuple[str, str | None]]:
        return list(zip(self.urls, self.management_urls or [], strict=True))


class TFServingSpec(BackendSpec):
    protocols: ClassVar[tuple[Transport, ...]] = ("http", "grpc")
    kind: Literal["tfserving"]


_BINARY_DATA = (
    "Triton's binary tensor data extension toward this server: auto (when the call's tensors "
    "are bytes already), always, or never (JSON only). HTTP only: gRPC always sends raw "
    "contents."
)


class V2Spec(BackendSpec):
    """What Triton and other KServe v2 servers share."""

    protocols: ClassVar[tuple[Transport, ...]] = ("http", "grpc")
    binary_data: BinaryMode = "never"

    @model_validator(mode="after")
    def _binary_data_is_http_only(self) -> Self:
        if self.protocol == "grpc" and "binary_data" in self.model_fields_set:
            problem = "binary_data is for protocol http: over gRPC tensors always travel raw"
            raise problems_error(type(self).__name__, [(("binary_data",), problem)])
        return self


class KServeSpec(V2Spec):
    kind: Literal["kserve"]
    binary_data: BinaryMode = Field(default="never", description=_BINARY_DATA)


class TritonSpec(V2Spec):
    kind: Literal["triton"]
    binary_data: BinaryMode = Field(default="auto", description=_BINARY_DATA)


class HTTPSpec(BackendSpec):
    kind: Literal["http"]
    serves_models: ClassVar[bool] = False  # passthrough routes only, no inference


SPECS: dict[str, type[BackendSpec]] = {
    "torchserve": TorchServeSpec,
    "tfserving": TFServingSpec,
    "triton": TritonSpec,
    "kserve": KServeSpec,
    "http": HTTPSpec,
}

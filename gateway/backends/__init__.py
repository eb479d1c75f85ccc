"""The adapter registry: a server kind is one module (its adapter and its routes.yaml spec)
plus one line here. routes.yaml's ``kind`` names, the backend schema and its validation are
derived from this table (``gateway.config.model``)."""

from gateway.backends.adapter import Adapter
from gateway.backends.http import HTTPBackend
from gateway.backends.kserve import KServeBackend, TritonBackend
from gateway.backends.tfserving import TFServingBackend
from gateway.backends.torchserve import TorchServeBackend

ADAPTERS: dict[str, type[Adapter]] = {
    "torchserve": TorchServeBackend,
    "tfserving": TFServingBackend,
    "triton": TritonBackend,
    "kserve": KServeBackend,
    "http": HTTPBackend,
}

"""Backend adapters by kind: adding a server kind is one module and one line here."""

from gateway.backends.base import Adapter
from gateway.backends.http import HTTPBackend
from gateway.backends.kserve import KServeBackend, TritonBackend
from gateway.backends.tfserving import TFServingBackend
from gateway.backends.torchserve import TorchServeBackend

__all__ = ["ADAPTERS", "Adapter"]

ADAPTERS: dict[str, type[Adapter]] = {
    "torchserve": TorchServeBackend,
    "tfserving": TFServingBackend,
    "triton": TritonBackend,
    "kserve": KServeBackend,
    "http": HTTPBackend,
}

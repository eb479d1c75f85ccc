"""The adapter registry: a server kind is one adapter module plus one line here, and its
routes.yaml spec with one line in ``specs.SPECS`` (routes.yaml's ``kind`` names, the backend
schema and its validation come from that table, ``gateway.config.model``, which so loads no
adapter)."""

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

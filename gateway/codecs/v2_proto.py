"""KServe v2's gRPC messages (``inference.*``), in a descriptor pool of the gateway's own.

Not tritonclient's or kserve's generated modules, nor one of ours: any of those registers
``inference.*`` in the process's default pool, and two of them in one process is a
"duplicate symbol" error at import (PROTOCOLS.md §5.6). The gateway loads the descriptor set
that ``scripts/protos`` writes from ``gateway/protos/inference/grpc_service.proto`` into a
private pool once, when a gRPC frontend or backend is first built, so it lives beside any
client library in one process.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

SERVICE: Final = "inference.GRPCInferenceService"
_FILE: Final = "gateway/protos/inference/grpc_service.proto"


@dataclass(frozen=True, slots=True)
class Messages:
    """The message classes, by their short names, and the pool that holds them."""

    pool: descriptor_pool.DescriptorPool
    file: descriptor_pb2.FileDescriptorProto
    classes: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.classes[name]
        except KeyError:
            raise AttributeError(name) from None


@functools.cache
def messages() -> Messages:
    data = resources.files("gateway.protos.inference").joinpath("grpc_service.desc").read_bytes()
    files = descriptor_pb2.FileDescriptorSet.FromString(data)
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.AddSerializedFile(file.SerializeToString())
    found = message_factory.GetMessages(list(files.file), pool=pool)
    classes = {name.removeprefix("inference."): cls for name, cls in found.items()}
    (file,) = (f for f in files.file if f.name == _FILE)
    return Messages(pool, file, classes)

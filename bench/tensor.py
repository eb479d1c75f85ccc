"""The large tensor: one 1×3×224×224 FP32 image (602,112 bytes of data), as a KServe v2 JSON
body (every number as text) and as Triton's binary tensor data (a JSON header, then the raw
little-endian bytes, ``Inference-Header-Content-Length`` the header's length). Both carry the
same values: seeded random numbers in [0, 1), written as the shortest text that reads back as
the same FP32 (what a careful client sends; a float64 ``repr`` would be twice as long)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SHAPE = (1, 3, 224, 224)
NAME, DATATYPE = "INPUT0", "FP32"
HEADER = "Inference-Header-Content-Length"
BINARY_CONTENT_TYPE = "application/octet-stream"
SEED = 20261122


def values() -> np.ndarray:
    return np.random.default_rng(SEED).random(SHAPE, dtype=np.float32)


def json_body(data: np.ndarray) -> bytes:
    numbers = ",".join(np.format_float_positional(v, unique=True, trim="0") for v in data.flat)
    tensor = {"name": NAME, "shape": list(data.shape), "datatype": DATATYPE}
    head = json.dumps(tensor, separators=(",", ":"))
    return f'{{"inputs":[{head[:-1]},"data":[{numbers}]}}]}}'.encode()


def binary_body(data: np.ndarray) -> tuple[bytes, int]:
    """The body and its JSON header's length."""
    raw = data.astype("<f4").tobytes()
    tensor: dict[str, Any] = {"name": NAME, "shape": list(data.shape), "datatype": DATATYPE}
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = json.dumps({"inputs": [tensor]}, separators=(",", ":")).encode()
    return header + raw, len(header)


@dataclass(frozen=True)
class Bodies:
    json: Path
    binary: Path
    header_length: int  # of the binary body's JSON header
    data_bytes: int  # of the tensor: 602,112


def write(folder: Path) -> Bodies:
    """Both bodies, as files (the wrk scripts read them)."""
    data = values()
    text = json_body(data)
    decoded = np.asarray(json.loads(text)["inputs"][0]["data"], dtype=np.float32)
    if not np.array_equal(decoded.reshape(SHAPE), data):  # the text is the same tensor
        raise AssertionError("the JSON body does not read back as the tensor")
    body, length = binary_body(data)
    (folder / "tensor.json").write_bytes(text)
    (folder / "tensor.bin").write_bytes(body)
    return Bodies(folder / "tensor.json", folder / "tensor.bin", length, data.nbytes)

"""CPU per request as the body grows: KServe v2 JSON bodies of about 1 KiB, 100 KiB and
1 MiB, and binary tensor data bodies of the same sizes, through the gateway's open config
(model ``payload``, ``kind: triton``, so both bodies go on as they came) to the upstream
nginx."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench import systems, tensor
from bench.curves.common import NGINX, Cores, measure, table
from bench.procs import Processes
from bench.wrk import lua_script

SIZES = (1024, 100 * 1024, 1024 * 1024)
PATH = "/v2/models/payload/infer"


def routes(upstream: str) -> str:
    """One model whose input is FP32 [1, -1]: any length, declared (no metadata call)."""
    return f"""backends:
  up-triton: {{kind: triton, urls: ["{upstream}"], timeout: 10s}}
models:
  payload:
    versions:
      "1":
        backend: up-triton
        name: linear
        version: "1"
        inputs: [{{name: INPUT0, datatype: FP32, shape: [1, -1]}}]
        outputs: [{{name: OUTPUT0, datatype: FP32, shape: [-1, 2]}}]
"""


@dataclass(frozen=True)
class Body:
    kind: str  # "json" or "binary"
    path: Path
    size: int  # bytes of the body
    values: int  # FP32 numbers in the tensor
    headers: dict[str, str]
    content_type: str


def _values(count: int) -> np.ndarray:
    return np.random.default_rng(tensor.SEED).random((1, count), dtype=np.float32)


def bodies(target: int, folder: Path) -> list[Body]:
    """A JSON body of about ``target`` bytes and a binary one of about the same size."""
    per_value = len(tensor.json_body(_values(1000))) / 1000  # about 11 bytes a number
    text = tensor.json_body(_values(max(1, round(target / per_value) - 8)))
    raw, header = tensor.binary_body(_values(max(1, (target - 100) // 4)))
    json_path, bin_path = folder / f"payload-{target}.json", folder / f"payload-{target}.bin"
    json_path.write_bytes(text)
    bin_path.write_bytes(raw)
    count = len(json.loads(text)["inputs"][0]["data"])
    return [
        Body("json", json_path, len(text), count, {}, "application/json"),
        Body(
            "binary", bin_path, len(raw), (len(raw) - header) // 4,
            {tensor.HEADER: str(header)}, tensor.BINARY_CONTENT_TYPE,
        ),
    ]  # fmt: skip


def run(
    procs: Processes,
    where: Cores,
    concurrency: int,
    seconds: float,
    warmup: float,
    sizes: tuple[int, ...] = SIZES,
) -> dict[str, Any]:
    nginx = systems.start_upstream(procs, NGINX, where.load)[1]
    gateway = systems.start_gateway(procs, "gateway-payload", routes(nginx), where.sut, 1)
    rows: list[dict[str, Any]] = []
    for target in sizes:
        for body in bodies(target, procs.workdir):
            script = procs.workdir / f"payload-{body.kind}-{target}.lua"
            script.write_text(lua_script(body.headers, False, body.path, body.content_type))
            m = measure(
                gateway.url + PATH, script, gateway.proc, concurrency, seconds, warmup, where.load
            )
            row = {"kind": body.kind, "body_bytes": body.size, "values": body.values}
            row |= m.row()
            row["cpu_us_per_kib"] = round(m.cpu_us_per_request / (body.size / 1024), 2)
            rows.append(row)
            print(_line(row), flush=True)
    return {"curve": "payload", "concurrency": concurrency, "seconds": seconds, "rows": rows}


def _line(row: dict[str, Any]) -> str:
    return (
        f"  {row['kind']:6s} {row['body_bytes']:>9,} B  {row['rps']:8.0f} req/s  "
        f"p50 {row['p50_ms']:.2f} ms  cpu {row['cpu_us_per_request']:,.0f} µs/req"
    )


def render(data: dict[str, Any]) -> str:
    headers = ["body", "bytes", "FP32 values", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "µs/KiB"]
    rows = [
        [r["kind"], r["body_bytes"], r["values"], r["rps"], r["p50_ms"], r["p99_ms"],
         r["cpu_us_per_request"], r["cpu_us_per_kib"]]
        for r in data["rows"]
    ]  # fmt: skip
    return table(headers, rows)

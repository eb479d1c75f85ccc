"""What every curve shares: the processes it starts, one measured wrk run with the CPU of the
system under test, the results file."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import wrk
from bench.loadgen import LoadResult
from bench.procs import BenchError, Proc, cpu_seconds

RESULTS = Path(__file__).resolve().parent.parent / "results"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


@dataclass(frozen=True)
class Cores:
    sut: list[int]  # the gateway
    load: list[int]  # wrk, nginx, redis


def cores() -> Cores:
    """The gateway on the first core, the rest on the others (as ``bench.run``)."""
    mine = sorted(os.sched_getaffinity(0))
    return Cores(mine[:1], mine[1:] or mine[:1])


@dataclass(frozen=True)
class Measured:
    result: LoadResult
    cpu_us_per_request: float

    def row(self) -> dict[str, Any]:
        r = self.result
        return {
            "rps": r.rps,
            "p50_ms": r.p50_ms,
            "p99_ms": r.p99_ms,
            "errors": r.errors,
            "requests": r.requests,
            "cpu_us_per_request": round(self.cpu_us_per_request, 1),
        }


def measure(
    url: str,
    script: Path,
    sut: Proc,
    concurrency: int,
    seconds: float,
    warmup: float,
    cpus: Sequence[int],
) -> Measured:
    """A warm-up, then one measured wrk run; the CPU of ``sut`` (and its children) over it."""
    if warmup > 0:
        wrk.run(url, concurrency, warmup, script, cpus)
    before = cpu_seconds([sut.pid])
    result = wrk.run(url, concurrency, seconds, script, cpus)
    used = cpu_seconds([sut.pid]) - before
    if not sut.alive():
        raise BenchError(f"{sut.name} died:\n{sut.log_tail()}")
    if result.errors:
        raise BenchError(f"{url}: {result.errors} errors in {result.requests} requests")
    per = used * 1e6 / result.requests if result.requests else 0.0
    return Measured(result, per)


def save(kind: str, argv: Sequence[str], payload: dict[str, Any], path: Path | None) -> Path:
    stamp = dt.datetime.now(dt.UTC)
    out = path or RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-curve-{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "started_utc": stamp.isoformat(timespec="seconds"),
        "command": ["python", "-m", "bench.curves", *argv],
        "cpus": os.cpu_count(),
        **payload,
    }
    out.write_text(json.dumps(data, indent=1) + "\n")
    return out


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain text table, numbers right-aligned."""
    text = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in text)) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in text:
        lines.append("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

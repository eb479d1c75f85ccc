"""Driving wrk: Lua scripts for the POST bodies, one run, and its parsed report."""

from __future__ import annotations

import math
import re
import secrets
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.loadgen import LoadResult, Running, require_success
from bench.procs import BenchError

# The v2 request every scenario sends (the linear model: 4 inputs -> 2 outputs).
INPUTS = '"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]'
BODY = "{" + INPUTS + "}"


def lua_string(text: str) -> str:
    if not all(32 <= ord(ch) < 127 for ch in text):
        raise ValueError(f"not printable ASCII: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# Unique bodies (cache misses) differ in their tensor data, not only in ``id``: a gateway may
# key its cache on the decoded tensors and leave the echoed ``id`` out. The data are
# [lo, nonce, hi, 4]: ``nonce`` a per-script random integer, ``lo`` the request counter modulo
# 2**24, ``hi`` 3 + the counter divided by 2**24. Every value is an integer below 2**24, so
# exact in FP32: no two requests of a run, nor of two runs, decode to the same tensor.
FP32_EXACT = 2**24
NONCE_LOW = 1_000_000  # nonces have 7 or 8 digits: the bodies keep one size class


def new_nonce() -> int:
    return NONCE_LOW + secrets.randbelow(FP32_EXACT - NONCE_LOW)


def unique_parts(id_prefix: str, nonce: int) -> tuple[str, str, str, str]:
    """The text around the counters of a unique body: ``head + n + mid + lo + sep + hi +
    tail`` (see ``unique_body``)."""
    if not 0 < nonce < FP32_EXACT:
        raise ValueError(f"nonce {nonce} is not an FP32-exact positive integer")
    head = '{"id":"' + id_prefix + "-"
    mid = '","inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":['
    return head, mid, f",{nonce},", ",4]}]}"


def unique_body(id_prefix: str, nonce: int, n: int) -> str:
    """Request ``n`` (1, 2, ...) of a unique-body script, as its Lua ``request()`` builds it."""
    head, mid, sep, tail = unique_parts(id_prefix, nonce)
    return f"{head}{n}{mid}{n % FP32_EXACT}{sep}{3 + n // FP32_EXACT}{tail}"


def lua_script(
    headers: Mapping[str, str],
    unique: bool,
    body_file: Path | None = None,
    content_type: str = "application/json",
) -> str:
    """POST with these headers; ``unique``: every body differs, in its ``id`` and in its input
    data (``unique_body``), with a per-script nonce so that a warm-up's bodies never come back
    in the measured run. ``body_file``: the one fixed body is that file's bytes (any size, any
    bytes), read once when wrk loads the script; else ``BODY``."""
    lines = ['wrk.method = "POST"', f'wrk.headers["Content-Type"] = {lua_string(content_type)}']
    lines += [f"wrk.headers[{lua_string(k)}] = {lua_string(v)}" for k, v in headers.items()]
    if body_file is not None:
        if unique:
            raise ValueError("a body file is one fixed body")
        lines += [
            f'local file = assert(io.open({lua_string(str(body_file))}, "rb"))',
            'wrk.body = file:read("*a")',
            "file:close()",
        ]
        return "\n".join(lines) + "\n"
    if not unique:
        lines.append(f"wrk.body = {lua_string(BODY)}")
        return "\n".join(lines) + "\n"
    head, mid, sep, tail = (lua_string(p) for p in unique_parts(uuid.uuid4().hex, new_nonce()))
    lines += [
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        f"  local lo, hi = n % {FP32_EXACT}, 3 + math.floor(n / {FP32_EXACT})",
        f"  return wrk.format(nil, nil, nil, {head} .. n .. {mid} .. lo .. {sep} .. hi .. {tail})",
        "end",
    ]
    return "\n".join(lines) + "\n"


WrkResult = LoadResult  # the name of earlier versions


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}


def _latency(out: str, label: str, rest: str = "") -> float:
    match = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m|h){rest}\s*$", out, re.MULTILINE)
    if match is None:
        raise BenchError(f"wrk printed no {label} latency:\n{out}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse(out: str, cpu_seconds: float = 0.0, wall_seconds: float = 0.0) -> LoadResult:
    """Requests/sec, the mean and 50%/99% latencies, non-2xx/3xx responses and socket errors;
    wrk's own CPU time and wall time of the run, as measured by the harness."""
    done = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)", out, re.MULTILINE)
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    if done is None or rps is None:
        raise BenchError(f"could not read wrk's report:\n{out}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return LoadResult(
        tool="wrk",
        requests=int(done.group(1)),
        seconds=float(done.group(2)) * _UNITS[done.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        mean_ms=_latency(out, "Latency", r"\s.*"),
        p50_ms=_latency(out, "50%"),
        p99_ms=_latency(out, "99%"),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        load_cpu_seconds=cpu_seconds,
        load_wall_seconds=wall_seconds,
    )


def start(url: str, connections: int, seconds: float, script: Path, cpus: Sequence[int]) -> Running:
    """Start one wrk run (``-t1``, ``--latency``) in the background. wrk takes whole seconds
    only: a fractional duration runs for the next whole second and is stopped by ``finish``."""
    whole = max(1, math.ceil(seconds))
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{whole}s", "--timeout", "5s", "--latency"]
    return Running([*cmd, "-s", str(script), url], cpus)


def finish(proc: Running, seconds: float) -> LoadResult:
    """Wait for the run (a fractional duration is ended by SIGINT: wrk then reports)."""
    done = proc.finish(seconds, interrupt=True)
    require_success("wrk", done)
    return parse(done.output, done.cpu_seconds, done.wall_seconds)


def run(
    url: str, connections: int, seconds: float, script: Path, cpus: Sequence[int]
) -> LoadResult:
    return finish(start(url, connections, seconds, script, cpus), seconds)

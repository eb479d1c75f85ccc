"""Driving h2load (nghttp2's HTTP/2 load generator, in C) for gRPC unary calls.

A gRPC unary call is an HTTP/2 POST to ``/<package>.<Service>/<Method>`` with ``content-type:
application/grpc`` and ``te: trailers``, whose body is one length-prefixed message: a zero byte
(not compressed), the message's length as a big-endian uint32, the serialized message. h2load
sends that body file on every request (``-d``) and counts HTTP statuses; a gRPC error travels
as HTTP 200 with a non-zero ``grpc-status`` trailer, which h2load does not read. So the harness
proves there were none by other means (bench/README.md, "gRPC"): a real gRPC call of the same
body before measuring, the servers' own error counters around every run, and the reply bytes:
an error carries no message, so ``DATA bytes == replies × the reply's frame size``.

The ModelInferRequest is built with ``tritonclient.grpc.service_pb2`` in the harness process
(which never imports kserve: both register ``inference.*`` in protobuf's default pool).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping, Sequence
from pathlib import Path

from bench.loadgen import LoadResult, Running, require_success
from bench.procs import BenchError

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
HEADERS = {"content-type": "application/grpc", "te": "trailers"}


def frame(message: bytes) -> bytes:
    """One gRPC length-prefixed message, not compressed."""
    return b"\0" + struct.pack(">I", len(message)) + message


def unframe(data: bytes) -> bytes:
    """The message of one length-prefixed frame (the inverse of ``frame``)."""
    if len(data) < 5 or data[0] != 0 or struct.unpack(">I", data[1:5])[0] != len(data) - 5:
        raise ValueError("not one uncompressed gRPC message frame")
    return data[5:]


def linear_request(model: str, version: str = "") -> bytes:
    """A serialized ModelInferRequest for ``linear``: INPUT0, FP32 [1, 4] = [1, 2, 3, 4], as
    ``raw_input_contents`` (little-endian), as tritonclient.grpc sends it."""
    from tritonclient.grpc import service_pb2

    request = service_pb2.ModelInferRequest(model_name=model, model_version=version)
    tensor = request.inputs.add()
    tensor.name, tensor.datatype = "INPUT0", "FP32"
    tensor.shape.extend([1, 4])
    request.raw_input_contents.append(struct.pack("<4f", 1, 2, 3, 4))
    return bytes(request.SerializeToString())


def command(
    url: str, connections: int, seconds: float, body: Path, headers: Mapping[str, str]
) -> list[str]:
    """``h2load -t1 -c<connections> -m1``: one thread, one connection per client, one stream at
    a time on each (the gRPC analogue of wrk's connections), for ``seconds`` (in ms)."""
    millis = max(1, round(seconds * 1000))
    cmd = ["h2load", "-t1", f"-c{connections}", "-m1", f"-D{millis}ms", "-d", str(body)]
    for name, value in headers.items():
        cmd += ["-H", f"{name}: {value}"]
    return [*cmd, url]


def start(
    url: str,
    connections: int,
    seconds: float,
    body: Path,
    cpus: Sequence[int],
    headers: Mapping[str, str] = HEADERS,
) -> Running:
    return Running(command(url, connections, seconds, body, headers), cpus)


def finish(proc: Running, seconds: float) -> LoadResult:
    done = proc.finish(seconds)
    require_success("h2load", done)
    return parse(done.output, done.cpu_seconds, done.wall_seconds)


def run(url: str, connections: int, seconds: float, body: Path, cpus: Sequence[int]) -> LoadResult:
    return finish(start(url, connections, seconds, body, cpus), seconds)


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _number(pattern: str, out: str) -> re.Match[str]:
    match = re.search(pattern, out, re.MULTILINE)
    if match is None:
        raise BenchError(f"could not read h2load's report ({pattern!r}):\n{out}")
    return match


def parse(out: str, cpu_seconds: float = 0.0, wall_seconds: float = 0.0) -> LoadResult:
    """``finished in``, ``requests:``, ``status codes:``, ``traffic:`` (the DATA bytes) and the
    mean of ``time for request`` (h2load gives min, max, mean and sd, no percentiles)."""
    finished = _number(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    requests = _number(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        out,
    )
    codes = _number(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    traffic = _number(r"^traffic: .*?, ([\d.]+\w*) \((\d+)\) data\s*$", out)
    latency = _number(r"^time for request:\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)\s", out)
    done, failed, timeout = (int(requests.group(i)) for i in (3, 5, 7))
    non_2xx = sum(int(codes.group(i)) for i in (2, 3, 4))
    return LoadResult(
        tool="h2load",
        requests=done,
        seconds=float(finished.group(1)) * _UNITS[finished.group(2)] / 1000.0,
        rps=float(finished.group(3)),
        mean_ms=float(latency.group(1)) * _UNITS[latency.group(2)],
        p50_ms=None,
        p99_ms=None,
        non_2xx=non_2xx,
        # "failed" counts the non-2xx answers too; what is left failed on the stream
        socket_errors=max(0, failed - non_2xx) + timeout,
        load_cpu_seconds=cpu_seconds,
        load_wall_seconds=wall_seconds,
        data_bytes=int(traffic.group(2)),
    )

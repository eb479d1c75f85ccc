"""The benchmark harness (bench/README.md), run for real and small: every scenario asked for is
measured, without errors, with its CPU accounted. No timing thresholds: only the accounting."""

from __future__ import annotations

import http.server
import json
import math
import os
import shutil
import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.support import run_bench

SCENARIOS = ["upstream", "forwarder", "gateway-full", "gateway-hit", "floor-full", "floor-hit"]
NEW_SCENARIOS = ["triton-grpc", "gateway-grpc", "gateway-tensor-json", "gateway-tensor-binary"]


def run_harness(*args: str) -> str:
    """``python -m bench.run`` as a user runs it (``tests.support.run_bench``)."""
    return run_bench("bench.run", *args)


def test_harness_measures_every_scenario(tmp_path: Path) -> None:
    results = tmp_path / "bench.json"
    output = run_harness(
        "--seconds", "1", "--warmup", "0.5", "--concurrency", "4",
        "--scenarios", ",".join(SCENARIOS), "--json", str(results),
    )  # fmt: skip
    assert "pinning: systems under test on core" in output
    data = json.loads(results.read_text())
    rows = {row["scenario"]: row for row in data["rows"]}
    assert sorted(rows) == sorted(SCENARIOS), output
    for name, row in rows.items():
        assert row["concurrency"] == 4, name
        assert row["rps"] > 0, (name, output)
        assert row["errors"] == 0, (name, output)
        assert row["cpu_us_per_request"] > 0, (name, output)
    assert rows["forwarder"]["vs_forwarder"] == pytest.approx(1.0)
    # A hit skips the backend call and the cache write: less CPU per request (accounting, not
    # timing: both are CPU time of the same gateway process divided by requests completed).
    hit, miss = rows["gateway-hit"], rows["gateway-full"]
    assert hit["cpu_us_per_request"] < miss["cpu_us_per_request"], output


def test_harness_measures_grpc_and_the_large_tensor(tmp_path: Path) -> None:
    """gRPC with h2load (Triton straight, and through the gateway) and the 1x3x224x224 tensor
    as JSON and as binary tensor data: no errors by h2load's count nor by the servers' own
    (their metrics), the load generator's own CPU measured, the ratios computed; the JSON body
    costs the gateway more CPU than the binary one (accounting, not timing)."""
    from bench.systems import triton_available

    results = tmp_path / "bench.json"
    output = run_harness(
        "--seconds", "1", "--warmup", "0.5", "--concurrency", "4",
        "--scenarios", ",".join(NEW_SCENARIOS), "--json", str(results),
    )  # fmt: skip
    data = json.loads(results.read_text())
    rows = {row["scenario"]: row for row in data["rows"]}
    grpc = ["triton-grpc", "gateway-grpc"]
    why = triton_available()
    if why is not None:  # no model servers here: the gRPC scenarios say so and why
        assert sorted(data["skipped"]) == grpc, output
        assert sorted(rows) == ["gateway-tensor-binary", "gateway-tensor-json"], output
    else:
        assert sorted(rows) == sorted(NEW_SCENARIOS), output
    for name, row in rows.items():
        assert row["tool"] == ("h2load" if name in grpc else "wrk"), name
        assert row["rps"] > 0, (name, output)
        assert row["errors"] == 0, (name, output)
        assert row["cpu_us_per_request"] > 0, (name, output)
        assert row["load_cpu_us_per_request"] > 0, (name, output)
        assert 0 < row["load_utilisation"] <= 1.1, (name, output)
        assert row["mean_ms"] > 0, (name, output)
    json_cpu = rows["gateway-tensor-json"]["cpu_us_per_request"]
    assert json_cpu > rows["gateway-tensor-binary"]["cpu_us_per_request"], output
    ratios = {(r["scenario"], r["against"]): r for r in data["ratios"]}
    assert ratios["gateway-tensor-json", "gateway-tensor-binary"]["cpu_ratio"] > 1
    if why is None:
        for name in grpc:
            row = rows[name]
            assert row["p50_ms"] is None
            assert row["p99_ms"] is None
            assert row["server_errors"] == 0, (name, output)
            assert row["unanswered"] == 0, (name, output)
            # the server counted the calls h2load completed (give or take those in flight
            # when h2load stopped)
            assert abs(row["server_ok"] - row["requests"]) <= 4, (name, row, output)
        pair = ratios["gateway-grpc", "triton-grpc"]
        assert pair["cpu_ratio"] == pytest.approx(
            rows["gateway-grpc"]["cpu_us_per_request"] / rows["triton-grpc"]["cpu_us_per_request"]
        )
    assert "gateway-tensor-json" in output
    assert "CPU ratio" in output


def test_harness_against_a_baseline_gateway(tmp_path: Path) -> None:
    """``--baseline-gateway``: a twin ``<name>@base`` right after each gateway scenario, on the
    other installation's gateways (here this venv's own, so the same code), and the pairs'
    ratios in the JSON and the printed table."""
    results = tmp_path / "bench.json"
    gateway = str(Path(sys.executable).with_name("gateway"))
    output = run_harness(
        "--seconds", "1", "--warmup", "0", "--concurrency", "4",
        "--scenarios", "gateway-v2,gateway-full", "--json", str(results),
        "--baseline-gateway", gateway,
    )  # fmt: skip
    data = json.loads(results.read_text())
    order = [row["scenario"] for row in data["rows"]]
    assert order == ["gateway-v2", "gateway-v2@base", "gateway-full", "gateway-full@base"]
    for row in data["rows"]:
        assert row["errors"] == 0, (row["scenario"], output)
        assert row["cpu_us_per_request"] > 0, (row["scenario"], output)
    assert data["gateways"]["baseline"]["executable"] == gateway
    assert "the baseline gateway runs the same code" in output
    pairs = {p["scenario"]: p for p in data["against_baseline"]}
    assert sorted(pairs) == ["gateway-full", "gateway-v2"]
    for name, pair in pairs.items():
        assert pair["baseline_scenario"] == name + "@base"
        assert pair["cpu_ratio"] == pytest.approx(
            pair["cpu_us_per_request"] / pair["base_cpu_us_per_request"]
        )
        assert pair["rps_ratio"] == pytest.approx(pair["rps"] / pair["base_rps"])
        assert len(pair["cpu_ratio_rounds"]) == 1
    assert "against the baseline gateway" in output


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--baseline-gateway", "/nonexistent/gateway"], "is not an executable file"),
        (["--baseline-gateway", sys.executable, "--scenarios", "forwarder"], "gateway-*"),
        (["--baseline-gateway", sys.executable, "--soak", "5"], "--soak"),
    ],
)
def test_baseline_gateway_option_is_checked(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.run import parse_args

    with pytest.raises(SystemExit):
        parse_args(argv)
    assert problem in capsys.readouterr().err


class _Recorder(http.server.BaseHTTPRequestHandler):
    """Answers every POST with 200 and keeps its body (keep-alive, as wrk expects)."""

    protocol_version = "HTTP/1.1"
    bodies: ClassVar[list[bytes]] = []
    headers_seen: ClassVar[list[dict[str, str]]] = []

    def do_POST(self) -> None:
        self.headers_seen.append({k.lower(): v for k, v in self.headers.items()})
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        pass


def _wrk_bodies(script: str, tmp_path: Path) -> list[dict[str, Any]]:
    """Every body one short wrk run of ``script`` sends to a local recording server."""
    from bench.wrk import run

    _Recorder.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "unique.lua"
        path.write_text(script)
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/linear/infer"
        result = run(url, 2, 1.0, path, sorted(os.sched_getaffinity(0)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.errors == 0
    assert len(_Recorder.bodies) > 10
    return [json.loads(body) for body in _Recorder.bodies]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install -y wrk)")
def test_miss_bodies_differ_in_their_tensor_data(tmp_path: Path) -> None:
    """The cache-miss script: every request has its own ``id`` and its own input data (a
    gateway may key its cache on the decoded tensors alone), valid JSON with finite numbers
    that are exact in FP32; two scripts (a warm-up and a measured run) share no data. And the
    Lua script builds the very body ``unique_body`` describes, past the 2**24 wrap too."""
    from bench.wrk import BODY, FP32_EXACT, lua_script, unique_body

    runs = []
    for start in (0, FP32_EXACT - 3):
        script = lua_script({"X-API-Key": "k"}, unique=True)
        assert "local n = 0\n" in script
        bodies = _wrk_bodies(script.replace("local n = 0\n", f"local n = {start}\n"), tmp_path)
        data = []
        for body in bodies:
            (tensor,) = body["inputs"]
            assert tensor["shape"] == [1, 4]
            assert tensor["datatype"] == "FP32"
            values = tensor["data"]
            assert len(values) == 4
            assert all(isinstance(v, int) and 0 <= v < FP32_EXACT for v in values), values
            assert all(math.isfinite(float(v)) and float(v) == v for v in values)
            prefix, _, n = body["id"].rpartition("-")
            assert int(n) > start
            expected = unique_body(prefix, values[1], int(n))
            assert json.loads(expected) == body
            assert len(expected) <= len(BODY) + 72  # one size class
            data.append(tuple(values))
        assert len(set(data)) == len(data), "two requests with the same tensor data"
        assert len({b["id"] for b in bodies}) == len(bodies)
        runs.append(set(data))
    assert not runs[0] & runs[1]
    assert unique_body("x", 1_234_567, FP32_EXACT + 5).endswith('"data":[5,1234567,4,4]}]}')


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install -y wrk)")
def test_a_body_file_is_sent_as_it_is(tmp_path: Path) -> None:
    """The large tensor's wrk script sends the file's bytes untouched (binary, any size) with
    the scenario's headers; the binary body is the JSON body's tensor, as FP32 bytes."""
    import numpy as np

    from bench import tensor
    from bench.wrk import lua_script

    bodies = tensor.write(tmp_path)
    sent = bodies.binary.read_bytes()
    header = json.loads(sent[: bodies.header_length])
    (spec,) = header["inputs"]
    assert spec["shape"] == [1, 3, 224, 224]
    assert spec["datatype"] == "FP32"
    assert spec["parameters"]["binary_data_size"] == bodies.data_bytes == 602_112
    assert len(sent) == bodies.header_length + bodies.data_bytes
    values = json.loads(bodies.json.read_bytes())["inputs"][0]["data"]
    raw = np.frombuffer(sent[bodies.header_length :], dtype="<f4")
    assert np.array_equal(np.asarray(values, dtype=np.float32), raw)

    headers = {tensor.HEADER: str(bodies.header_length)}
    script = lua_script(headers, False, bodies.binary, tensor.BINARY_CONTENT_TYPE)
    _Recorder.bodies, _Recorder.headers_seen = [], []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        path = tmp_path / "tensor.lua"
        path.write_text(script)
        from bench.wrk import run

        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/tensor/infer"
        result = run(url, 1, 1.0, path, sorted(os.sched_getaffinity(0)))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert result.errors == 0
    assert result.requests > 0
    assert _Recorder.bodies
    assert all(body == sent for body in _Recorder.bodies)
    assert all(
        h[tensor.HEADER.lower()] == str(bodies.header_length) for h in _Recorder.headers_seen
    )
    assert all(h["content-type"] == tensor.BINARY_CONTENT_TYPE for h in _Recorder.headers_seen)
    assert result.load_cpu_seconds > 0
    assert result.mean_ms > 0


H2LOAD_REPORT = """
finished in 3.00s, 3407.67 req/s, 304.32KB/s
requests: 10223 total, 10239 started, 10223 done, 10221 succeeded, 2 failed, 0 errored, 0 timeout
status codes: 10221 2xx, 0 3xx, 0 4xx, 2 5xx
traffic: 912.95KB (934858) total, 31.12KB (31869) headers (space savings 96.15%), 469.22KB (480481) data
                     min         max         mean         sd        +/- sd
time for request:      409us     13.91ms      4.68ms      1.27ms    64.31%
time for connect:       84us       272us       187us        55us    62.50%
time to 1st byte:     2.57ms      8.27ms      5.69ms      1.67ms    62.50%
req/s           :     212.63      213.30      212.94        0.22    56.25%
"""  # noqa: E501 (h2load 1.52's report, as printed)


def test_h2load_report_is_read() -> None:
    from bench.h2load import frame, parse, unframe

    result = parse(H2LOAD_REPORT, cpu_seconds=0.3, wall_seconds=3.1)
    assert (result.tool, result.requests, result.rps) == ("h2load", 10223, 3407.67)
    assert result.seconds == 3.0
    assert result.mean_ms == pytest.approx(4.68)
    assert result.p50_ms is None
    assert result.p99_ms is None
    assert (result.non_2xx, result.socket_errors, result.errors) == (2, 0, 2)
    assert result.data_bytes == 480481
    assert result.load_cpu_us_per_request == pytest.approx(0.3e6 / 10223)
    assert result.utilisation == pytest.approx(0.3 / 3.1)
    assert unframe(frame(b"abc")) == b"abc"
    assert frame(b"abc")[:5] == b"\0\0\0\0\3"

"""``python -m bench.instructions`` (bench/README.md, "Instructions per request (callgrind)"):
the totals read from a callgrind dump, its options, the counted keep-alive client, and one small
run for real under valgrind."""

from __future__ import annotations

import http.server
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import ClassVar

import pytest

from bench import callgrind, instructions, keepalive, scenarios, systems
from bench.procs import Proc
from bench.wrk import BODY
from tests.support import run_bench

# The head and the end of a dump as `callgrind_control -d` writes it (valgrind 3.19).
DUMP = """# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 22336
cmd:  /usr/bin/python3 srv.py
part: 1

desc: I1 cache:
desc: Timerange: Basic block 1056213 - 7393467
desc: Trigger: Client Request: dump

positions: line
events: Ir
summary: 0


ob=(1) /usr/bin/python3.11
fl=(1) ???
fn=(1) _PyEval_EvalFrameDefault
0 58925085

totals: 58925085
"""


def test_the_totals_line_gives_the_instructions() -> None:
    assert callgrind.totals(DUMP) == 58925085


def test_the_event_is_found_among_several_and_summary_serves_without_totals() -> None:
    text = "events: Dr Ir Dw\nsummary: 7 1234 9\n"
    assert callgrind.totals(text) == 1234
    assert callgrind.totals(text, "Dw") == 9
    assert callgrind.totals("events: Ir Dr\ntotals: 55\n", "Dr") == 0  # a trailing 0 left out
    both = "events: Ir\nsummary: 10\nfn=(1) summary: x\ntotals: 20\n"
    assert callgrind.totals(both) == 20


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("totals: 5\n", "no 'events:' line"),
        ("events: Dr\ntotals: 5\n", "no Ir among the events ['Dr']"),
        ("events: Ir\n", "neither a 'totals:' nor a 'summary:' line"),
        ("events: Ir\ntotals: many\n", "unreadable 'totals' line"),
    ],
)
def test_an_unreadable_dump_says_why(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match="callgrind dump") as caught:
        callgrind.totals(text)
    assert problem in str(caught.value)


def test_the_numbered_dumps_of_one_process_are_found(tmp_path: Path) -> None:
    for name in ("callgrind.41", "callgrind.41.1", "callgrind.41.12", "callgrind.412.3", "x.41.2"):
        (tmp_path / name).write_text("")
    found = callgrind.dumps(tmp_path, 41)
    assert found == {1: tmp_path / "callgrind.41.1", 12: tmp_path / "callgrind.41.12"}


def test_the_wrapper_runs_the_console_scripts_python(tmp_path: Path) -> None:
    script = tmp_path / "gateway"
    script.write_text(f"#!{sys.executable}\nprint('hi')\n")
    wrap = callgrind.wrap("/usr/bin/valgrind", tmp_path)
    assert wrap == (
        "/usr/bin/valgrind",
        "--tool=callgrind",
        "--instr-atstart=no",
        f"--callgrind-out-file={tmp_path}/callgrind.%p",
    )
    launch = systems.Launch(wrap, 300.0)
    assert launch.command(str(script)) == [*wrap, sys.executable, str(script)]
    assert systems.DIRECT.command(str(script)) == [str(script)]


def test_the_python_references_start_wrapped_too(tmp_path: Path) -> None:
    """The forwarder and the floor run as ``python -m`` on the harness's Python, behind the
    same wrapper as the gateways, and wait as long as a wrapped gateway for their port."""
    wrap = callgrind.wrap("/usr/bin/valgrind", tmp_path)
    launch = systems.Launch(wrap, 300.0)
    assert launch.module("bench.forwarder", "--port", "1") == [
        *wrap, sys.executable, "-m", "bench.forwarder", "--port", "1"
    ]  # fmt: skip
    assert systems.DIRECT.module("bench.floor") == [sys.executable, "-m", "bench.floor"]
    assert (launch.started, systems.DIRECT.started) == (300.0, 30.0)


def test_the_references_are_scenarios_to_count() -> None:
    args = instructions.parse_args(["--scenarios", "forwarder,floor-full,floor-hit,gateway-v2"])
    assert args.scenarios == ["forwarder", "floor-full", "floor-hit", "gateway-v2"]


def test_a_slow_gateways_full_config_waits_for_its_store() -> None:
    pem = Path("/k.pem")
    usual = systems.full_routes("http://127.0.0.1:1", pem)
    assert "cache: {ttl: 30s}" in usual
    assert "store_timeout" not in usual
    slow = systems.full_routes("http://127.0.0.1:1", pem, slow=True)
    assert "cache: {ttl: 1h}" in slow
    assert "\nrate_limits: {store_timeout: 30s}\n" in slow


def test_the_defaults() -> None:
    args = instructions.parse_args([])
    assert args.scenarios == ["gateway-v2", "gateway-full", "gateway-hit"]
    assert (args.requests, args.concurrency, args.warmup, args.rounds) == (800, 16, 200, 2)
    assert args.idle == 5.0
    assert args.baseline_gateway is None
    assert args.json is None
    assert args.cpus
    assert args.load_cpus


def test_the_options_are_read(tmp_path: Path) -> None:
    script = tmp_path / "gateway"
    script.write_text(f"#!{sys.executable}\n")
    script.chmod(0o755)
    args = instructions.parse_args(
        ["--scenarios", "gateway-hit, gateway-v2", "--requests", "50", "--concurrency", "4",
         "--warmup", "0", "--rounds", "3", "--baseline-gateway", str(script),
         "--json", str(tmp_path / "out.json"), "--cpus", "0", "--load-cpus", "0"]
    )  # fmt: skip
    assert args.scenarios == ["gateway-hit", "gateway-v2"]
    assert (args.requests, args.concurrency, args.warmup, args.rounds) == (50, 4, 0, 3)
    assert args.baseline_gateway == str(script)
    assert args.json == tmp_path / "out.json"
    assert (args.cpus, args.load_cpus) == ([0], [0])


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--scenarios", "gateway-v3"], "unknown or not a Python HTTP scenario: ['gateway-v3']"),
        (["--scenarios", "nginx-proxy"], "not a Python HTTP scenario: ['nginx-proxy']"),
        (["--scenarios", "gateway-grpc"], "not a Python HTTP scenario: ['gateway-grpc']"),
        (["--requests", "0"], "--requests >= 1"),
        (["--rounds", "0"], "--rounds >= 1"),
        (["--warmup", "-1"], "--warmup >= 0"),
        (["--timeout", "0"], "--timeout > 0"),
        (["--idle", "-1"], "--idle >= 0"),
        (["--baseline-gateway", "/nonexistent/gateway"], "is not an executable file"),
    ],
)
def test_bad_options_are_refused(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        instructions.parse_args(argv)
    assert problem in capsys.readouterr().err


def test_a_baseline_without_its_python_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = tmp_path / "gateway"
    binary.write_bytes(b"\x7fELF")
    binary.chmod(0o755)
    with pytest.raises(SystemExit):
        instructions.parse_args(["--baseline-gateway", str(binary)])
    assert "has no #! line naming its Python" in capsys.readouterr().err


def test_rounds_are_summarised_and_paired_with_the_baseline() -> None:
    def rounds(*per: float) -> list[dict[str, float]]:
        return [{"ir_per_request": p} for p in per]

    rows = {
        "gateway-v2": instructions.summarise("gateway-v2", rounds(900.0, 1000.0, 1100.0)),
        "gateway-v2@base": instructions.summarise(
            "gateway-v2@base", rounds(1000.0, 1000.0, 1000.0)
        ),
        "gateway-hit": instructions.summarise("gateway-hit", rounds(500.0)),
    }
    assert rows["gateway-v2"]["median"] == 1000.0
    assert rows["gateway-v2"]["spread"] == pytest.approx(0.2)
    pairs = instructions.compare(rows)
    assert [p["scenario"] for p in pairs] == ["gateway-v2"]  # gateway-hit has no twin
    assert pairs[0]["ratio"] == 1.0
    assert pairs[0]["round_ratios"] == pytest.approx([0.9, 1.0, 1.1])
    assert "0.900, 1.000, 1.100" in instructions.compare_table(pairs)
    assert "gateway-v2@base" in instructions.table(list(rows.values()), 3)


def test_the_idle_rate_is_kept_beside_the_figures() -> None:
    rounds = [
        {"ir_per_request": 900.0, "idle_ir_per_second": 4e6},
        {"ir_per_request": 1100.0, "idle_ir_per_second": 6e6},
    ]
    row = instructions.summarise("gateway-hit", rounds)
    assert row["median"] == 1000.0
    assert row["idle_ir_per_second"] == 5e6
    assert "5.00 M" in instructions.table([row], 2)


def _scenario(tmp_path: Path, **fields: object) -> scenarios.Scenario:
    proc = Proc("nobody", None, tmp_path / "log")  # type: ignore[arg-type]
    return scenarios.Scenario("gateway-full", "http://127.0.0.1:1/v2", proc, **fields)  # type: ignore[arg-type]


def test_misses_differ_in_their_tensor_data_and_a_hit_run_sends_one_body(tmp_path: Path) -> None:
    miss = _scenario(tmp_path, headers={"X-API-Key": "k"}, unique=True, cache="fwd=miss")
    build = instructions.request_builder(miss)
    bodies = [json.loads(build(n)[0]) for n in (1, 2, 3)]
    assert len({json.dumps(b["inputs"][0]["data"]) for b in bodies}) == 3
    assert build(1)[1] == {"Content-Type": "application/json", "X-API-Key": "k"}
    plain = _scenario(tmp_path)
    assert instructions.request_builder(plain)(7)[0] == BODY.encode()
    hit = _scenario(tmp_path, cache="hit")
    first, again = instructions.request_builder(hit), instructions.request_builder(hit)
    assert first(1)[0] == first(2)[0] != again(1)[0]  # one body per run, a fresh entry
    assert json.loads(first(1)[0])["inputs"][0]["data"][:3] == [1, 2, 3]


def test_answers_are_judged_like_the_harness_check(tmp_path: Path) -> None:
    judge = instructions.judge(_scenario(tmp_path, cache="fwd=miss", limited=True))
    good = b'{"outputs": []}'
    headers = {"cache-status": "gateway; fwd=miss", "ratelimit": "limit=1"}
    assert judge(200, headers, good) == []
    assert judge(503, headers, good) == ["status 503"]
    assert judge(200, {"ratelimit": "x"}, good) == ["Cache-Status '', expected fwd=miss"]
    assert judge(200, {"cache-status": "fwd=miss"}, good) == [
        "no RateLimit header: the rate limit is not applied"
    ]
    assert judge(200, headers, b"[]") == ["the reply is not a JSON object"]


class _Answering(http.server.BaseHTTPRequestHandler):
    """Answers every POST over keep-alive: 200 with its body echoed, 500 for a body ``fail``;
    counts the connections it served."""

    protocol_version = "HTTP/1.1"
    connections: ClassVar[set[int]] = set()

    def do_POST(self) -> None:
        self.connections.add(id(self.connection))
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(500 if body == b"fail" else 200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Seen", self.headers.get("X-Test", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[str]:
    _Answering.connections = set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answering)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v2/models/linear/infer"
    server.shutdown()
    server.server_close()
    thread.join(5)


def test_exactly_n_requests_over_c_kept_connections(answering: str) -> None:
    seen: list[tuple[int, str, bytes]] = []

    def judge(status: int, headers: dict[str, str], body: bytes) -> list[str]:
        seen.append((status, headers["x-seen"], body))
        return []

    sent = keepalive.send(answering, 50, 4, lambda n: (f"r{n}".encode(), {"X-Test": "t"}), judge)
    assert (sent.requests, sent.failed, sent.problems) == (50, 0, [])
    assert sorted(body for _, _, body in seen) == sorted(f"r{n}".encode() for n in range(1, 51))
    assert {(status, header) for status, header, _ in seen} == {(200, "t")}
    assert len(_Answering.connections) == 4


def test_failed_answers_are_counted_and_the_first_kept(answering: str) -> None:
    def build(n: int) -> tuple[bytes, dict[str, str]]:
        return (b"fail" if n % 2 else b"ok"), {}

    def judge(status: int, headers: dict[str, str], body: bytes) -> list[str]:
        return [] if status == 200 else [f"status {status}"]

    sent = keepalive.send(answering, 20, 2, build, judge)
    assert (sent.requests, sent.failed) == (20, 10)
    assert len(sent.problems) == keepalive.KEPT
    assert all(p.endswith(": status 500") for p in sent.problems)


def test_a_refused_connection_is_a_failure_per_request() -> None:
    sent = keepalive.send("http://127.0.0.1:1/x", 3, 2, lambda n: (b"", {}), lambda *a: [])
    assert (sent.requests, sent.failed) == (0, 3)
    assert "no answer" in sent.problems[0]


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Answers every POST like gateway-full's miss (200, outputs, Cache-Status, RateLimit) and
    keeps the bodies it was sent."""

    protocol_version = "HTTP/1.1"
    bodies: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        self.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        reply = b'{"outputs": []}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.send_header("Cache-Status", "model-gateway; fwd=miss; stored")
        self.send_header("RateLimit", '"default";r=99;t=1')
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Counter:
    """callgrind.Counter's ``count`` without valgrind: 1,000 instructions whatever was done."""

    def count(self, action: Callable[[], float]) -> tuple[int, float]:
        return 1000, action()


def test_a_round_warms_up_then_counts_requests_no_warm_up_sent(tmp_path: Path) -> None:
    """Every miss of a round, warm-up and measured alike, carries tensor data of its own."""
    _Gateway.bodies = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Gateway)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v2/models/linear/infer"
        proc = Proc("gateway", alive, tmp_path / "log")
        s = scenarios.Scenario("gateway-full", url, proc, {}, True, "fwd=miss", True)
        argv = ["--requests", "30", "--warmup", "12", "--concurrency", "3", "--idle", "0.2"]
        args = instructions.parse_args(argv)
        row = instructions.measure(s, _Counter(), 1, args)  # type: ignore[arg-type]
    finally:
        alive.kill()
        alive.wait()
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert row["ir"] == 1000
    assert row["warnings"] == []
    assert row["idle_ir_per_second"] == 1000 / 0.2  # the fake counts 1,000 in 0.2 s idle
    assert row["ir_per_request"] == pytest.approx(1000 / 30)
    assert len(_Gateway.bodies) == 42
    data = {json.dumps(json.loads(b)["inputs"][0]["data"]) for b in _Gateway.bodies}
    assert len(data) == 42


@pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
    reason="needs valgrind (apt-get install -y valgrind)",
)
def test_a_small_run_under_callgrind(tmp_path: Path) -> None:
    """gateway-v2 under callgrind, 40 requests after 10: a count per request in the table and
    the JSON, in the range a Python gateway's request takes (not a timing: instructions)."""
    results = tmp_path / "instructions.json"
    output = run_bench(
        "bench.instructions", "--scenarios", "gateway-v2", "--requests", "40",
        "--concurrency", "4", "--warmup", "10", "--rounds", "1", "--json", str(results),
        timeout=240,
    )  # fmt: skip
    data = json.loads(results.read_text())
    [row] = data["rows"]
    assert row["scenario"] == "gateway-v2", output
    [measured] = row["rounds"]
    assert measured["ir"] == pytest.approx(measured["ir_per_request"] * 40)
    assert 50_000 < row["median"] < 50_000_000, output
    assert data["valgrind"].startswith("valgrind-"), output
    assert "gateway-v2" in output
    assert "Ir/req" in output


@pytest.mark.skipif(
    shutil.which("valgrind") is None or shutil.which("callgrind_control") is None,
    reason="needs valgrind (apt-get install -y valgrind)",
)
def test_the_forwarder_counted_under_callgrind(tmp_path: Path) -> None:
    """The fixed reference in the same units: the forwarder (uvicorn, Starlette and aiohttp)
    under callgrind, in the range of a Python proxy's request."""
    results = tmp_path / "instructions.json"
    output = run_bench(
        "bench.instructions", "--scenarios", "forwarder", "--requests", "40",
        "--concurrency", "4", "--warmup", "10", "--rounds", "1", "--idle", "0",
        "--json", str(results), timeout=240,
    )  # fmt: skip
    [row] = json.loads(results.read_text())["rows"]
    assert row["scenario"] == "forwarder", output
    assert 50_000 < row["median"] < 50_000_000, output


def test_warnings_the_gateway_logs_while_counted_are_kept(tmp_path: Path) -> None:
    log = tmp_path / "gateway.log"
    early = '{"level": "warning", "message": "bulk readiness failed"}\n'
    log.write_text(early)
    offset = log.stat().st_size
    late = [
        '{"level": "warning", "logger": "gateway.limits", "message": "limit store unavailable"}',
        '{"level": "error", "message": "boom"}',
    ]
    with log.open("a") as file:
        file.write('==123== sending command dump to pid 123\n{"level": "info", "message": "x"}\n')
        file.write("\n".join(late) + "\n")
    assert instructions.log_warnings(log, offset) == late
    assert instructions.log_warnings(log, 0) == [early.strip(), *late]
    assert instructions.log_warnings(tmp_path / "none.log", 0) == []

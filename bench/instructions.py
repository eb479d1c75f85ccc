"""Instructions per request of a gateway process (or a Python reference), counted by
valgrind's callgrind: a cost that depends far less than CPU time on what else runs on the
machine.

    .venv/bin/python -m bench.instructions --scenarios gateway-v2,gateway-full,gateway-hit \\
        [--requests 800] [--concurrency 16] [--warmup 200] [--rounds 2] [--idle 5] \\
        [--baseline-gateway /path/to/other/venv/bin/gateway] [--json PATH] [--keep]

The systems of bench.run's scenarios (bench/scenarios.py ``start``), but every gateway, and the
Python references when asked for (``forwarder``, ``floor-full``, ``floor-hit``: the same units
for the goals' reference and for the work's floor), runs under
``valgrind --tool=callgrind --instr-atstart=no``; the upstream nginx and Redis run natively on
the load cores. For each round, each scenario in turn (its ``@base`` twin right after it): a
warm-up of W requests uninstrumented, then ``callgrind_control -z`` and ``-i on``, exactly N
requests at concurrency C (bench/keepalive.py, every answer checked like bench.run's check:
200, the reply's JSON, Cache-Status, RateLimit), ``-i off`` and ``-d``; the dump's total ``Ir``
over N is the row's figure; then ``--idle`` seconds counted with no request (the idle rate,
a diagnostic). Prints a table and writes bench/results/<UTC>-instructions.json.
See bench/README.md, "Instructions per request (callgrind)".
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import callgrind, keepalive, run, scenarios, systems
from bench.procs import (
    BenchError,
    Processes,
    cpu_list,
    find_tool,
    processes,
    stop_on_signals,
)
from bench.wrk import BODY, new_nonce, unique_body

# the gateway scenarios over HTTP/1.1 (the gRPC ones need h2load), and the Python references
# in the same units: the forwarder and the floor
REFERENCES = {"forwarder"} | scenarios.FLOOR
CHOICES = [
    n for n in scenarios.SCENARIOS if n in (scenarios.GATEWAYS - scenarios.GRPC) | REFERENCES
]
DEFAULT = ["gateway-v2", "gateway-full", "gateway-hit"]
LOUD = re.compile(r'"level": "(warning|error|critical)"')
LEGEND = (
    "Ir/req: instructions the process under test executed (callgrind's Ir, every thread) while "
    "the N measured requests ran, over N; spread: (max - min) / median of the rounds; idle "
    "Ir/s: what it executes with no request (counted --idle seconds after each run), part of "
    "which the figure carries in proportion to the run's wall time"
)


def _names(text: str) -> list[str]:
    names = [p.strip() for p in text.split(",") if p.strip()]
    unknown = [n for n in names if n not in CHOICES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown or not a Python HTTP scenario: {unknown}; known: {', '.join(CHOICES)}"
        )
    return names


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add = parser.add_argument
    add("--scenarios", type=_names, default=DEFAULT, help="a,b,... (" + ",".join(DEFAULT) + ")")
    add("--requests", type=int, default=800, help="measured requests per scenario (800)")
    add("--concurrency", type=int, default=16, help="keep-alive connections (16)")
    add("--warmup", type=int, default=200, help="uninstrumented requests before each (200)")
    add("--rounds", type=int, default=2, help="rounds; each figure and the median (2)")
    add("--cpus", type=run._cpus, help="core of the gateways (0: the first core)")
    add("--load-cpus", type=run._cpus, help="cores of the client, upstream, redis (the others)")
    add(
        "--idle",
        type=float,
        default=5.0,
        help="seconds counted with no request after each run: the idle rate (5; 0: none)",
    )
    add("--timeout", type=float, default=600.0, help="for a gateway under valgrind to get ready")
    add("--json", type=Path, help="where to write the results (bench/results/<UTC>-...json)")
    add("--keep", action="store_true", help="keep the work directory (the callgrind dumps)")
    add(
        "--baseline-gateway",
        metavar="PATH",
        help="the gateway executable of another installation: every scenario gets a twin "
        "<name>@base on it, right after it, and the table shows new/base",
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("--requests >= 1, --concurrency >= 1, --warmup >= 0, --rounds >= 1")
    if args.timeout <= 0 or args.idle < 0:
        parser.error("--timeout > 0, --idle >= 0")
    if args.cpus is None:
        args.cpus = [min(os.sched_getaffinity(0))]
    if args.load_cpus is None:
        args.load_cpus = sorted(os.sched_getaffinity(0) - set(args.cpus)) or list(args.cpus)
    if args.baseline_gateway is not None:
        found = Path(args.baseline_gateway).expanduser().absolute()
        if not found.is_file() or not os.access(found, os.X_OK):
            parser.error(f"--baseline-gateway: {args.baseline_gateway} is not an executable file")
        if systems.interpreter(str(found)) is None:
            parser.error(f"--baseline-gateway: {found} has no #! line naming its Python")
        args.baseline_gateway = str(found)
    return args


def request_builder(s: scenarios.Scenario) -> keepalive.Build:
    """Request n of scenario ``s``, as its wrk script sends it: a file's body, the fixed v2
    body, or (misses) a body unique in its tensor data. A hit sends the v2 body with its last
    input a number drawn for each call of this: the run's first request stores a fresh entry
    (the cache's TTL counts from then), every later one hits it."""
    kind = s.body.content_type if s.body else "application/json"
    headers = {"Content-Type": kind, **s.headers}
    nonce = new_nonce()
    if s.body is not None:
        fixed = s.body.path.read_bytes()
    elif s.unique:
        prefix = f"cg{nonce:x}"
        return lambda n: (unique_body(prefix, nonce, n).encode(), headers)
    elif s.cache == "hit":
        fixed = BODY.replace("[1,2,3,4]", f"[1,2,3,{nonce}]").encode()
    else:
        fixed = BODY.encode()
    return lambda n: (fixed, headers)


def judge(s: scenarios.Scenario) -> keepalive.Judge:
    return lambda status, headers, body: scenarios.problems(s, status, headers, body)


def _send(
    s: scenarios.Scenario,
    build: keepalive.Build,
    requests: int,
    concurrency: int,
    warm_up: bool = False,
) -> float:
    """``requests`` requests of ``s``, every answer as it should be (a warm-up's Cache-Status
    is not judged: a hit's first requests fill the entry); how long they took."""
    judged = replace(s, cache=None) if warm_up else s
    sent = keepalive.send(s.url, requests, concurrency, build, judge(judged))
    if sent.failed or sent.requests != requests:
        what = f"{s.name} warm-up" if warm_up else s.name
        raise BenchError(
            f"{what}: {sent.requests} of {requests} answered, {sent.failed} failed: "
            + "; ".join(sent.problems)
        )
    return sent.seconds


def measure(
    s: scenarios.Scenario, counter: callgrind.Counter, round_: int, args: argparse.Namespace
) -> dict[str, Any]:
    """A warm-up, then the N counted requests: the round's figures."""
    build = request_builder(s)
    warmup = max(args.warmup, 1 if s.cache == "hit" else 0)  # a hit needs its entry
    if warmup:
        _send(s, build, warmup, args.concurrency, warm_up=True)

    def measured(n: int) -> tuple[bytes, dict[str, str]]:
        return build(warmup + n)  # misses: bodies none of the warm-up's sent

    logged = _log_size(s.sut.log)
    ir, seconds = counter.count(lambda: _send(s, measured, args.requests, args.concurrency))
    if not s.sut.alive():
        raise BenchError(f"{s.sut.name} died during {s.name}:\n{s.sut.log_tail()}")
    row = {"round": round_, "ir": ir, "ir_per_request": ir / args.requests, "seconds": seconds}
    if args.idle > 0:  # what the process executes with no request, per second
        row["idle_ir_per_second"] = counter.count(lambda: time.sleep(args.idle))[0] / args.idle
    row["warnings"] = warnings = log_warnings(s.sut.log, logged)
    if warnings:
        print(
            f"bench: WARNING: {s.sut.name} logged {len(warnings)} warning(s) while {s.name}'s "
            f"requests were counted (its work was not the usual): {warnings[0]}",
            file=sys.stderr,
        )
    print(
        f"  round {round_} {s.name:22s} {row['ir_per_request']:12,.0f} Ir/req"
        f"  ({args.requests} requests in {seconds:.1f} s)"
        + (f", idle {row['idle_ir_per_second'] / 1e6:.2f} M Ir/s" if args.idle > 0 else ""),
        file=sys.stderr,
        flush=True,
    )
    return row


def _log_size(log: Path) -> int:
    try:
        return log.stat().st_size
    except OSError:
        return 0


def log_warnings(log: Path, offset: int) -> list[str]:
    """The gateway's JSON log lines at level warning or above written past ``offset``."""
    try:
        with log.open("rb") as file:
            file.seek(offset)
            text = file.read().decode(errors="replace")
    except OSError:
        return []
    return [line for line in text.splitlines() if LOUD.search(line)]


def _median(rounds: list[dict[str, Any]], key: str) -> tuple[float, float]:
    """The median of ``key`` over the rounds and its spread, (max - min) / median."""
    per = [r[key] for r in rounds]
    median = statistics.median(per)
    return median, (max(per) - min(per)) / median if median else 0.0


def summarise(name: str, rounds: list[dict[str, Any]]) -> dict[str, Any]:
    median, spread = _median(rounds, "ir_per_request")
    row = {"scenario": name, "rounds": rounds, "median": median, "spread": spread}
    if all("idle_ir_per_second" in r for r in rounds):
        row["idle_ir_per_second"] = _median(rounds, "idle_ir_per_second")[0]
    return row


def compare(rows: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each scenario against its ``@base`` twin: the ratio of the medians and of each round."""
    out = []
    for name, row in rows.items():
        base = rows.get(scenarios.twin(name))
        if base is None or name != scenarios.original(name):
            continue
        pairs = zip(row["rounds"], base["rounds"], strict=False)
        out.append(
            {
                "scenario": name,
                "new": row["median"],
                "base": base["median"],
                "ratio": row["median"] / base["median"],
                "round_ratios": [a["ir_per_request"] / b["ir_per_request"] for a, b in pairs],
            }
        )
    return out


def table(rows: list[dict[str, Any]], rounds: int) -> str:
    head = f"{'scenario':22s}" + "".join(f" {'round ' + str(i):>11s}" for i in range(1, rounds + 1))
    lines = [head + f" {'median':>11s} {'spread':>6s}  idle Ir/s"]
    for row in rows:
        figures = "".join(f" {r['ir_per_request']:11,.0f}" for r in row["rounds"])
        line = f"{row['scenario']:22s}{figures} {row['median']:11,.0f} {row['spread']:6.1%}"
        if "idle_ir_per_second" in row:
            line += f"  {row['idle_ir_per_second'] / 1e6:6.2f} M"
        lines.append(line)
    return "\n".join(lines)


def compare_table(pairs: list[dict[str, Any]]) -> str:
    head = f"{'scenario':22s} {'new Ir/req':>11s} {'base Ir/req':>12s} {'new/base':>8s}"
    lines = [head + "  rounds (new/base)"]
    for p in pairs:
        each = ", ".join(f"{r:.3f}" for r in p["round_ratios"])
        lines.append(
            f"{p['scenario']:22s} {p['new']:11,.0f} {p['base']:12,.0f} {p['ratio']:8.3f}  {each}"
        )
    return "\n".join(lines)


def bench(args: argparse.Namespace, procs: Processes) -> dict[str, Any]:
    valgrind, control = callgrind.tools()
    nginx = find_tool("nginx", run.SBIN["nginx"])
    if nginx is None:
        raise BenchError("the upstream needs nginx: sudo apt-get install -y nginx-light")
    if set(args.scenarios) & scenarios.REDIS and shutil.which("redis-server") is None:
        raise BenchError("the scenarios need redis-server: sudo apt-get install -y redis-server")
    folder = procs.workdir / "callgrind"
    folder.mkdir()
    launch = systems.Launch(callgrind.wrap(valgrind, folder), args.timeout)
    compared = run.gateways(args.baseline_gateway)
    print(
        f"bench: starting the gateways under callgrind (slow) in {procs.workdir}", file=sys.stderr
    )
    setup = scenarios.start(
        args.scenarios, procs, nginx, args.cpus, args.load_cpus, 1, args.baseline_gateway,
        launch=launch,
    )  # fmt: skip
    for name, why in setup.skipped.items():
        print(f"bench: scenario {name} skipped: {why}", file=sys.stderr, flush=True)
    os.sched_setaffinity(0, args.load_cpus)  # the client beside the upstream, off the gateways'
    counters: dict[int, callgrind.Counter] = {}
    measured: dict[str, list[dict[str, Any]]] = {s.name: [] for s in setup.scenarios}
    for round_ in range(1, args.rounds + 1):
        for s in setup.scenarios:
            counter = counters.setdefault(s.sut.pid, callgrind.Counter(control, s.sut.pid, folder))
            measured[s.name].append(measure(s, counter, round_, args))
    rows = {name: summarise(name, rounds) for name, rounds in measured.items()}
    version = subprocess.run([valgrind, "--version"], capture_output=True, text=True).stdout
    out: dict[str, Any] = {
        "valgrind": version.strip(),
        "rows": list(rows.values()),
        "skipped": setup.skipped,
        "gateways": compared,
    }
    if args.baseline_gateway is not None:
        out["against_baseline"] = compare(rows)
    return out


def pinning(args: argparse.Namespace) -> str:
    sut, load = cpu_list(args.cpus), cpu_list(args.load_cpus)
    return f"pinning: gateways (under valgrind) on core {sut}; client, upstream, redis on {load}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_signals()
    stamp = dt.datetime.now(dt.UTC)
    try:
        with processes("instructions", keep=args.keep) as procs:  # the dumps kept with --keep
            print(pinning(args), file=sys.stderr, flush=True)
            result = bench(args, procs)
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    options = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    payload = {
        "started_utc": stamp.isoformat(timespec="seconds"),
        "command": [Path(sys.executable).name, "-m", "bench.instructions", *(argv or sys.argv[1:])],
        "options": options,
        "pinning": {"sut_cpus": args.cpus, "load_cpus": args.load_cpus, "text": pinning(args)},
        "host": run.host(),
        "legend": LEGEND,
        **result,
    }
    path = args.json or run.RESULTS / f"{stamp.strftime('%Y%m%dT%H%M%SZ')}-instructions.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(pinning(args))
    print(
        f"callgrind, {args.requests} requests at concurrency {args.concurrency} after "
        f"{args.warmup} uninstrumented, {args.rounds} round(s)"
    )
    print(table(result["rows"], args.rounds))
    print(LEGEND)
    if "against_baseline" in result:
        print(f"\nagainst the baseline gateway {args.baseline_gateway}")
        print(compare_table(result["against_baseline"]))
    for row in result["rows"]:
        warned = sum(len(r["warnings"]) for r in row["rounds"])
        if warned:
            print(f"{row['scenario']}: the gateway logged {warned} warning(s) while counted")
    for name, why in result["skipped"].items():
        print(f"skipped {name}: {why}")
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A first rough throughput figure: wrk → gateway (one worker, pinned to one core) → real Triton.

Not the benchmark harness (that is its own issue): one run, side by side, the backend alone and
through the gateway, so the ratio says what the gateway costs. Needs wrk (apt-get install wrk)
and the test servers (bash tests/servers/setup.sh).

    .venv/bin/python -m bench.rough [--seconds 10] [--connections 16]
"""

from __future__ import annotations

import argparse
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from gateway.demo import free_port
from tests.servers.plugin import start_servers

BODY = '{"inputs":[{"name":"INPUT0","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}'
LUA = f"""wrk.method = "POST"
wrk.body = '{BODY}'
wrk.headers["Content-Type"] = "application/json"
"""


def wrk(url: str, seconds: int, connections: int, script: Path) -> dict[str, float]:
    out = subprocess.run(
        [
            "taskset",
            "-c",
            "1",
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]

    def ms(label: str) -> float:
        value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50_ms": ms("50%"),
        "p99_ms": ms("99%"),
        "non_2xx": float(errors.group(1)) if errors else 0.0,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    script = work / "post.lua"
    script.write_text(LUA)
    triton = start_servers(["triton"], work)["triton"]
    port = free_port()
    routes = work / "routes.yaml"
    routes.write_text(
        f"backends:\n  t: {{kind: triton, urls: ['{triton.url}']}}\n"
        "models:\n  linear: {versions: {'1': {backend: t, name: linear, version: '1'}}}\n"
    )
    gateway = subprocess.Popen(
        [
            "taskset",
            "-c",
            "0",
            str(Path(sys.executable).with_name("gateway")),
            "serve",
            "--config",
            str(routes),
            "--port",
            str(port),
            "--no-watch",
            "--log-level",
            "warning",
        ]
    )
    try:
        for _ in range(100):
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        direct = wrk(
            f"{triton.url}/v2/models/linear/versions/1/infer",
            args.seconds,
            args.connections,
            script,
        )
        through = wrk(
            f"http://127.0.0.1:{port}/v2/models/linear/infer",
            args.seconds,
            args.connections,
            script,
        )
    finally:
        gateway.send_signal(signal.SIGINT)
        gateway.wait(30)
        triton.stop()
    print(f"{args.connections} connections, {args.seconds}s each, gateway: 1 worker on 1 core")
    for name, result in (("triton alone", direct), ("through gateway", through)):
        print(
            f"  {name:16s} {result['rps']:8.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
            f"p99 {result['p99_ms']:.2f} ms  non-2xx {result['non_2xx']:.0f}"
        )
    print(f"  ratio gateway/backend: {through['rps'] / direct['rps']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The installed ``gateway`` command as a user runs it: demo, serve and check, as real processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton_grpc

from tests.support import REPO, backend, free_port, free_ports, model, routes_yaml, versions

GATEWAY = str(Path(sys.executable).with_name("gateway"))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if process.stdout is not None:
            process.stdout.close()


def table(name: str) -> str:
    """Model ``name`` on a backend where nothing listens."""
    b = backend("kserve", "http://127.0.0.1:9")
    return routes_yaml({"b": b}, {name: model(versions("b", "1"))})


def wait_for(url: str, process: subprocess.Popen[str], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the gateway exited"
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def test_demo_prints_a_curl_that_gets_a_prediction(
    processes: list[subprocess.Popen[str]],
) -> None:
    port, grpc_port = free_ports(2)
    demo = subprocess.Popen(
        [GATEWAY, "demo", "--port", str(port), "--grpc-port", str(grpc_port)],
        stdout=subprocess.PIPE,
        text=True,
    )
    processes.append(demo)
    assert demo.stdout is not None
    lines = [demo.stdout.readline() for _ in range(5)]
    curls = [line.strip() for line in lines if line.strip().startswith("curl ")]
    assert len(curls) == 2, lines
    wait_for(f"http://127.0.0.1:{port}/readyz", demo)
    v2 = subprocess.run(curls[0], shell=True, capture_output=True, text=True, check=True)
    assert '"data":[1.0,9.0]' in v2.stdout
    v1 = subprocess.run(curls[1], shell=True, capture_output=True, text=True, check=True)
    assert v1.stdout == '{"predictions":[[2.0,18.0]]}'
    assert f"gRPC (KServe v2, TF Serving): 127.0.0.1:{grpc_port}" in lines[4]
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
    tensor = triton_grpc.InferInput("INPUT0", [1, 4], "FP32")
    tensor.set_data_from_numpy(np.array([[1, 2, 3, 4]], dtype=np.float32))
    assert client.infer("linear", [tensor]).as_numpy("OUTPUT0").tolist() == [[1.0, 9.0]]
    client.close()


def test_serve_reloads_on_sighup_and_refuses_a_bad_file(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(table("first"))
    port = free_port()
    env = {**os.environ, "GATEWAY_ADMIN_TOKEN": "cli-test-token"}
    serve = subprocess.Popen(
        [GATEWAY, "serve", "--config", str(routes), "--port", str(port), "--no-watch"],
        env=env,
        text=True,
    )
    processes.append(serve)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/readyz", serve)
    assert httpx.get(f"{base}/v2/models/first").status_code != 404
    routes.write_text(table("second"))
    serve.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    while httpx.get(f"{base}/v2/models/second").status_code == 404:
        assert time.monotonic() < deadline, "SIGHUP did not reload"
        time.sleep(0.1)
    assert httpx.get(f"{base}/v2/models/first").status_code == 404

    bad = tmp_path / "bad.yaml"
    bad.write_text("backends: {}\n")
    result = subprocess.run(
        [GATEWAY, "serve", "--config", str(bad)], capture_output=True, text=True
    )
    assert result.returncode == 1
    assert re.search(r"line 1: backends: .*at least 1", result.stderr), result.stderr


def test_the_admin_api_can_live_on_its_own_port(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    routes = tmp_path / "routes.yaml"
    routes.write_text(table("m"))
    port, admin_port = free_port(), free_port()
    env = {**os.environ, "GATEWAY_ADMIN_TOKEN": "port-test-token"}
    serve = subprocess.Popen(
        [
            GATEWAY,
            "serve",
            "--config",
            str(routes),
            "--port",
            str(port),
            "--admin-port",
            str(admin_port),
            "--no-watch",
        ],
        env=env,
        text=True,
    )
    processes.append(serve)
    wait_for(f"http://127.0.0.1:{port}/readyz", serve)
    headers = {"Authorization": "Bearer port-test-token"}
    public = httpx.get(f"http://127.0.0.1:{port}/admin/tenants", headers=headers)
    assert public.status_code == 404
    private = httpx.get(f"http://127.0.0.1:{admin_port}/admin/tenants", headers=headers)
    assert private.status_code == 200
    assert private.json() == {"tenants": []}


@pytest.mark.parametrize(
    ("text", "code", "stream", "first_line"),
    [
        (None, 0, "stdout", "routes.yaml: ok ("),
        ("backends: {}\n", 1, "stderr", "routes.yaml: invalid (1 problem(s))"),
    ],
)
def test_the_console_script(
    tmp_path: Path, text: str | None, code: int, stream: str, first_line: str
) -> None:
    script = Path(sys.executable).with_name("gateway")
    assert script.is_file(), "the package is not installed with its console script"
    cwd = REPO if text is None else tmp_path
    if text is not None:
        (tmp_path / "routes.yaml").write_text(text, encoding="utf-8")
    done = subprocess.run(
        [str(script), "check", "routes.yaml"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == code, done.stderr
    output = done.stdout if stream == "stdout" else done.stderr
    assert output.splitlines()[0].startswith(first_line)

"""The real-server fixtures work: each server answers the expected numbers for both versions,
and stop()/kill() leave nothing behind."""

from __future__ import annotations

import json
import math
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers.plugin import AllServers, ServerHandle, _tree, start_servers

ROWS = [[1.0, 2.0, 3.0, 4.0], [0.5, 0.0, 0.0, 1.0]]
V1 = [[1.0, 9.0], [0.5, 1.0]]
V2 = [[2.0, 18.0], [1.0, 2.0]]


def _client() -> httpx.Client:
    return httpx.Client(timeout=30.0, trust_env=False)


def _v2_infer(url: str, path: str) -> dict[str, Any]:
    body = {"inputs": [{"name": "INPUT0", "shape": [2, 4], "datatype": "FP32", "data": ROWS}]}
    with _client() as c:
        resp = c.post(f"{url}/v2/models/linear{path}/infer", json=body)
    assert resp.status_code == 200, resp.text
    out: dict[str, Any] = resp.json()
    return out


def _port_open(url: str) -> bool:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.socket() as s:
        s.settimeout(1.0)
        return s.connect_ex((host, int(port))) == 0


def _closes(url: str, seconds: float = 10.0) -> bool:
    """Whether ``url``'s port stops accepting within ``seconds`` (socket teardown is async)."""
    deadline = time.monotonic() + seconds
    while _port_open(url):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _listeners() -> str:
    result = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False)
    return result.stdout


def _cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


# First on purpose: it starts the three servers in parallel for the whole session.
def test_all_servers_started_together(
    all_servers: AllServers,
    torchserve_server: ServerHandle,
    triton_server: ServerHandle,
    mlserver_server: ServerHandle,
) -> None:
    assert all_servers.torchserve is torchserve_server
    assert all_servers.triton is triton_server
    assert all_servers.mlserver is mlserver_server
    assert [h.kind for h in all_servers] == ["torchserve", "triton", "mlserver"]
    for h in all_servers:
        assert h.alive
        assert h.url.startswith("http://127.0.0.1:")
    assert "java" in _cmdline(torchserve_server.pid)
    assert "tritonserver" in _cmdline(triton_server.pid)
    assert torchserve_server.management_url is not None
    assert triton_server.management_url is None
    assert mlserver_server.management_url is None


def test_torchserve_both_versions(torchserve_server: ServerHandle) -> None:
    ts = torchserve_server
    with _client() as c:
        for path, body, want in [
            ("", {"instances": ROWS}, V1),  # default version stays 1.0
            ("/1.0", {"instances": ROWS}, V1),
            ("/2.0", {"instances": ROWS}, V2),
            ("/2.0", {"data": ROWS}, V2),
        ]:
            resp = c.post(f"{ts.url}/predictions/linear{path}", json=body)
            assert resp.status_code == 200, resp.text
            assert json.loads(resp.text) == {"predictions": want}
        versions = c.get(f"{ts.management_url}/models/linear/all").json()
        assert sorted(m["modelVersion"] for m in versions) == ["1.0", "2.0"]
        assert all(w["status"] == "READY" for m in versions for w in m["workers"])
        assert c.get(f"{ts.management_url}/models/linear").json()[0]["modelVersion"] == "1.0"


def test_torchserve_passes_nan_and_inf_through(torchserve_server: ServerHandle) -> None:
    with _client() as c:
        resp = c.post(
            f"{torchserve_server.url}/predictions/linear/1.0",
            content=b'{"instances": [[NaN, 1, 1, 1], [Infinity, 0, 0, 0]]}',
            headers={"Content-Type": "application/json"},
        )
    assert resp.status_code == 200, resp.text
    assert "NaN" in resp.text
    assert "Infinity" in resp.text
    (a, b), (c_, d) = json.loads(resp.text)["predictions"]
    assert math.isnan(a)
    assert math.isnan(b)
    assert c_ == math.inf
    assert math.isnan(d)


def test_triton_both_versions(triton_server: ServerHandle) -> None:
    for path, version, want in [("", "2", V2), ("/versions/1", "1", V1), ("/versions/2", "2", V2)]:
        out = _v2_infer(triton_server.url, path)
        assert out["model_version"] == version
        (o,) = out["outputs"]
        assert (o["name"], o["datatype"], o["shape"]) == ("OUTPUT0", "FP32", [2, 2])
        assert o["data"] == [x for row in want for x in row]
    with _client() as c:
        meta = c.get(f"{triton_server.url}/v2/models/linear").json()
    assert meta["versions"] == ["1", "2"]


def test_mlserver_both_versions(mlserver_server: ServerHandle) -> None:
    for path, version, want in [("", "2", V2), ("/versions/1", "1", V1), ("/versions/2", "2", V2)]:
        out = _v2_infer(mlserver_server.url, path)
        assert out["model_version"] == version
        (o,) = out["outputs"]
        assert (o["name"], o["datatype"], o["shape"]) == ("predict", "FP64", [2, 2])
        assert o["data"] == [x for row in want for x in row]


def test_start_triton_gives_independent_replicas_and_kill_works(
    start_triton: Callable[[], ServerHandle],
) -> None:
    a, b = start_triton(), start_triton()
    assert a.url != b.url
    assert a.pid != b.pid
    assert _v2_infer(a.url, "/versions/1")["outputs"][0]["data"] == [1.0, 9.0, 0.5, 1.0]
    stubs = [p for p in _tree(a.pid, a.pgid) if p != a.pid]
    assert stubs, "expected Python-backend stub processes"

    a.kill()
    assert not a.alive
    assert _tree(a.pid, a.pgid) == []
    assert not _port_open(a.url)
    with _client() as c, pytest.raises(httpx.ConnectError):
        c.get(f"{a.url}/v2/health/ready")
    assert _v2_infer(b.url, "")["outputs"][0]["data"] == [2.0, 18.0, 1.0, 2.0]

    b.stop()  # graceful
    assert not b.alive
    assert _tree(b.pid, b.pgid) == []
    assert not _port_open(b.url)


def test_torchserve_kill_takes_java_and_workers(tmp_path: Path) -> None:
    ts = start_servers(["torchserve"], tmp_path)["torchserve"]
    try:
        workers = [p for p in _tree(ts.pid, ts.pgid) if p not in (ts.pid, ts.pgid)]
        assert len(workers) >= 2, "one Python worker per version"
        assert ts.management_url is not None
        ts.kill()
        assert not ts.alive
        assert _tree(ts.pid, ts.pgid) == []
        for url in (ts.url, ts.management_url):
            assert _closes(url), f"{url} still listening:\n{_listeners()}"
    finally:
        ts.stop()

"""The benchmark harness (bench/README.md), run for real and small: every scenario asked for is
measured, without errors, with its CPU accounted. No timing thresholds: only the accounting."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

SCENARIOS = ["upstream", "forwarder", "gateway-full", "gateway-hit"]


def run_harness(*args: str) -> str:
    """``python -m bench.run`` as a user runs it; a hung run is stopped the way Ctrl-C stops it
    (the harness then stops every process it started)."""
    command = [sys.executable, "-m", "bench.run", *args]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"the harness did not finish in 120 s:\n{output}")
    assert process.returncode == 0, output
    return output


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

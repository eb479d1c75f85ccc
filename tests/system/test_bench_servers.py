"""The server-under-the-app benchmark (``python -m bench.servers``), run for real and small,
without the granian variants (no download): every variant started, checked against the
upstream's reply and measured, without errors, with its CPU accounted. No timing thresholds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import get_args

import pytest

from bench import servers
from tests.support import run_bench

LOCAL = [name for name in servers.VARIANTS if not name.startswith("granian-")]


def test_every_local_variant_is_measured(tmp_path: Path) -> None:
    results = tmp_path / "servers.json"
    output = run_bench(
        "bench.servers", "--seconds", "0.5", "--warmup", "0", "--rounds", "1",
        "--concurrency", "1", "--variants", ",".join(LOCAL), "--json", str(results),
    )  # fmt: skip
    data = json.loads(results.read_text())
    rows = {row["scenario"]: row for row in data["rows"]}
    assert list(rows) == LOCAL, output
    assert data["skipped"] == {}
    for name, row in rows.items():
        assert row["concurrency"] == 1, name
        assert row["requests"] > 0, (name, output)
        assert row["errors"] == 0, (name, output)
        assert row["cpu_us_per_request"] > 0, (name, output)
    reference = rows[servers.REFERENCE]
    assert reference["vs_forwarder"] == pytest.approx(1.0)
    assert reference["cpu_vs_reference"] == pytest.approx(1.0)
    raw = rows["raw-protocol"]
    assert raw["cpu_vs_reference"] == pytest.approx(
        raw["cpu_us_per_request"] / reference["cpu_us_per_request"]
    )
    assert data["variants"]["uvicorn-gateway"]["command"][-4:-2] == ["--protocol", "gateway"]
    assert "granian" not in data["versions"]
    assert "x CPU" in output


def test_the_registry_and_the_names_agree() -> None:
    """Every variant has its description, in the order of the Literal."""
    assert tuple(servers.VARIANTS) == get_args(servers.Variant)


@pytest.mark.parametrize("variants", ["uvicorn-asgi,nope", ""])
def test_unknown_variants_are_refused(variants: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        servers.parse_args(["--variants", variants])
    assert "variant" in capsys.readouterr().err

"""The bench's own venvs for peers (``bench/venvs.py``: LiteLLM, granian): a venv that holds
its requirements is used as it is; a failed install is a reason, not an exception."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import venvs


@pytest.fixture
def peers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(venvs, "PEERS", tmp_path)
    return tmp_path


def test_a_venv_with_its_stamp_is_used_without_pip(peers: Path) -> None:
    venv = venvs.ToolVenv("tool-venv", ("tool==1.0", "other==2"))
    exe = peers / "tool-venv" / "bin" / "tool"
    exe.parent.mkdir(parents=True)
    exe.write_text("#!/bin/sh\n")
    (peers / "tool-venv" / ".bench-requirements").write_text("tool==1.0\nother==2\n")
    assert venv.executable("tool") == exe
    assert not venv.log.exists()  # no install was tried
    assert venv.version("tool") is None  # no python in this venv


def test_a_failed_install_is_the_reason(peers: Path) -> None:
    """Another pin than the stamp's means an install; pip fails on a requirement that does
    not exist (a local path: nothing is downloaded), and the reason names the log."""
    (peers / "tool-venv").mkdir()
    (peers / "tool-venv" / ".bench-requirements").write_text("tool==0.9\n")
    venv = venvs.ToolVenv("tool-venv", (str(peers / "no-such-project"),))
    why = venv.executable("tool", timeout=120)
    assert isinstance(why, str)
    assert why.startswith("cannot install")
    assert str(peers / "tool-install.log") in why
    assert (peers / "tool-venv" / "bin" / "python").is_file()  # the venv itself was made
    assert (peers / "tool-venv" / ".bench-requirements").read_text() == "tool==0.9\n"

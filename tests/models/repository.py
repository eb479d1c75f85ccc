"""A copy of ``tests/models/triton`` for a Triton to load beside the shared repository (the
Python backend writes its caches next to a model, so it never runs from the source tree)."""

from __future__ import annotations

import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent


def triton_repository(dest: Path) -> str:
    """Copy the models to ``dest``; the Triton argument that loads them."""
    shutil.copytree(HERE / "triton", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return f"--model-repository={dest}"

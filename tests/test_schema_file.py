"""The published routes.schema.json is the one the code generates."""

from __future__ import annotations

import json
from pathlib import Path

from gateway.config.model import json_schema

ROOT = Path(__file__).resolve().parent.parent


def test_published_schema_is_up_to_date() -> None:
    published = json.loads((ROOT / "routes.schema.json").read_text())
    assert published == json_schema(), "regenerate: gateway schema > routes.schema.json"

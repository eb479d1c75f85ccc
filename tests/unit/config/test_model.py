"""The published routes.schema.json is the one the code generates."""

from __future__ import annotations

import json

from gateway.config.model import json_schema
from tests.support import REPO


def test_published_schema_is_up_to_date() -> None:
    published = json.loads((REPO / "routes.schema.json").read_text())
    assert published == json_schema(), "regenerate: gateway schema > routes.schema.json"

"""The Store's records: a limit that makes no sense is refused when it is made."""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.store import Limit


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"kind": "bucket", "limit": 5}, "rate"),
        ({"kind": "bucket", "limit": -1, "rate": 1}, "limit"),
        ({"kind": "bucket", "limit": math.inf, "rate": 1}, "limit"),
        ({"kind": "window", "limit": 5}, "window"),
        ({"kind": "concurrency", "limit": 5, "lease_ttl": 0}, "lease_ttl"),
        ({"kind": "leaky", "limit": 5}, "kind"),
        ({"group": "", "kind": "bucket", "limit": 5, "rate": 1}, "group"),
        ({"group": "}x", "kind": "bucket", "limit": 5, "rate": 1}, "group"),
    ],
)
def test_a_limit_that_makes_no_sense_is_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Limit(**{"group": "t:acme", "name": "x", **options})

"""The edge's protocol carries copies of uvicorn's per-request callbacks (gateway/edge/server.py,
folded into GatewayProtocol's own, one frame per callback), builds its request cycles with a
copy of the cycle's ``__init__`` (gateway/edge/direct.py ``Cycle``) and the direct lane reads a
request cycle's state as uvicorn's ``receive`` does (gateway/edge/direct.py ``_receive``).

A uvicorn whose versions of these differ must not be taken silently: this test names what to
compare again. Update a fingerprint only after the gateway's copy has been brought in line.
"""

from __future__ import annotations

import hashlib
import inspect

import pytest
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

COPIED = {
    (HttpToolsProtocol, "data_received"): "010a7ae59a5d3b1a",
    (HttpToolsProtocol, "on_message_begin"): "96d377fdc7c2baef",
    (HttpToolsProtocol, "on_url"): "37be44e962b04ca8",
    (HttpToolsProtocol, "on_header"): "1e86ebb6cea0458c",
    (HttpToolsProtocol, "on_headers_complete"): "1ea8589acfad92d8",
    (HttpToolsProtocol, "on_response_complete"): "64e254f28e389e76",
    (HttpToolsProtocol, "on_message_complete"): "1fbad42dc31fc01f",
    (RequestResponseCycle, "receive"): "8124ae006be71184",
    (RequestResponseCycle, "__init__"): "4d2f220910c33c12",
}


@pytest.mark.parametrize(("owner", "name"), list(COPIED), ids=lambda v: getattr(v, "__name__", v))
def test_uvicorns_code_is_what_the_edge_copied(owner: type, name: str) -> None:
    source = inspect.getsource(getattr(owner, name))
    found = hashlib.sha256(source.encode()).hexdigest()[:16]
    assert found == COPIED[(owner, name)], (
        f"uvicorn's {owner.__name__}.{name} changed: compare it with the gateway's copy "
        "(gateway/edge/server.py GatewayProtocol, gateway/edge/direct.py Cycle and _receive) "
        "before updating its fingerprint here"
    )

"""The direct lane's route match, remembered per path by the route table (``Router.direct``):
the same match as :meth:`Router.match`, and a memo that stays bounded whatever paths arrive."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry
from starlette.requests import Request
from starlette.responses import Response

from gateway.edge import http
from gateway.edge.answer import Answer
from gateway.edge.http import Exchange, Route, Router
from gateway.telemetry.access_log import Observer
from gateway.telemetry.metrics import RequestMetrics


async def endpoint(request: Request, exchange: Exchange) -> Response:
    return Response(b"")


async def direct(scope: Any, receive: Any, exchange: Exchange) -> Answer:
    return Answer(b"")


def router() -> Router:
    routes = [
        Route("/v2/models/{model}/infer", endpoint, ("POST",), direct=direct),
        Route("/v2/models/{model}/ready", endpoint, ("GET",)),
        Route("/v2/models/{model}/generate", endpoint, ("POST",)),  # no direct endpoint
        Route("/healthz", endpoint, ("GET",)),
    ]
    observer = Observer(RequestMetrics(CollectorRegistry()), access=False)
    return Router(routes, endpoint, observer)


def test_the_direct_match_is_the_routers_match_for_direct_routes_only() -> None:
    table = router()
    for _ in range(2):  # asked, then remembered: the same answers
        found = table.direct("/v2/models/m/infer")
        assert found is not None
        assert found.route is not None
        assert found.route.direct is direct
        assert found.params == {"model": "m"}
        assert table.direct("/v2/models/m/generate") is None  # no direct endpoint
        assert table.direct("/v2/models/m/ready") is None  # not a POST route
        assert table.direct("/healthz") is None
        assert table.direct("/nowhere") is None
    other = table.direct("/v2/models/other/infer")
    assert other is not None
    assert other.params == {"model": "other"}


def test_the_memo_is_bounded() -> None:
    table = router()
    for i in range(3 * http._MEMO):
        found = table.direct(f"/v2/models/m{i}/infer")
        assert found is not None
        assert found.params == {"model": f"m{i}"}
        assert len(table._direct) <= http._MEMO
    long = "/v2/models/" + "x" * http._MEMO_PATH + "/infer"
    found = table.direct(long)
    assert found is not None
    assert found.params == {"model": "x" * http._MEMO_PATH}
    assert long not in table._direct  # too long to be kept

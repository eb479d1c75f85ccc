"""The console's sign-in, session cookie, CSRF and security headers, on a running gateway
(real sockets; the browser tests are in tests/system/console)."""

from __future__ import annotations

import pytest

from tests.conftest import RunningGateway, StartGateway
from tests.support import ADMIN, ADMIN_TOKEN, error_of, free_port, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
ROUTES = routes_yaml(
    {"b": {"kind": "kserve", "urls": ["http://127.0.0.1:9"]}}, {"m": model(versions("b", "1"))}
)
SAME_ORIGIN = {"Sec-Fetch-Site": "same-origin"}


def jar(cookie: str) -> dict[str, str]:
    """The session cookie as a browser sends it."""
    return {"Cookie": f"gateway_console={cookie}"}


async def sign_in(gateway: RunningGateway) -> tuple[str, str]:
    """(the session cookie's value, the session's CSRF token)."""
    response = await gateway.client.post(
        "/console/login", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/console/overview"
    cookie = response.cookies["gateway_console"]
    gateway.client.cookies.clear()  # each test sends the cookie itself, or not
    session = await gateway.client.get("/console/session", headers=jar(cookie))
    assert session.status_code == 200, session.text
    assert session.json()["actor"] == "admin-token"
    return cookie, session.json()["csrf_token"]


async def test_signing_in_sets_a_strict_httponly_cookie_and_never_echoes_the_token(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    response = await gateway.client.post(
        "/console/login", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN
    )
    assert response.status_code == 303
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith("gateway_console=")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/"):
        assert attribute in set_cookie
    assert "Secure" not in set_cookie  # plain HTTP here; over TLS: Secure and __Host-
    assert ADMIN_TOKEN not in set_cookie
    wrong = await gateway.client.post("/console/login", data={"token": "nope"}, headers=SAME_ORIGIN)
    assert wrong.status_code == 303
    assert wrong.headers["location"] == "/console/login?failed=1"
    assert "set-cookie" not in wrong.headers
    page = await gateway.client.get("/console/login")
    assert ADMIN_TOKEN not in page.text


async def test_without_a_session_pages_redirect_and_the_api_refuses(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    for path in ("/console", "/console/overview", "/console/tenants"):
        response = await gateway.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/console/login"
    assert (await gateway.client.get("/console/session")).status_code == 401
    forged = jar("not-a-session")
    assert (await gateway.client.get("/admin/tenants", headers=forged)).status_code == 401
    assert (await gateway.client.get("/console/nope")).status_code == 404


async def test_a_session_cookie_drives_the_admin_api_with_its_csrf_token(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    cookie, csrf = await sign_in(gateway)
    listed = await gateway.client.get("/admin/tenants", headers=jar(cookie))
    assert listed.status_code == 200, listed.text
    created = await gateway.client.post(
        "/admin/tenants",
        json={"name": "acme"},
        headers={**jar(cookie), **SAME_ORIGIN, "X-CSRF-Token": csrf},
    )
    assert created.status_code == 201, created.text
    audit = (await gateway.client.get("/admin/audit", headers=ADMIN)).json()["entries"]
    assert audit[0]["action"] == "tenant.create"
    assert audit[0]["actor"] == "console:admin-token"
    assert any(e["action"] == "console.login" for e in audit)
    assert not any(ADMIN_TOKEN in str(e) or cookie in str(e) for e in audit)


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site is cross-site"),
        ({"Origin": "https://evil.example"}, "Origin is not this site"),
        ({}, "no Origin or Sec-Fetch-Site"),
        (SAME_ORIGIN, "CSRF token"),  # same origin, but no token
        ({**SAME_ORIGIN, "X-CSRF-Token": "forged"}, "CSRF token"),
    ],
)
async def test_a_cross_site_or_tokenless_post_with_the_cookie_is_refused(
    start_gateway: StartGateway, headers: dict[str, str], why: str
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    cookie, csrf = await sign_in(gateway)
    if why != "CSRF token":
        headers = {**headers, "X-CSRF-Token": csrf}  # the right token does not help cross-site
    response = await gateway.client.post(
        "/admin/tenants",
        json={"name": "evil"},
        headers={**jar(cookie), **headers},
    )
    assert response.status_code == 403, response.text
    code, message = error_of(response)
    assert code == "forbidden"
    assert why in message
    assert set(response.json()) == {"error", "request_id"}  # the admin API's error shape
    assert (await gateway.client.get("/admin/tenants/evil", headers=ADMIN)).status_code == 404


async def test_a_bearer_caller_needs_no_csrf_token(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    response = await gateway.client.post("/admin/tenants", json={"name": "cli"}, headers=ADMIN)
    assert response.status_code == 201, response.text


async def test_signing_out_ends_the_session(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    cookie, csrf = await sign_in(gateway)
    refused = await gateway.client.post("/console/logout", headers={**jar(cookie), **SAME_ORIGIN})
    assert refused.status_code == 403  # no CSRF token: a link elsewhere cannot sign you out
    out = await gateway.client.post(
        "/console/logout", headers={**jar(cookie), **SAME_ORIGIN, "X-CSRF-Token": csrf}
    )
    assert out.status_code == 204
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert (await gateway.client.get("/admin/tenants", headers=jar(cookie))).status_code == 401
    assert (await gateway.client.get("/console/session", headers=jar(cookie))).status_code == 401


async def test_pages_carry_the_strict_csp_and_no_store(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    cookie, _ = await sign_in(gateway)
    page = await gateway.client.get("/console/overview", headers=jar(cookie))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    for directive in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
    ):
        assert directive in csp
    assert "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"
    script = await gateway.client.get("/console/static/js/common.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    again = await gateway.client.get(
        "/console/static/js/common.js", headers={"If-None-Match": script.headers["etag"]}
    )
    assert again.status_code == 304
    assert (await gateway.client.get("/console/static/overview.html")).status_code == 404
    assert (await gateway.client.get("/console/static/../session.py")).status_code == 404


async def test_with_an_admin_port_the_console_is_only_there(start_gateway: StartGateway) -> None:
    public = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, admin_port=free_port())
    assert (await public.client.get("/console/login")).status_code == 404
    assert (await public.client.get("/console/static/console.css")).status_code == 404
    port = free_port()
    admin = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, admin_port=port, port=port)
    assert (await admin.client.get("/console/login")).status_code == 200


async def test_the_console_can_be_turned_off(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, console=False)
    assert (await gateway.client.get("/console/login")).status_code == 404
    signed = await gateway.client.post(
        "/console/login", data={"token": ADMIN_TOKEN}, headers=SAME_ORIGIN
    )
    assert signed.status_code == 404


async def test_a_changed_admin_token_ends_the_sessions_it_opened(
    start_gateway: StartGateway, redis_url: str, redis_prefix: str
) -> None:
    """Two replicas on one Redis: a session opened on one works on the other, and not on a
    replica whose admin token is another (the token was rotated)."""
    shared = {"redis_url": redis_url, "redis_prefix": redis_prefix, "secret": "s" * 32}
    one = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, **shared)
    two = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, **shared)
    rotated = await start_gateway(ROUTES, admin_token="rotated-" + ADMIN_TOKEN, **shared)
    cookie, _ = await sign_in(one)
    assert (await two.client.get("/admin/tenants", headers=jar(cookie))).status_code == 200
    assert (await rotated.client.get("/admin/tenants", headers=jar(cookie))).status_code == 401


async def test_config_check_validates_and_diffs_against_the_live_file(
    start_gateway: StartGateway,
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    source = await gateway.client.get("/admin/config/source", headers=ADMIN)
    assert source.status_code == 200
    assert source.text == ROUTES
    candidate = ROUTES.replace("http://127.0.0.1:9", "http://127.0.0.1:10")
    checked = await gateway.client.post(
        "/admin/config/check", content=candidate.encode(), headers=ADMIN
    )
    assert checked.status_code == 200, checked.text
    verdict = checked.json()
    assert verdict["ok"] is True
    assert verdict["summary"] == "ok (1 backends, 1 models, 0 routes)"
    assert any("backend b" in c and "127.0.0.1:10" in c for c in verdict["changes"]), verdict
    assert "-    - http://127.0.0.1:9\n" in verdict["diff"] or "127.0.0.1:9" in verdict["diff"]
    bad = await gateway.client.post(
        "/admin/config/check", content=b"models:\n  m: {versions: 3}\n", headers=ADMIN
    )
    assert bad.json()["ok"] is False
    assert any(e.startswith("line 2:") for e in bad.json()["errors"]), bad.json()
    binary = await gateway.client.post("/admin/config/check", content=b"\xff\xfe", headers=ADMIN)
    assert binary.json()["ok"] is False
    unchanged = await gateway.client.get("/admin/config", headers=ADMIN)
    assert unchanged.json()["status"]["reloads"] == 0  # nothing was applied


async def test_jobs_depth_counts_queued_jobs_per_model(start_gateway: StartGateway) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN)
    response = await gateway.client.get("/admin/jobs/depth", headers=ADMIN)
    assert response.status_code == 200
    assert response.json() == {"depth": {}}
    assert (await gateway.client.get("/admin/jobs/depth")).status_code == 401

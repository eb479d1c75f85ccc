"""The console's OIDC sign-in in a real browser against a real OIDC provider
(node-oidc-provider, ``tests/oidc``): the authorization code flow with PKCE, the provider's own
login and consent pages, and the access token checked by the gateway's auth section. An
access token with the ``admin`` scope opens a session; one without it is refused; a callback
with a state the gateway never issued is refused."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from tests.oidc.plugin import OIDCProvider, start_oidc_provider
from tests.support import ADMIN, ADMIN_TOKEN, free_port
from tests.system.console.browser import available, chromium, element, severe_messages, wait_for
from tests.system.console.fleet import demo_model_server, fleet_routes
from tests.system.serving import Served, gateway_serve

pytestmark = pytest.mark.skipif(
    not available(), reason="needs Debian's chromium and chromium-driver (.ci/run installs them)"
)


@dataclass(frozen=True)
class Setup:
    provider: OIDCProvider
    admins: Served  # its console asks for the admin scope
    others: Served  # its console asks for a scope without admin


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    folder = tmp_path_factory.mktemp("console-oidc")
    ports = free_port(), free_port()
    redirects = ",".join(f"http://127.0.0.1:{p}/console/oidc/callback" for p in ports)
    provider = start_oidc_provider(folder / "op", env={"OP_CONSOLE_REDIRECTS": redirects})
    try:
        issuer = {
            "issuer": provider.issuer,
            "discovery": True,
            "algorithms": ["RS256"],
            "audience": [provider.resource],
        }
        env = {
            "GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
            "GATEWAY_CONSOLE_OIDC_ISSUER": provider.issuer,
            "GATEWAY_CONSOLE_OIDC_CLIENT_ID": "gateway-console",
            "GATEWAY_CONSOLE_OIDC_RESOURCE": provider.resource,
        }
        narrow = {**env, "GATEWAY_CONSOLE_OIDC_SCOPE": "openid predict:linear"}
        with demo_model_server(folder) as model_url:
            routes = fleet_routes(model_url, auth={"required": True, "jwt": [issuer]})
            one, two = (folder / "a", folder / "b")
            one.mkdir()
            two.mkdir()
            with (
                gateway_serve(one, routes=routes, env=env, port=ports[0]) as admins,
                gateway_serve(two, routes=routes, env=narrow, port=ports[1]) as others,
            ):
                yield Setup(provider, admins, others)
    finally:
        provider.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    with chromium() as driver:
        yield driver


def through_the_provider(driver: webdriver.Chrome, base: str, login: str) -> None:
    """From the console's sign-in page through the provider's login and consent pages."""
    driver.delete_all_cookies()
    driver.get(f"{base}/console/login")
    element(driver, "#oidc-login").click()
    element(driver, "input[name=login]").send_keys(login)
    element(driver, "input[name=password]").send_keys("any")
    element(driver, "button[type=submit]").click()
    # The login page is an /interaction/ page too: wait until its form is gone, or the
    # consent's button found next may be the login page's, stale once the consent page loads.
    wait_for(
        lambda: (
            "/interaction/" in driver.current_url
            and not driver.find_elements(By.CSS_SELECTOR, "input[name=login]")
        ),
        "the consent page",
    )
    element(driver, "button[type=submit]").click()  # consent: "Continue"


def test_an_oidc_admin_signs_in_to_the_console(browser: webdriver.Chrome, setup: Setup) -> None:
    base = setup.admins.url
    through_the_provider(browser, base, "alice")
    wait_for(lambda: browser.current_url == f"{base}/console/overview", "the overview")
    wait_for(lambda: browser.find_element(By.ID, "who").text == "oidc:alice", "the actor")
    cookies = {c["name"]: c for c in browser.get_cookies()}
    session = cookies["gateway_console"]
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert "gateway_console_oidc" not in cookies  # the flow's binding is gone
    ours = [m for m in severe_messages(browser) if m.startswith(base)]  # not the provider's
    assert [m for m in ours if "/admin/series" not in m and "/admin/usage" not in m] == []
    log = httpx.get(f"{base}/admin/audit?limit=5", headers=ADMIN, timeout=5).json()["entries"]
    assert (log[0]["action"], log[0]["actor"]) == ("console.login", "console:oidc:alice")


def test_an_oidc_sign_in_without_the_admin_scope_is_refused(
    browser: webdriver.Chrome, setup: Setup
) -> None:
    base = setup.others.url
    through_the_provider(browser, base, "bob")
    wait_for(lambda: browser.current_url.endswith("/console/login?failed=oidc"), "a refusal")
    assert element(browser, "#failed-oidc").is_displayed()
    assert "gateway_console" not in {c["name"] for c in browser.get_cookies()}
    log = setup.others.log.read_text(errors="replace")
    assert "lacks the admin scope" in log


def test_a_callback_the_gateway_did_not_start_is_refused(setup: Setup) -> None:
    base = setup.admins.url
    forged = httpx.get(
        f"{base}/console/oidc/callback?state=forged&code=stolen",
        headers={"Cookie": "gateway_console_oidc=guess"},
        timeout=5,
    )
    assert forged.status_code == 303
    assert forged.headers["location"] == "/console/login?failed=oidc"
    assert "gateway_console=" not in forged.headers.get("set-cookie", "").replace(
        "gateway_console_oidc=", ""
    )
    start = httpx.get(f"{base}/console/oidc/login", timeout=5)
    assert start.status_code == 303
    location = start.headers["location"]
    assert location.startswith(setup.provider.issuer)
    assert "code_challenge_method=S256" in location
    assert "SameSite=Lax" in start.headers["set-cookie"]
    assert (await_options := httpx.get(f"{base}/console/login/options", timeout=5)).json() == {
        "token": True,
        "oidc": True,
    }, await_options.text

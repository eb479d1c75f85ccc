"""One PNG per console page, of a demo gateway with some traffic (``scripts/console-screenshots``).

A gateway (memory store) in front of the demo model server: model ``linear`` with a canary
rollout that advances on the traffic sent here and is then paused; model ``scorer`` with
shadow traffic to its version 2 and a response cache; a tenant with a key, inference calls
(a few refused), async jobs, a cache purge. Then Chromium signs in to the console and saves
each page into the folder given (``docs/console`` by default).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx
from selenium import webdriver
from selenium.webdriver.common.by import By

from gateway.console.routes import PAGES
from tests.support import V2
from tests.system.console.browser import chromium, element, sign_in, wait_for
from tests.system.console.fleet import demo_model_server, fleet, fleet_routes

TOKEN = "demo-admin-token"  # a throwaway gateway's, for these pictures only


def routes(model_url: str) -> str:
    scorer = {
        "default": "1",
        "versions": {v: {"backend": "demo", "name": "linear", "version": v} for v in ("1", "2")},
        "shadow": {"version": "2", "share": "50%"},
        "deterministic": True,
        "cache": {"ttl": "60s"},
    }
    rollout = {
        "canary": "2",
        "steps": [10, 25, 50, 100],
        "interval": "3s",
        "gates": {"max_error_rate": "5%", "max_p99": "1s", "min_requests": 10},
    }
    return fleet_routes(
        model_url,
        linear={"rollout": rollout},
        models={"scorer": scorer},
        plans={"free": {"rate": "100/s", "quota": ["10000/day"]}},
    )


def traffic(base: str) -> None:
    admin = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=base, timeout=10) as client:
        client.post(
            "/admin/tenants",
            json={"name": "acme", "plan": "free", "scopes": ["predict:*", "metadata:*"]},
            headers=admin,
        ).raise_for_status()
        client.post("/admin/tenants", json={"name": "globex"}, headers=admin).raise_for_status()
        made = client.post(
            "/admin/tenants/acme/keys", json={"name": "ci", "scopes": ["predict:*"]}, headers=admin
        )
        made.raise_for_status()
        key = {"X-API-Key": made.json()["key"]}
        client.post(
            "/admin/tenants/acme/keys",
            json={"name": "batch", "scopes": ["predict:scorer"]},
            headers=admin,
        ).raise_for_status()
        deadline = time.monotonic() + 7  # the rollout advances a step or two meanwhile
        sent = 0
        while time.monotonic() < deadline:
            client.post("/v2/models/linear/infer", json=V2, headers=key)
            scored = {"inputs": [{**V2["inputs"][0], "data": [sent % 40, 2, 3, 4]}]}
            client.post("/v2/models/scorer/infer", json=scored, headers=key)  # some repeat
            if sent % 10 == 0:
                client.post("/v2/models/linear/infer", json={"inputs": []}, headers=key)  # 400
                client.post(
                    "/v2/models/linear/infer", json=V2, headers={**key, "Prefer": "respond-async"}
                )
            sent += 1
        client.post("/admin/rollouts/linear/pause", headers=admin)
        client.post("/admin/cache/purge", json={"model": "scorer"}, headers=admin)


def shoot(driver: webdriver.Chrome, base: str, page: str, target: Path) -> None:
    driver.get(f"{base}/console/{page}")
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, "#content table, #content p"),
        f"the {page} page",
    )
    time.sleep(1.5)  # the first poll's charts and tables
    driver.save_screenshot(str(target))


def shoot_config(driver: webdriver.Chrome, base: str, target: Path) -> None:
    """The config page with a changed copy of the live file checked and diffed."""
    driver.get(f"{base}/console/config")
    live = element(driver, "#live-yaml")
    wait_for(lambda: live.text.startswith("backends"), "the live file")
    changed = live.text.replace("timeout: 5s", "timeout: 10s").replace("10000/day", "20000/day")
    box = element(driver, "#candidate")
    driver.execute_script("arguments[0].value = arguments[1]", box, changed)
    element(driver, "#check").click()
    element(driver, "#check-changes")
    element(driver, "#check-diff")
    driver.set_window_size(1400, 1800)  # the status, both files and the verdict
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.5)
    driver.save_screenshot(str(target))
    driver.set_window_size(1400, 900)


def shoot_tenants(driver: webdriver.Chrome, base: str, target: Path) -> None:
    """The tenants page with a new key, shown once with its copy button."""
    driver.get(f"{base}/console/tenants?tenant=acme")
    element(driver, "#key-name").send_keys("dashboard")
    element(driver, "#key-scopes").send_keys("predict:linear")
    element(driver, "#key-create").click()
    element(driver, "#new-key")
    time.sleep(0.5)
    driver.save_screenshot(str(target))


def main(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="console-shots-"))
    env = {"GATEWAY_ADMIN_TOKEN": TOKEN, "GATEWAY_LOG_LEVEL": "warning"}
    with demo_model_server(work) as model_url, fleet(work, routes(model_url), env, 1) as running:
        base = running[0].url
        traffic(base)
        with chromium(1400, 900) as driver:
            driver.get(f"{base}/console/login")
            element(driver, "#token")
            driver.save_screenshot(str(folder / "login.png"))
            sign_in(driver, base, TOKEN)
            for page in PAGES:
                target = folder / f"{page}.png"
                if page == "config":
                    shoot_config(driver, base, target)
                elif page == "tenants":
                    shoot_tenants(driver, base, target)
                else:
                    suffix = "?model=linear" if page == "rollouts" else ""
                    shoot(driver, base, f"{page}{suffix}", target)
                print(target, file=sys.stderr)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/console"))

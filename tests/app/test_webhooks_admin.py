"""Webhooks through a running gateway: the secret's admin API (shown once, never again, audited
without it), tenants' callback_hosts, the dead letters' admin API, and the CLI."""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from gateway.cli.main import main as cli
from gateway.store.redis.store import RedisStore
from gateway.webhooks.callbacks import parse_networks
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.service import Webhooks
from tests.conftest import StartGateway
from tests.fakes import WebhookReceiver
from tests.support import ADMIN, ADMIN_TOKEN, error_of, eventually, model, routes_yaml, versions

pytestmark = pytest.mark.anyio
ROUTES = routes_yaml(
    {"b": {"kind": "kserve", "urls": ["http://127.0.0.1:9"]}}, {"m": model(versions("b", "1"))}
)
SECRET = "webhook-test-secret"
FAST = {
    "webhook_allow_http": True,
    "webhook_allow_networks": "127.0.0.0/8",
    "webhook_max_attempts": 2,
    "webhook_backoff": 0.02,
    "webhook_max_backoff": 0.05,
    "webhook_poll": 0.05,
}


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = await WebhookReceiver().start()
    yield server
    await server.stop()


async def test_the_secret_is_shown_once_rotated_audited_and_deleted(
    start_gateway: StartGateway, store_settings: dict[str, Any]
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, secret=SECRET, **store_settings)
    client = gateway.client
    bad = await client.post(
        "/admin/tenants", json={"name": "acme", "callback_hosts": ["0x7f000001"]}, headers=ADMIN
    )
    assert bad.status_code == 422, bad.text
    assert "callback_hosts" in error_of(bad)[1]
    created = await client.post(
        "/admin/tenants",
        json={"name": "acme", "callback_hosts": ["Hooks.Acme.TEST", "*.acme.test"]},
        headers=ADMIN,
    )
    assert created.status_code == 201, created.text
    assert created.json()["callback_hosts"] == ["hooks.acme.test", "*.acme.test"]
    path = "/admin/tenants/acme/webhook-secret"
    none = await client.get(path, headers=ADMIN)
    assert none.json() == {"tenant": "acme", "exists": False}

    first = await client.post(path, json={}, headers=ADMIN)
    assert first.status_code == 201, first.text
    secret = first.json()["secret"]
    assert secret.startswith("whsec_")
    shown = await client.get(path, headers=ADMIN)
    assert shown.status_code == 200
    assert shown.json()["exists"] is True
    assert shown.json()["secret_id"] == first.json()["secret_id"]
    assert "secret" not in shown.json()
    assert secret.removeprefix("whsec_") not in shown.text

    retry = {**ADMIN, "Idempotency-Key": "rotate-1"}
    rotated = await client.post(path, json={"grace": "10m"}, headers=retry)
    assert rotated.status_code == 201, rotated.text
    again = await client.post(path, json={"grace": "10m"}, headers=retry)
    assert again.json()["secret"] == rotated.json()["secret"]  # a retry mints no third one
    assert again.headers["Idempotent-Replayed"] == "true"
    state = (await client.get(path, headers=ADMIN)).json()
    assert state["secret_id"] == rotated.json()["secret_id"]
    assert state["previous_id"] == first.json()["secret_id"]
    assert state["previous_expires_at"] > state["created_at"]

    audit = await client.get("/admin/audit?limit=10", headers=ADMIN)
    actions = [e["action"] for e in audit.json()["entries"]]
    assert actions[:2] == ["webhook_secret.rotate", "webhook_secret.create"]
    for text in (secret, rotated.json()["secret"]):
        assert text.removeprefix("whsec_") not in audit.text

    assert (await client.delete(path, headers=ADMIN)).status_code == 204
    assert (await client.get(path, headers=ADMIN)).json()["exists"] is False
    gone = await client.delete(path, headers=ADMIN)
    assert gone.status_code == 404
    assert (
        await client.get("/admin/tenants/nobody/webhook-secret", headers=ADMIN)
    ).status_code == 404
    assert (await client.get(path)).status_code == 401


async def test_dead_letters_are_listed_and_redelivered_through_the_admin_api(
    start_gateway: StartGateway, redis_url: str, redis_prefix: str, receiver: WebhookReceiver
) -> None:
    """The gateway and a second replica share Redis: the replica queues a delivery that fails
    every attempt; the gateway's admin API lists and redelivers it, signed with the secret
    the admin API showed once."""
    settings = {"redis_url": redis_url, "redis_prefix": redis_prefix, **FAST}
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, secret=SECRET, **settings)
    client = gateway.client
    tenant = {"name": "acme", "callback_hosts": ["127.0.0.1"]}
    assert (await client.post("/admin/tenants", json=tenant, headers=ADMIN)).status_code == 201
    issued = await client.post("/admin/tenants/acme/webhook-secret", json={}, headers=ADMIN)
    secret = issued.json()["secret"]

    store = RedisStore.from_url(redis_url, prefix=redis_prefix)
    config = WebhookConfig(
        max_attempts=2,
        backoff=0.02,
        poll=0.05,
        allow_networks=parse_networks("127.0.0.0/8"),
        allow_http=True,
    )
    replica = Webhooks(store, SECRET.encode(), config, CollectorRegistry())
    replica.start()
    try:
        receiver.answers = [500, 500]
        url = await replica.check_callback("acme", f"{receiver.url}/cb")
        message_id = await replica.enqueue("acme", url, "job.succeeded", {"id": "job_1"})

        async def dead() -> bool:
            listed = await client.get("/admin/webhooks/dead", headers=ADMIN)
            return [d["id"] for d in listed.json()["deliveries"]] == [message_id]

        await eventually(dead)
        [letter] = (await client.get("/admin/webhooks/dead", headers=ADMIN)).json()["deliveries"]
        assert letter["attempts"] == 2
        assert letter["last_status"] == 500
        assert "body" not in letter
        retried = await client.post(f"/admin/webhooks/dead/{message_id}/retry", headers=ADMIN)
        assert retried.status_code == 202, retried.text
        await receiver.wait_for(3)
        _, headers, body = receiver.received[2]
        assert headers["webhook-id"] == message_id
        assert Webhook(secret).verify(body, headers)["data"] == {"id": "job_1"}
        listed = await client.get("/admin/webhooks/dead", headers=ADMIN)
        assert listed.json()["deliveries"] == []
        missing = await client.post(f"/admin/webhooks/dead/{message_id}/retry", headers=ADMIN)
        assert missing.status_code == 404
        metrics = (await client.get("/metrics")).text
        assert "gateway_webhook_deliveries_total" in metrics
    finally:
        await replica.close()
        await store.close()


async def test_the_cli_manages_secrets_and_callback_hosts(
    start_gateway: StartGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await start_gateway(ROUTES, admin_token=ADMIN_TOKEN, secret=SECRET)
    monkeypatch.setenv("GATEWAY_ADMIN_TOKEN", ADMIN_TOKEN)
    common = ["--admin-url", gateway.url]

    async def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()

        def call() -> int:
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                return cli(list(argv))

        code = await asyncio.to_thread(call)  # the CLI's client is synchronous
        return code, out.getvalue(), err.getvalue()

    code, out, _ = await run(
        "tenants", "create", "acme", "--callback-hosts", "hooks.acme.test,*.acme.test", *common
    )
    assert code == 0
    assert '"*.acme.test"' in out
    code, out, err = await run("webhooks", "secret", "acme", "--grace", "1h", *common)
    assert code == 0
    assert '"secret": "whsec_' in out
    assert "shown this once" in err
    code, out, _ = await run("webhooks", "show", "acme", *common)
    assert code == 0
    assert '"exists": true' in out
    assert "whsec_" not in out
    code, out, _ = await run("webhooks", "dead", *common)
    assert code == 0
    assert '"deliveries": []' in out
    code, _, err = await run("webhooks", "retry", "msg_nothing", *common)
    assert code == 1
    assert "404" in err
    code, _, _ = await run("webhooks", "delete-secret", "acme", *common)
    assert code == 0

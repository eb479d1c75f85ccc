"""A job's ``Callback-URL`` end to end: the job runs, its end is delivered to the tenant's
receiver, signed per Standard Webhooks with the tenant's secret (checked with the reference
library), carrying the job as ``GET /jobs/{id}`` shows it; hosts off the allow-list refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from standardwebhooks.webhooks import Webhook

from tests.app.test_jobs import ASYNC, demo_table, done, start
from tests.conftest import RunningGateway, StartGateway
from tests.fakes import WebhookReceiver
from tests.support import ADMIN, V2, error_of

pytestmark = pytest.mark.anyio


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = await WebhookReceiver().start()
    yield hook
    await hook.stop()


async def tenant_with_hooks(gateway: RunningGateway, hosts: list[str]) -> tuple[str, str]:
    """A tenant allowed to call back ``hosts``: its API key and its webhook secret."""
    name = "t-" + uuid.uuid4().hex[:8]
    client = gateway.client
    made = await client.post(
        "/admin/tenants", json={"name": name, "callback_hosts": hosts}, headers=ADMIN
    )
    assert made.status_code == 201, made.text
    key = await client.post(f"/admin/tenants/{name}/keys", json={"scopes": ["*"]}, headers=ADMIN)
    secret = await client.post(f"/admin/tenants/{name}/webhook-secret", json={}, headers=ADMIN)
    assert secret.status_code == 201, secret.text
    return key.json()["key"], secret.json()["secret"]


async def test_a_finished_job_calls_back_signed_and_unlisted_hosts_are_refused(
    start_gateway: StartGateway,
    demo_backend: str,
    store_settings: dict[str, Any],
    receiver: WebhookReceiver,
) -> None:
    gateway = await start(
        start_gateway,
        demo_table(demo_backend, auth={"api_keys": True}),
        store_settings,
        webhook_allow_http=True,
        webhook_allow_networks="127.0.0.0/8",
    )
    key, secret = await tenant_with_hooks(gateway, ["127.0.0.1"])
    creds = {"X-API-Key": key}
    callback = f"{receiver.url}/hooks/jobs?src=gw"
    accepted = await gateway.client.post(
        "/v2/models/linear/infer", json=V2, headers={**ASYNC, **creds, "Callback-URL": callback}
    )
    assert accepted.status_code == 202, accepted.text
    job = await done(gateway, accepted.json()["id"], creds)
    assert job["status"] == "succeeded"
    await receiver.wait_for(1)

    path, headers, body = receiver.received[0]
    assert path == "/hooks/jobs?src=gw"
    event = Webhook(secret).verify(body, headers)  # raises unless signed with the secret
    assert event["type"] == "job.succeeded"
    assert event["data"] == job  # the job as GET /jobs/{id} shows it, result included
    assert headers["webhook-id"].startswith("msg_")
    assert orjson.loads(body)["data"]["result"]["outputs"][0]["data"] == [1.0, 9.0]
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "A" * 32).verify(body, headers)  # another secret does not verify

    for url, code in [
        ("https://elsewhere.test/hook", "callback_not_allowed"),  # not on the allow-list
        ("http://169.254.169.254/latest", "callback_not_allowed"),
        ("ftp://127.0.0.1/x", "invalid_callback"),
        ("/relative", "invalid_callback"),
    ]:
        refused = await gateway.client.post(
            "/v2/models/linear/infer", json=V2, headers={**ASYNC, **creds, "Callback-URL": url}
        )
        assert refused.status_code in (400, 403), (url, refused.text)
        assert error_of(refused)[0] == code, url
        assert isinstance(refused.json()["error"], str)  # the v2 protocol's error shape
    listed = await gateway.client.get("/jobs", headers=creds)
    assert len(listed.json()["jobs"]) == 1  # the refused submits queued nothing
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1  # one event for one job


async def test_a_cancelled_job_calls_back_too(
    start_gateway: StartGateway,
    demo_backend: str,
    store_settings: dict[str, Any],
    receiver: WebhookReceiver,
) -> None:
    gateway = await start(
        start_gateway,
        demo_table(demo_backend, jobs={"poll_interval": "10s"}, auth={"api_keys": True}),
        store_settings,
        webhook_allow_http=True,
        webhook_allow_networks="127.0.0.0/8",
        job_workers=False,  # nothing runs it: it stays queued until cancelled
    )
    key, secret = await tenant_with_hooks(gateway, ["127.0.0.1"])
    creds = {"X-API-Key": key}
    accepted = await gateway.client.post(
        "/v1/models/linear:predict",
        json={"instances": [[1, 2, 3, 4]]},
        headers={**ASYNC, **creds, "Callback-URL": f"{receiver.url}/c"},
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    cancelled = await gateway.client.delete(f"/jobs/{job_id}", headers=creds)
    assert cancelled.status_code == 200, cancelled.text
    await receiver.wait_for(1)
    _, headers, body = receiver.received[0]
    event = Webhook(secret).verify(body, headers)
    assert event["type"] == "job.cancelled"
    assert event["data"]["id"] == job_id
    assert event["data"]["status"] == "cancelled"

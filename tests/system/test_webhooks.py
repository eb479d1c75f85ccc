"""Webhook delivery end to end: a real receiver on 127.0.0.1, the memory store and a real Redis,
signatures checked with the Standard Webhooks reference library (``standardwebhooks``)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry
from standardwebhooks.webhooks import Webhook

from gateway.errors import CallbackNotAllowed, InvalidCallback
from gateway.store import MemoryStore, Store, Tenant
from gateway.store.redis.store import RedisStore
from gateway.webhooks.callbacks import parse_networks
from gateway.webhooks.config import WebhookConfig
from gateway.webhooks.keyring import mint
from gateway.webhooks.service import Webhooks
from tests.fakes import WebhookReceiver
from tests.support import eventually

pytestmark = pytest.mark.anyio

SECRET = b"s" * 32
FAST = WebhookConfig(
    max_attempts=3,
    backoff=0.02,
    max_backoff=0.05,
    timeout=5.0,
    poll=0.05,
    allow_networks=parse_networks("127.0.0.0/8"),
    allow_http=True,
)
MakeWebhooks = Callable[..., Webhooks]


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    if request.param == "memory":
        yield MemoryStore()
        return
    url: str = request.getfixturevalue("redis_url")
    prefix: str = request.getfixturevalue("redis_prefix")
    redis_store = RedisStore.from_url(url, prefix=prefix)
    yield redis_store
    await redis_store.close()


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    server = await WebhookReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
async def make_webhooks(store: Store) -> AsyncIterator[MakeWebhooks]:
    """Started webhook services (replicas) on the test's store; closed after."""
    made: list[Webhooks] = []

    def make(config: WebhookConfig = FAST, on: Store | None = None) -> Webhooks:
        webhooks = Webhooks(on or store, SECRET, config, CollectorRegistry())
        webhooks.start()
        made.append(webhooks)
        return webhooks

    yield make
    for webhooks in made:
        await webhooks.close()


async def tenant_with_secret(webhooks: Webhooks, grace: float = 3600.0) -> str:
    """Tenant ``acme`` allowed to call back 127.0.0.1; its new webhook secret."""
    await webhooks.store.put_tenant(Tenant("acme", callback_hosts=("127.0.0.1", "localhost")))
    minted = mint()
    await webhooks.keyring.install("acme", minted, grace)
    return minted.secret


def count(webhooks: Webhooks, outcome: str) -> float:
    """``gateway_webhook_deliveries_total{outcome=...}`` of one replica."""
    for metric in webhooks.metrics.deliveries.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels == {"outcome": outcome}:
                return sample.value
    return 0.0


def verified(secret: str, request: tuple[str, dict[str, str], bytes]) -> Any:
    _, headers, body = request
    return Webhook(secret).verify(body, headers)


async def test_a_delivery_arrives_signed_per_the_standard(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver
) -> None:
    webhooks = make_webhooks()
    secret = await tenant_with_secret(webhooks)
    url = await webhooks.check_callback("acme", f"{receiver.url}/cb?job=1#x")
    assert url == f"{receiver.url}/cb?job=1"
    message_id = await webhooks.enqueue("acme", url, "job.succeeded", {"id": "job_1"})
    await receiver.wait_for(1)
    path, headers, body = receiver.received[0]
    assert path == "/cb?job=1"
    assert headers["webhook-id"] == message_id
    assert headers["content-type"] == "application/json"
    payload = verified(secret, receiver.received[0])
    assert payload["type"] == "job.succeeded"
    assert payload["data"] == {"id": "job_1"}
    assert orjson.loads(body) == payload
    await eventually(lambda: _gone(webhooks, message_id))
    assert count(webhooks, "delivered") == 1


async def _gone(webhooks: Webhooks, message_id: str) -> bool:
    return await webhooks.store.webhook_get(message_id) is None


async def test_failing_twice_then_succeeding_is_retried_under_one_id(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver
) -> None:
    webhooks = make_webhooks()
    secret = await tenant_with_secret(webhooks)
    receiver.answers = [500, 503]
    url = await webhooks.check_callback("acme", f"{receiver.url}/cb")
    message_id = await webhooks.enqueue("acme", url, "job.failed", {"id": "job_2"})
    await receiver.wait_for(3)
    assert {h["webhook-id"] for _, h, _ in receiver.received} == {message_id}
    for request in receiver.received:
        verified(secret, request)  # each attempt signed afresh
    await eventually(lambda: _gone(webhooks, message_id))
    assert count(webhooks, "retried") == 2
    assert count(webhooks, "delivered") == 1
    assert await webhooks.dead() == []


async def test_always_failing_goes_to_the_dead_letters_and_can_be_redelivered(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    webhooks = make_webhooks()
    secret = await tenant_with_secret(webhooks)
    receiver.answers = [500, 500, 500]
    url = await webhooks.check_callback("acme", f"{receiver.url}/cb")
    message_id = await webhooks.enqueue("acme", url, "job.succeeded", {"id": "job_3"})

    async def dead() -> bool:
        return [d.id for d in await webhooks.dead()] == [message_id]

    await eventually(dead)
    [letter] = await webhooks.dead()
    assert letter.attempts == 3
    assert letter.last_status == 500
    assert len(receiver.received) == 3
    assert count(webhooks, "dead") == 1
    revived = await webhooks.redeliver(message_id)
    assert revived is not None
    await receiver.wait_for(4)
    assert receiver.received[3][1]["webhook-id"] == message_id
    verified(secret, receiver.received[3])
    await eventually(lambda: _gone(webhooks, message_id))
    assert await webhooks.dead() == []
    assert await webhooks.redeliver(message_id) is None
    key_text = secret.removeprefix("whsec_")
    assert caplog.records  # the dead letter was logged...
    assert key_text not in caplog.text  # ...never the secret


async def test_during_a_rotation_old_and_new_secrets_both_verify(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver
) -> None:
    webhooks = make_webhooks()
    old = await tenant_with_secret(webhooks)
    new = mint()
    await webhooks.keyring.install("acme", new, 3600.0)
    url = await webhooks.check_callback("acme", f"{receiver.url}/cb")
    await webhooks.enqueue("acme", url, "job.succeeded", {"id": "job_4"})
    await receiver.wait_for(1)
    assert len(receiver.received[0][1]["webhook-signature"].split(" ")) == 2
    assert verified(old, receiver.received[0]) == verified(new.secret, receiver.received[0])
    await webhooks.keyring.install("acme", mint(), 0.0)  # no grace: the old ones stop at once
    await webhooks.enqueue("acme", url, "job.succeeded", {"id": "job_5"})
    await receiver.wait_for(2)
    assert len(receiver.received[1][1]["webhook-signature"].split(" ")) == 1


async def test_a_redirect_is_not_followed(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver
) -> None:
    webhooks = make_webhooks()
    await tenant_with_secret(webhooks)
    receiver.answers = [307]
    url = await webhooks.check_callback("acme", f"{receiver.url}/cb")
    message_id = await webhooks.enqueue("acme", url, "job.succeeded", {})
    await receiver.wait_for(2)  # the 307 counts as a failure; the retry gets a 200
    assert [p for p, _, _ in receiver.received] == ["/cb", "/cb"]
    await eventually(lambda: _gone(webhooks, message_id))


async def test_callbacks_are_refused_before_anything_is_queued(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver
) -> None:
    webhooks = make_webhooks()
    await tenant_with_secret(webhooks)
    cases: list[tuple[str | None, str, type[Exception]]] = [
        (None, f"{receiver.url}/cb", CallbackNotAllowed),  # anonymous
        ("nobody", f"{receiver.url}/cb", CallbackNotAllowed),
        ("acme", "http://elsewhere.test/cb", CallbackNotAllowed),
        ("acme", "http://[::1]/cb", CallbackNotAllowed),
        ("acme", "http://169.254.169.254/latest", CallbackNotAllowed),
        ("acme", "http://0x7f000001/cb", InvalidCallback),
        ("acme", "not a url", InvalidCallback),
    ]
    for tenant, url, error in cases:
        with pytest.raises(error):
            await webhooks.check_callback(tenant, url)
    await webhooks.store.put_tenant(Tenant("bare", callback_hosts=("127.0.0.1",)))
    with pytest.raises(CallbackNotAllowed, match="no webhook secret"):
        await webhooks.check_callback("bare", f"{receiver.url}/cb")
    strict = make_webhooks(WebhookConfig(allow_http=True))  # no network allowed
    with pytest.raises(CallbackNotAllowed, match="loopback"):
        await strict.check_callback("acme", f"http://localhost:{receiver.port}/cb")
    assert await webhooks.check_callback("acme", f"http://localhost:{receiver.port}/cb")


async def test_the_address_is_checked_again_at_delivery(
    make_webhooks: MakeWebhooks, receiver: WebhookReceiver, store: Store
) -> None:
    """Accepted at submit time, then the operator closes the network: no request is sent,
    the delivery dies after its attempts."""
    open_ = make_webhooks(FAST)
    await tenant_with_secret(open_)
    url = await open_.check_callback("acme", f"{receiver.url}/cb")
    await open_.close()
    closed = make_webhooks(WebhookConfig(max_attempts=2, backoff=0.02, poll=0.05, allow_http=True))
    message_id = await closed.enqueue("acme", url, "job.succeeded", {})

    async def dead() -> bool:
        return [d.id for d in await closed.dead()] == [message_id]

    await eventually(dead)
    [letter] = await closed.dead()
    assert "loopback" in (letter.last_error or "")
    assert receiver.received == []


async def test_replicas_deliver_each_webhook_once(
    redis_url: str, redis_prefix: str, receiver: WebhookReceiver
) -> None:
    """Two replicas on one Redis, 20 deliveries queued through both: each arrives once."""
    stores = [RedisStore.from_url(redis_url, prefix=redis_prefix) for _ in range(2)]
    replicas = [Webhooks(s, SECRET, FAST, CollectorRegistry()) for s in stores]
    try:
        for replica in replicas:
            replica.start()
        await tenant_with_secret(replicas[0])
        url = await replicas[1].check_callback("acme", f"{receiver.url}/cb")
        ids = [
            await replicas[n % 2].enqueue("acme", url, "job.succeeded", {"n": n}) for n in range(20)
        ]
        await receiver.wait_for(20)
        await eventually(lambda: _all_gone(replicas[0], ids))
        seen = [h["webhook-id"] for _, h, _ in receiver.received]
        assert sorted(seen) == sorted(ids)  # every one, none twice
        assert sum(count(r, "delivered") for r in replicas) == 20
    finally:
        for replica, store in zip(replicas, stores, strict=True):
            await replica.close()
            await store.close()


async def _all_gone(webhooks: Webhooks, ids: list[str]) -> bool:
    return all([await webhooks.store.webhook_get(i) is None for i in ids])

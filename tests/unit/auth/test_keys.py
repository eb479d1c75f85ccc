"""API keys: format, hashing, the verifier's cache, invalidation and last-used write-behind."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Any

import pytest

from gateway.auth.keys import KeyVerifier, hash_secret, make_key, split_key
from gateway.errors import Unauthorized
from gateway.store import RESYNC, APIKey, MemoryStore, Tenant

pytestmark = pytest.mark.anyio
SECRET = b"server-secret"


class CountingStore(MemoryStore):
    """The in-memory store, counting the reads a verification makes."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0
        self.touched: list[Mapping[str, float]] = []

    async def get_key(self, key_id: str) -> APIKey | None:
        self.reads += 1
        return await super().get_key(key_id)

    async def get_tenant(self, name: str) -> Tenant | None:
        self.reads += 1
        return await super().get_tenant(name)

    async def touch_keys(self, used: Mapping[str, float]) -> None:
        self.touched.append(dict(used))
        await super().touch_keys(used)


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    store = CountingStore()
    await store.put_tenant(Tenant(name="acme"))
    yield store
    await store.close()


async def new_key(store: CountingStore, **record: Any) -> str:
    made = make_key(SECRET, tenant="acme", created_at=time.time(), **record)
    await store.put_key(made.record)
    return made.key


def test_keys_are_recognisable_and_only_their_hash_is_kept() -> None:
    made = make_key(SECRET, tenant="acme")
    parts = split_key(made.key)
    assert parts is not None
    key_id, secret = parts
    assert made.key.startswith("gk_")
    assert (len(key_id), len(secret)) == (16, 43)
    assert made.record.key_id == key_id
    assert made.record.secret_hash == hash_secret(SECRET, secret)
    assert secret not in made.record.to_json()
    assert make_key(SECRET, tenant="acme").key != made.key


async def test_a_cached_key_is_checked_without_the_store(store: CountingStore) -> None:
    key = await new_key(store, scopes=("predict:*",))
    verifier = KeyVerifier(store, SECRET)
    await verifier.verify(key)
    reads = store.reads
    for _ in range(100):
        record, tenant = await verifier.verify(key)
    assert store.reads == reads  # no round trip per request
    assert (record.scopes, tenant and tenant.name) == (("predict:*",), "acme")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("gk_short", "malformed key"),
        ("gk_0123456789abcdef_" + "A" * 43, "unknown key"),
    ],
)
async def test_bad_keys(store: CountingStore, text: str, reason: str) -> None:
    with pytest.raises(Unauthorized, match=reason) as caught:
        await KeyVerifier(store, SECRET).verify(text)
    assert text not in caught.value.message
    assert "invalid_token" in caught.value.headers["WWW-Authenticate"]


async def test_a_right_id_with_a_wrong_secret_is_unknown(store: CountingStore) -> None:
    key = await new_key(store)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    with pytest.raises(Unauthorized, match="unknown key"):
        await KeyVerifier(store, SECRET).verify(forged)
    with pytest.raises(Unauthorized, match="unknown key"):
        await KeyVerifier(store, b"another-secret").verify(key)


async def test_invalidation_drops_a_revoked_key_at_once(store: CountingStore) -> None:
    key = await new_key(store)
    verifier = KeyVerifier(store, SECRET)
    record, _ = await verifier.verify(key)
    await store.put_key(replace(record, revoked_at=time.time()))
    await verifier.verify(key)  # still cached: nothing said it changed
    verifier.invalidate(f"key:{record.key_id}")
    with pytest.raises(Unauthorized, match="revoked"):
        await verifier.verify(key)


async def test_tenant_and_resync_messages(store: CountingStore) -> None:
    key = await new_key(store)
    verifier = KeyVerifier(store, SECRET)
    await verifier.verify(key)
    await store.put_tenant(Tenant(name="acme", disabled=True))
    verifier.invalidate("tenant:acme")
    with pytest.raises(Unauthorized, match="tenant disabled"):
        await verifier.verify(key)
    await store.put_tenant(Tenant(name="acme"))
    verifier.invalidate(RESYNC)
    await verifier.verify(key)


async def test_expired_keys_and_write_behind_last_use(store: CountingStore) -> None:
    expired = await new_key(store, expires_at=time.time() - 1)
    verifier = KeyVerifier(store, SECRET)
    with pytest.raises(Unauthorized, match="expired"):
        await verifier.verify(expired)
    key = await new_key(store)
    await verifier.verify(key)
    await verifier.verify(key)
    assert store.touched == []  # nothing written per request
    await verifier.flush()
    (touched,) = store.touched
    key_id = key.split("_")[1]
    assert list(touched) == [key_id]
    stored = await store.get_key(key_id)
    assert stored is not None
    assert stored.last_used_at == touched[key_id]


async def test_one_verifier_hashes_each_secret_afresh(store: CountingStore) -> None:
    # the verifier keys its HMAC once and copies it per secret: a secret checked before
    # (right or wrong) leaves nothing behind for the next one
    key = await new_key(store)
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    verifier = KeyVerifier(store, SECRET)
    for _ in range(3):
        await verifier.verify(key)
        with pytest.raises(Unauthorized, match="unknown key"):
            await verifier.verify(forged)


def test_the_stored_hash_is_the_hmac_of_the_secret() -> None:
    # records in the store carry this exact text: it must not change shape
    expected = hmac.new(SECRET, b"s3cret", hashlib.sha256).hexdigest()
    assert hash_secret(SECRET, "s3cret") == expected

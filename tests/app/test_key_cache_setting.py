"""``GATEWAY_KEY_CACHE_SIZE``: the API-key cache's size is an operator's setting, and the
verifier's LRU holds no more than it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.curves.routes import routes_yaml
from gateway.app import open_state
from gateway.auth.keys import KeyVerifier, make_key
from gateway.settings import Settings
from gateway.store import MemoryStore, Tenant


@pytest.mark.anyio
async def test_the_key_cache_size_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GATEWAY_KEY_CACHE_SIZE", "123")
    settings = Settings()
    assert settings.key_cache_size == 123
    config = tmp_path / "routes.yaml"
    config.write_text(routes_yaml("http://127.0.0.1:9", 1))
    async with open_state(settings, config) as state:
        assert state.services.keys.cache_size == 123
    assert Settings.model_fields["key_cache_size"].default == 100_000


def test_a_key_cache_size_below_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_KEY_CACHE_SIZE", "0")
    with pytest.raises(ValueError, match="key_cache_size"):
        Settings()


@pytest.mark.anyio
async def test_the_cache_keeps_at_most_its_size() -> None:
    secret = b"s" * 32
    store = MemoryStore()
    await store.put_tenant(Tenant(name="acme"))
    made = [make_key(secret, tenant="acme") for _ in range(5)]
    for new in made:
        await store.put_key(new.record)
    verifier = KeyVerifier(store, secret, cache_size=3)
    for new in made:
        record, _ = await verifier.verify(new.key)
        assert record.key_id == new.record.key_id
    assert verifier.cached == 3
    # the first key fell out of the LRU but still verifies (read from the store again)
    record, _ = await verifier.verify(made[0].key)
    assert record.key_id == made[0].record.key_id
    assert verifier.cached == 3

"""The Redis key layout: the keys of one Lua call, and of one group, share a hash slot."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from gateway.store.redis.keys import KeyLayout

NASTY_NAMES = ["acme", "", "}", "{", "{}", "}x{", "a}b", "{acme}", "t:{x}", "ünï cødé", "a" * 300]


@pytest.mark.parametrize("prefix", ["gw:", "", "{gw}:", "gw}:"])
@pytest.mark.parametrize("name", NASTY_NAMES)
def test_the_keys_of_one_lua_call_share_a_hash_slot(prefix: str, name: str) -> None:
    layout = KeyLayout(prefix)
    assert key_slot(layout.tenant(name).encode()) == key_slot(layout.tenant_keys(name).encode())


@pytest.mark.parametrize("prefix", ["gw{:", "{}:", "gw:{", "g{}w"])
def test_a_prefix_that_would_split_a_hash_tag_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="hash tag"):
        KeyLayout(prefix)


@pytest.mark.parametrize("prefix", ["gw:", "", "{gw}:"])
@pytest.mark.parametrize("group", ["t:acme", "{", "{}", "a}b", "ip:10.0.0.1", "ünï", "x" * 300])
def test_the_keys_of_a_group_share_a_hash_slot(prefix: str, group: str) -> None:
    layout = KeyLayout(prefix)
    keys = [layout.limit(group, "rate"), layout.limit(group, "day") + ":29000000"]
    keys += [layout.cache(group, "fraud:3:ab"), layout.cache_lock(group, "fraud:3:ab")]
    assert len({key_slot(k.encode()) for k in keys}) == 1

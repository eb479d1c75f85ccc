"""A reload carries over what did not change (issue 16): an unchanged model keeps its model
object and its targets, a backend whose definition did not change keeps its pool (connections,
health, ejections) and metadata cache even when the models it serves changed, and its health
loop follows the server models it now serves. A changed model is rebuilt. An invalid file
changes nothing, and the next good one is compared with the last good one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.auth.keys import KeyVerifier
from gateway.backends.live import LiveBackend
from gateway.codecs.tensors import Signature
from gateway.config.live import Services
from gateway.config.reload import Reloader
from gateway.errors import ModelNotFound
from gateway.store import MemoryStore
from tests.unit.policies.support import SECRET

pytestmark = pytest.mark.anyio
DEAD = "http://127.0.0.1:1"  # refused at once: the one probe each health loop makes

HEADER = f"backends:\n  a: {{kind: kserve, urls: ['{DEAD}'], health: {{interval: 1h}}}}\nmodels:\n"


def table(count: int, renamed: int | None = None, native: dict[int, str] | None = None) -> str:
    """``count`` models, one line each; ``renamed``: that one is ``r<i>``; ``native``: those
    models' server model names."""
    lines = [HEADER]
    for i in range(count):
        name = f"r{i}" if i == renamed else f"m{i}"
        server = (native or {}).get(i, "linear")
        lines.append(f'  {name}: {{versions: {{"1": {{backend: a, name: {server}}}}}}}\n')
    return "".join(lines)


@pytest.fixture
async def reloader(tmp_path: Path) -> AsyncIterator[Reloader]:
    store = MemoryStore()
    async with aiohttp.ClientSession() as session, httpx.AsyncClient() as http:
        services = Services(session, http, store, KeyVerifier(store, SECRET), SECRET)
        path = tmp_path / "routes.yaml"
        path.write_text(table(300), encoding="utf-8")
        made = Reloader(path, services, CollectorRegistry(), lambda _: {})
        await made.start()
        try:
            yield made
        finally:
            await made.close()


async def test_a_one_line_change_keeps_everything_it_does_not_touch(reloader: Reloader) -> None:
    before = reloader.current
    live = before.backends["a"]
    replica = live.pool.replicas[0]
    replica.unready.add(("linear", None))  # what the health checks had learnt
    reloader.path.write_text(table(300, renamed=150), encoding="utf-8")
    status = await reloader.reload("test")
    assert status.last_ok, status.last_errors
    assert status.last_changes == ["- model m150", "+ model r150 (versions 1)"]
    after = reloader.current
    assert after is not before
    kept = [
        name for name, model in after.table.models.items() if before.table.models.get(name) is model
    ]
    assert len(kept) == 299  # every model but the renamed one: the same objects
    now = after.backends["a"]
    assert now is not live  # it serves other model names...
    assert now.pool is live.pool  # ...on the same pool: connections, replicas, breaker
    assert now.adapter is live.adapter
    assert now.target("m0", "1") is live.target("m0", "1")
    assert now.target("r150", "1").model == "r150"
    assert now.pool.replicas[0] is replica
    assert not after.serving("m0", "1")  # the replica is still not ready for 'linear'
    with pytest.raises(ModelNotFound):
        after.resolve("m150", None)
    assert after.resolve("r150", None).backend is now


async def test_the_metadata_cache_is_carried_over_for_the_models_still_served(
    reloader: Reloader,
) -> None:
    reloader.path.write_text(table(300, native={8: "gone"}), encoding="utf-8")
    assert (await reloader.reload("test")).last_ok
    live: LiveBackend = reloader.current.backends["a"]
    kept, dropped = live.target("m1", "1"), live.target("m8", "1")
    known = Signature(inputs=(), outputs=())
    for target in (kept, dropped):  # as metadata answers leave it (no server is asked)
        live._metadata[target.key] = (float("inf"), known)
    reloader.path.write_text(table(300, renamed=7), encoding="utf-8")  # and m8 back to linear
    assert (await reloader.reload("test")).last_ok
    now = reloader.current.backends["a"]
    assert now is not live
    assert await now.signature(kept) is known  # from the cache: the server was not asked
    assert dropped.key not in now._metadata  # a server model no longer served


async def test_the_health_loop_follows_the_server_models_a_reload_adds(
    reloader: Reloader,
) -> None:
    pool = reloader.current.backends["a"].pool
    checker = pool.health
    names = {t.name for t in checker.targets.values()}
    reloader.path.write_text(table(300, renamed=9), encoding="utf-8")
    assert (await reloader.reload("test")).last_ok
    assert {t.name for t in checker.targets.values()} == names  # the same server model
    reloader.path.write_text(table(300, native={5: "other"}), encoding="utf-8")
    assert (await reloader.reload("test")).last_ok
    assert reloader.current.backends["a"].pool is pool
    assert pool.health is checker  # the same loop (the replicas keep what they learnt) ...
    assert {t.name for t in checker.targets.values()} == names | {"other"}  # ... retargeted


async def test_a_changed_model_is_rebuilt(reloader: Reloader) -> None:
    before = reloader.current
    reloader.path.write_text(table(300, native={3: "other"}), encoding="utf-8")
    assert (await reloader.reload("test")).last_ok
    after = reloader.current
    assert after.table.models["m3"] is not before.table.models["m3"]
    assert after.backends["a"].target("m3", "1").name == "other"
    assert after.table.models["m4"] is before.table.models["m4"]


async def test_an_invalid_file_changes_nothing_and_the_next_is_compared_with_the_last_good(
    reloader: Reloader,
) -> None:
    good = reloader.current
    reloader.path.write_text(table(300) + "  m0: {versions: {}}\n", encoding="utf-8")
    status = await reloader.reload("test")
    assert not status.last_ok
    assert status.last_errors[0] == "line 304: models.m0: duplicate key 'm0'"
    assert reloader.current is good
    reloader.path.write_text(table(300, renamed=299), encoding="utf-8")
    assert (await reloader.reload("test")).last_ok
    assert reloader.current.table.models["m0"] is good.table.models["m0"]

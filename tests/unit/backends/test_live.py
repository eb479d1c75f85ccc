"""A live backend's metadata cache, as the inference path reads it (no coroutine for a hit)."""

from __future__ import annotations

import time

import aiohttp
import pytest

from gateway.backends.h1.client import Client
from gateway.backends.kserve import KServeBackend
from gateway.backends.live import LiveBackend
from gateway.backends.pool import ReplicaPool
from gateway.backends.upstream import Target
from gateway.codecs.tensors import Signature, TensorMeta
from gateway.config.model import Backend

pytestmark = pytest.mark.anyio


async def test_the_cached_signature_is_known_without_awaiting_until_it_expires() -> None:
    client = Client()
    async with aiohttp.ClientSession() as session:
        spec = Backend.model_validate({"kind": "kserve", "urls": ["http://127.0.0.1:1"]})
        pool = ReplicaPool("a", spec, session, client)
        declared = Signature(inputs=(TensorMeta("x", "FP32", (1,)),), outputs=())
        target = Target("m", "1", "m", None, declared)  # declared: no server is asked
        live = LiveBackend("a", spec, pool, KServeBackend(pool), [target])
        assert live.known_signature(target) is None  # never fetched: to be awaited
        assert await live.signature(target) is declared
        known = live.known_signature(target)
        assert known is not None
        assert known[0] is declared
        live._metadata[target.key] = (time.monotonic() - 1.0, declared)  # its TTL ran out
        assert live.known_signature(target) is None
    await client.close()

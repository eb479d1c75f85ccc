"""The workload of ``bench.redis_clients``, standard library only (so a throwaway venv with
another Redis client, ``bench.redis_coredis``, runs the very same loop).

Each worker coroutine alternates the two hot commands of the gateway's limit + cache step: an
EVALSHA of a small script shaped like the limits script (one key: read a bucket, write it back,
return an array of strings) and a ``SET key value PX``. CPU is this process's user and system
time (``resource.getrusage``) over a run of ``seconds``; the Redis server's CPU is not counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import resource
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

SCRIPT = """
local t = redis.call('TIME')
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local level = tonumber(s[1] or ARGV[1])
redis.call('HSET', KEYS[1], 'tokens', ARGV[1], 'ts', t[1])
redis.call('PEXPIRE', KEYS[1], 60000)
return {1, '0', string.format('%.17g', level), '0.5', ''}
"""
SHA = hashlib.sha1(SCRIPT.encode()).hexdigest()
VALUE = b"v" * 256  # a small cache entry
TTL_MS = 30_000

# (worker index) -> one EVALSHA then one SET, awaited in turn: two commands
Pair = Callable[[int], Awaitable[Any]]


async def _worker(pair: Pair, index: int, stop: float, counts: list[int]) -> None:
    loop = asyncio.get_running_loop()
    done = 0
    while loop.time() < stop:
        await pair(index)
        done += 2
    counts[index] = done


async def measure(pair: Pair, concurrency: int, seconds: float) -> tuple[float, float, float]:
    """(CPU µs per command, of which user µs, commands per second) of ``concurrency`` workers
    over ``seconds``, after a short warm-up."""
    loop = asyncio.get_running_loop()
    counts = [0] * concurrency
    warm = loop.time() + min(0.2, seconds / 5)
    await asyncio.gather(*(_worker(pair, i, warm, counts) for i in range(concurrency)))
    counts = [0] * concurrency
    before, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    stop = loop.time() + seconds
    await asyncio.gather(*(_worker(pair, i, stop, counts) for i in range(concurrency)))
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - wall
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    commands = sum(counts)
    return (user + system) / commands * 1e6, user / commands * 1e6, commands / wall


def median(values: list[float]) -> float:
    return statistics.median(values)

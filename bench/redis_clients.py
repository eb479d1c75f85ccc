"""CPU per command of the Redis clients for the gateway's hot commands (bench/README.md,
"Redis client").

    .venv/bin/python -m bench.redis_clients [--seconds 1] [--rounds 3] [--concurrency 1,16,64]
        [--cpus 0 --redis-cpus 1] [--coredis /tmp/venv-coredis/bin/python]

A throwaway ``redis-server`` on a free loopback port (no persistence, stopped by PID at the
end), uvloop, the workload of :mod:`bench.redis_workload` (EVALSHA of a small limits-like
script, then SET PX, per worker). The clients, each built on the pool ``RedisStore.from_url``
builds (:func:`~gateway.store.redis.store.standalone_client`):

- ``redis-py``: ``execute_command`` per command, undecoded (what a Cluster store still does);
- ``redis-py + AutoPipeline``: the store's hot path before the lane (the class is kept below,
  as it was in ``gateway/store/redis/batch.py``): commands of one loop turn in one pipeline;
- ``lane``: :class:`gateway.store.redis.lane.Lane`; ``lane x2``: two lanes, round robin;
- ``coredis`` with ``--coredis PYTHON``: an interpreter of a throwaway venv with uvloop and
  coredis (``python -m venv /tmp/venv-coredis && /tmp/venv-coredis/bin/pip install uvloop
  coredis``), running :mod:`bench.redis_coredis`.

``--cpus`` pins this process (and coredis's), ``--redis-cpus`` the server: at c=1 the figures
depend on whether they share a core (bench/README.md). Rounds interleave the clients; the
table shows the median CPU µs per command of the rounds (user + system time of this process,
``resource.getrusage``; its user part in brackets).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import uvloop
from redis.asyncio import Redis
from redis.client import NEVER_DECODE

from bench.procs import free_port
from bench.redis_workload import SCRIPT, SHA, TTL_MS, VALUE, Pair, measure, median
from gateway.store.redis.lane import Lane
from gateway.store.redis.store import standalone_client

ROOT = Path(__file__).resolve().parent.parent
_UNDECODED = {NEVER_DECODE: True}


class AutoPipeline:
    """The store's auto-pipelining before the lane (``gateway/store/redis/batch.py``, removed
    by the lane), kept here as the baseline."""

    def __init__(self, client: Redis, max_batch: int = 64) -> None:
        self._client = client
        self._max = max_batch
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, *command: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((command, future))
        if len(self._queue) >= self._max:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        live = [(command, future) for command, future in batch if not future.done()]
        if not live:
            return
        try:
            if len(live) == 1:
                reply = await self._client.execute_command(*live[0][0], **_UNDECODED)  # type: ignore[no-untyped-call]
                replies: list[Any] = [reply]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for command, _ in live:
                        pipe.execute_command(*command, **_UNDECODED)
                    replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the bench's baseline, as it was
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), reply in zip(live, replies, strict=True):
            if not future.done():
                if isinstance(reply, Exception):
                    future.set_exception(reply)
                else:
                    future.set_result(reply)


Send = Callable[..., Any]


def _pair(send: Callable[[int], Send]) -> Pair:
    """The workload's two commands, each through ``send(worker)``."""

    async def pair(index: int) -> None:
        key = f"bench:{{{index}}}"
        await send(index)("EVALSHA", SHA, "1", f"{key}:l", "100")
        await send(index)("SET", f"{key}:c", VALUE, "PX", str(TTL_MS))

    return pair


@asynccontextmanager
async def _redis_py(url: str) -> AsyncIterator[Pair]:
    client = standalone_client(url)

    async def direct(*command: Any) -> Any:
        return await client.execute_command(*command, **_UNDECODED)  # type: ignore[no-untyped-call]

    try:
        yield _pair(lambda _: direct)
    finally:
        await client.aclose()


@asynccontextmanager
async def _auto_pipeline(url: str) -> AsyncIterator[Pair]:
    client = standalone_client(url)
    batch = AutoPipeline(client)
    try:
        yield _pair(lambda _: batch.call)
    finally:
        await client.aclose()


def _lanes(count: int) -> Callable[[str], AbstractAsyncContextManager[Pair]]:
    @asynccontextmanager
    async def lanes(url: str) -> AsyncIterator[Pair]:
        client = standalone_client(url)
        made = [Lane.from_pool(client.connection_pool) for _ in range(count)]
        ready = [lane for lane in made if lane is not None]
        try:
            yield _pair(lambda index: ready[index % count].call)
        finally:
            for lane in ready:
                await lane.close()
            await client.aclose()

    return lanes


CLIENTS: dict[str, Callable[[str], AbstractAsyncContextManager[Pair]]] = {
    "redis-py": _redis_py,
    "redis-py + AutoPipeline": _auto_pipeline,
    "lane": _lanes(1),
    "lane x2": _lanes(2),
}


Figures = dict[str, dict[int, list[tuple[float, float]]]]  # client -> c -> (CPU, user) µs


async def run(url: str, concurrency: list[int], seconds: float, rounds: int) -> Figures:
    loader = Redis.from_url(url)
    await loader.script_load(SCRIPT)
    await loader.aclose()
    found: Figures = {name: {c: [] for c in concurrency} for name in CLIENTS}
    for _ in range(rounds):
        for c in concurrency:
            for name, client in CLIENTS.items():
                async with client(url) as pair:
                    cpu, user, _ = await measure(pair, c, seconds)
                found[name][c].append((cpu, user))
    return found


def _coredis(python: str, port: int, args: argparse.Namespace) -> dict[int, Any] | str:
    command = [python, "-m", "bench.redis_coredis", "--port", str(port)]
    command += ["--seconds", str(args.seconds), "--rounds", str(args.rounds)]
    command += ["--concurrency", args.concurrency]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip()[-500:]}"
    found = json.loads(done.stdout)
    return {int(c): [(cpu, user) for cpu, user in rounds] for c, rounds in found.items()}


def _start_redis(folder: Path, cpus: str | None) -> tuple[subprocess.Popen[bytes], int]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH (apt-get install -y redis-server)")
    port = free_port()
    command = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly"]
    command += ["no", "--dir", str(folder), "--logfile", str(folder / "redis.log")]
    if cpus is not None:
        command = ["taskset", "-c", cpus, *command]
    server = subprocess.Popen(command)
    deadline = time.monotonic() + 20
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith(b"+PONG"):
                    return server, port
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            sys.exit(f"redis-server on port {port} did not start")
        time.sleep(0.05)


def _cores(text: str) -> set[int]:
    """``0,2-3`` -> {0, 2, 3}."""
    cores: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cores.update(range(int(low), int(high or low) + 1))
    return cores


def _table(found: Figures, concurrency: list[int]) -> str:
    """CPU µs per command (its user part in brackets) and the AutoPipeline's CPU over each's."""
    base = found.get("redis-py + AutoPipeline", {})
    head = ["client", *(f"c={c}" for c in concurrency), *(f"x c={c}" for c in concurrency)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, by_c in found.items():
        cells, ratios = [], []
        for c in concurrency:
            cpu = median([total for total, _ in by_c[c]])
            user = median([user for _, user in by_c[c]])
            cells.append(f"{cpu:.1f} ({user:.1f})")
            ratios.append(f"{median([t for t, _ in base[c]]) / cpu:.1f}" if base.get(c) else "–")
        lines.append(f"| {name} | " + " | ".join(cells + ratios) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--coredis", default=None, help="python of a venv with coredis+uvloop")
    parser.add_argument("--cpus", default=None, help="cores of this process (taskset list)")
    parser.add_argument("--redis-cpus", default=None, help="cores of the redis-server")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    if args.cpus is not None:
        os.sched_setaffinity(0, _cores(args.cpus))
    with tempfile.TemporaryDirectory(prefix="bench-redis-") as folder:
        server, port = _start_redis(Path(folder), args.redis_cpus)
        try:
            url = f"redis://127.0.0.1:{port}/0"
            found = uvloop.run(run(url, concurrency, args.seconds, args.rounds))
            note = "coredis: skipped (no --coredis PYTHON)"
            if args.coredis:
                measured = _coredis(args.coredis, port, args)
                if isinstance(measured, str):
                    note = f"coredis: {measured}"
                else:
                    found["coredis"], note = measured, ""
        finally:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(10)
    print(f"CPU µs per command, user + system (user), median of {args.rounds} rounds of")
    print(f"{args.seconds} s; x: the AutoPipeline's CPU over the client's")
    print(_table(found, concurrency))
    if note:
        print(note)


if __name__ == "__main__":
    main()

"""Automatic pipelining: the hot-path commands issued in one event-loop turn share a round trip.

Under load, many requests reach their rate-limit check in the same turn of the event loop.
Sent one by one, each command pays redis-py's full per-call cost (pool checkout, packing,
parsing, release: about 75 µs of CPU here); sent as one pipeline they pay it once, and a batch
of 8 costs about 19 µs per command (``bench/README.md``). This is what ioredis calls
auto-pipelining. A lone command goes out alone, as before, so one caller at a time pays nothing
extra. Each command keeps its own reply or error; a connection failure fails the whole batch,
as it would have failed each command.

Only for a single Redis server: a ``RedisCluster`` pipeline refuses ``EVALSHA`` and splits
batches per node anyway, so cluster stores send their commands directly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.client import NEVER_DECODE

_UNDECODED = {NEVER_DECODE: True}


class AutoPipeline:
    """``await batch.call(*command)`` → the reply (undecoded), or raises the command's error."""

    def __init__(self, client: Redis, max_batch: int = 64) -> None:
        self._client = client
        self._max = max_batch
        self._queue: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, *command: Any) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)  # after every task already runnable in this turn
        self._queue.append((command, future))
        if len(self._queue) >= self._max:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._tasks.add(task)  # kept until done: a task only weakly referenced can vanish
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        live = [(command, future) for command, future in batch if not future.done()]
        if not live:
            return  # every caller gave up (timed out) before the batch left
        try:
            if len(live) == 1:
                reply = await self._client.execute_command(*live[0][0], **_UNDECODED)  # type: ignore[no-untyped-call]
                replies: list[Any] = [reply]
            else:
                async with self._client.pipeline(transaction=False) as pipe:
                    for command, _ in live:
                        pipe.execute_command(*command, **_UNDECODED)
                    replies = await pipe.execute(raise_on_error=False)
        except Exception as exc:  # noqa: BLE001 - the connection or the pool: every caller sees it
            for _, future in live:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutting down): so are the callers
            for _, future in live:
                future.cancel()
            raise
        for (_, future), reply in zip(live, replies, strict=True):
            if future.done():
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def close(self) -> None:
        self._flush()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

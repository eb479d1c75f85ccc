"""The workload of :mod:`bench.redis_workload` on coredis, for ``bench.redis_clients --coredis``.

Run by the interpreter of a throwaway venv holding only uvloop and coredis (never the project's
venv); prints ``{concurrency: [[CPU µs, user µs] per command of each round]}`` as JSON.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import coredis  # type: ignore[import-not-found, unused-ignore]
import uvloop

from bench.redis_workload import SCRIPT, TTL_MS, VALUE, Pair, measure


async def run(port: int, concurrency: list[int], seconds: float, rounds: int) -> dict[int, Any]:
    client = coredis.Redis(host="127.0.0.1", port=port, decode_responses=False)
    found: dict[int, list[list[float]]] = {c: [] for c in concurrency}
    async with client:
        sha = await client.script_load(SCRIPT)

        async def pair(index: int) -> None:
            key = f"bench:{{{index}}}"
            await client.evalsha(sha, keys=[f"{key}:l"], args=["100"])
            await client.set(f"{key}:c", VALUE, px=TTL_MS)

        typed: Pair = pair
        for _ in range(rounds):
            for c in concurrency:
                cpu, user, _ = await measure(typed, c, seconds)
                found[c].append([cpu, user])
    return dict(found)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args()
    concurrency = [int(c) for c in args.concurrency.split(",")]
    print(json.dumps(uvloop.run(run(args.port, concurrency, args.seconds, args.rounds))))


if __name__ == "__main__":
    main()

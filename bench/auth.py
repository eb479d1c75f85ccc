"""Per-request cost of checking credentials, cached and uncached (µs per check, one core).

    .venv/bin/python -m bench.auth [--redis redis://127.0.0.1:6379/0] [-n 2000]

API keys: a cached check is one HMAC and a dict lookup; an uncached one adds the store reads
(in-memory, or a real Redis round trip). JWTs: cached = a repeated token (SHA-256 + LRU);
uncached = a fresh token each time (full signature check) per algorithm.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from gateway.auth.jwt import IssuerSpec, JWTVerifier
from gateway.auth.keys import KeyVerifier, make_key
from gateway.store import Store, Tenant, open_store


async def timed(n: int, check: Callable[[int], Awaitable[object]]) -> float:
    for i in range(min(n, 50)):
        await check(i)  # warm up
    started = time.perf_counter()
    for i in range(n):
        await check(i)
    return (time.perf_counter() - started) / n * 1e6


async def keys(store: Store, n: int, label: str) -> list[tuple[str, float]]:
    secret = b"bench-secret"
    verifier = KeyVerifier(store, secret)
    await store.put_tenant(Tenant(name="bench"))
    new = make_key(secret, tenant="bench", scopes=("predict:*",), created_at=time.time())
    await store.put_key(new.record)
    cached = await timed(n, lambda _: verifier.verify(new.key))

    async def uncached(_: int) -> object:
        verifier.invalidate("*")
        return await verifier.verify(new.key)

    cold = await timed(n, uncached)
    await store.delete_tenant("bench")
    return [(f"API key, cached ({label})", cached), (f"API key, uncached ({label})", cold)]


async def tokens(n: int) -> list[tuple[str, float]]:
    now = int(time.time())
    signers: dict[str, tuple[Any, bytes | None]] = {
        "HS256": (b"x" * 32, b"x" * 32),
        "RS256": (rsa.generate_private_key(public_exponent=65537, key_size=2048), None),
        "ES256": (ec.generate_private_key(ec.SECP256R1()), None),
        "EdDSA": (ed25519.Ed25519PrivateKey.generate(), None),
    }
    rows = []
    async with httpx.AsyncClient() as http:
        for alg, (private, shared) in signers.items():
            public = shared if shared is not None else private.public_key()
            spec = IssuerSpec(
                issuer="bench",
                algorithms=(alg,),
                audience=("gw",),
                keys={} if shared else {"k": public},
                secret=shared,
            )
            verifier = JWTVerifier([spec], http)
            made = [
                jwt.encode(
                    {
                        "iss": "bench",
                        "aud": "gw",
                        "sub": "s",
                        "exp": now + 600,
                        "scope": "a b",
                        "jti": uuid.uuid4().hex,
                    },
                    private,
                    algorithm=alg,
                    headers=None if shared else {"kid": "k"},
                )
                for _ in range(n + 50)
            ]
            cached = await timed(n, lambda _, v=verifier, m=made: v.verify(m[0]))  # type: ignore[misc]
            cold = await timed(n, lambda i, v=verifier, m=made: v.verify(m[i]))  # type: ignore[misc]
            rows += [(f"JWT {alg}, cached", cached), (f"JWT {alg}, uncached", cold)]
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis", default=None)
    parser.add_argument("-n", type=int, default=2000)
    args = parser.parse_args()
    rows = await keys(open_store(None), args.n, "memory store")
    if args.redis:
        store = open_store(args.redis, prefix=f"gwbench:{uuid.uuid4().hex[:6]}:")
        rows += await keys(store, args.n, "Redis")
        await store.close()
    rows += await tokens(args.n)
    for label, micros in rows:
        print(f"{label:34s} {micros:9.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())

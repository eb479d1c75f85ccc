"""Two gateway processes sharing one Redis: revocation reaches the other within a second, and
no secret ever reaches a log line."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.fakes import FakeReplica
from tests.support import V2, auth_routes, free_port

pytestmark = pytest.mark.anyio
GATEWAY = str(Path(sys.executable).with_name("gateway"))


@pytest.fixture
def secrets_env(redis_url: str) -> dict[str, str]:
    return {
        "GATEWAY_REDIS_URL": redis_url,
        "GATEWAY_REDIS_PREFIX": f"gwtest:{uuid.uuid4().hex[:8]}:",
        "GATEWAY_SECRET": "server-secret-" + uuid.uuid4().hex,
        "GATEWAY_ADMIN_TOKEN": "admin-token-" + uuid.uuid4().hex,
        "GATEWAY_LOG_LEVEL": "debug",
    }


@pytest.fixture
async def replicas(
    tmp_path: Path, backend: FakeReplica, secrets_env: dict[str, str]
) -> AsyncIterator[list[tuple[str, Path]]]:
    """Two `gateway serve` processes on one Redis; yields (base URL, log file) for each."""
    config = tmp_path / "routes.yaml"
    config.write_text(auth_routes(backend.url))
    started: list[subprocess.Popen[bytes]] = []
    out = []
    for i in range(2):
        port, log = free_port(), tmp_path / f"gateway-{i}.log"
        with log.open("wb") as sink:
            started.append(
                subprocess.Popen(  # noqa: ASYNC220 - returns at once; nothing waits on it here
                    [GATEWAY, "serve", "--config", str(config), "--port", str(port)],
                    env={**os.environ, **secrets_env},
                    stdout=sink,
                    stderr=subprocess.STDOUT,
                )
            )
        out.append((f"http://127.0.0.1:{port}", log))
    try:
        async with httpx.AsyncClient(timeout=1) as client:
            for base, _ in out:
                deadline = time.monotonic() + 30
                while True:
                    try:
                        if (await client.get(f"{base}/readyz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    assert time.monotonic() < deadline, "a gateway did not start"
                    await asyncio.sleep(0.1)
        yield out
    finally:
        for process in started:
            process.send_signal(signal.SIGINT)
        for process in started:
            for _ in range(150):  # the loop keeps serving the fake backend while they drain
                if process.poll() is not None:
                    break
                await asyncio.sleep(0.1)
            else:
                process.kill()
                process.wait()


async def test_revocation_reaches_the_other_replica_within_a_second(
    replicas: list[tuple[str, Path]], secrets_env: dict[str, str]
) -> None:
    (a, _), (b, _) = replicas
    admin = {"Authorization": f"Bearer {secrets_env['GATEWAY_ADMIN_TOKEN']}"}
    async with httpx.AsyncClient(timeout=10) as client:
        name = "t-" + uuid.uuid4().hex[:8]
        await client.post(f"{a}/admin/tenants", json={"name": name}, headers=admin)
        created = await client.post(
            f"{a}/admin/tenants/{name}/keys", json={"scopes": ["predict:linear"]}, headers=admin
        )
        key = created.json()["key"]
        headers = {"X-API-Key": key}
        for base in (a, b):  # both replicas now hold the key in their caches
            response = await client.post(f"{base}/v2/models/linear/infer", json=V2, headers=headers)
            assert response.status_code == 200, response.text
        revoked = await client.post(f"{a}/admin/keys/{key.split('_')[1]}/revoke", headers=admin)
        assert revoked.status_code == 200
        after = time.monotonic()
        statuses = []
        while time.monotonic() - after < 1.0:
            response = await client.post(f"{b}/v2/models/linear/infer", json=V2, headers=headers)
            statuses.append(response.status_code)
            if response.status_code == 401:
                break
            await asyncio.sleep(0.02)
        assert statuses[-1] == 401, f"replica B still accepted the key after 1 s: {statuses}"


async def test_no_secret_reaches_the_logs(
    replicas: list[tuple[str, Path]], secrets_env: dict[str, str]
) -> None:
    (a, log), _ = replicas
    admin = {"Authorization": f"Bearer {secrets_env['GATEWAY_ADMIN_TOKEN']}"}
    secrets = [secrets_env["GATEWAY_ADMIN_TOKEN"], secrets_env["GATEWAY_SECRET"]]
    async with httpx.AsyncClient(base_url=a, timeout=10) as client:
        name = "t-" + uuid.uuid4().hex[:8]
        await client.post("/admin/tenants", json={"name": name}, headers=admin)
        key = (
            await client.post(
                f"/admin/tenants/{name}/keys", json={"scopes": ["predict:linear"]}, headers=admin
            )
        ).json()["key"]
        _, key_id, secret = key.split("_", 2)
        secrets += [key, secret]
        await client.post("/v2/models/linear/infer", json=V2, headers={"X-API-Key": key})
        basic = base64.b64encode(f"{key_id}:{secret}".encode()).decode()
        token = (
            await client.post(
                "/oauth2/token",
                data={"grant_type": "client_credentials"},
                headers={"Authorization": f"Basic {basic}"},
            )
        ).json()["access_token"]
        secrets.append(token)
        await client.post(
            "/v2/models/linear/infer", json=V2, headers={"Authorization": f"Bearer {token}"}
        )
        rotated = await client.post(f"/admin/keys/{key_id}/rotate", json={}, headers=admin)
        secrets.append(rotated.json()["key"])
        # and the failures, which are the lines most likely to echo what they were given
        await client.post(
            "/v2/models/linear/infer", json=V2, headers={"X-API-Key": key[:-2] + "zz"}
        )
        await client.post(
            "/v2/models/linear/infer",
            json=V2,
            headers={"Authorization": f"Bearer {token[:-4]}AAAA"},
        )
        await client.get(
            "/admin/tenants",
            headers={"Authorization": f"Bearer {secrets_env['GATEWAY_ADMIN_TOKEN']}x"},
        )
        await client.post(
            "/oauth2/token",
            data={
                "grant_type": "client_credentials",
                "client_id": key_id,
                "client_secret": secret + "x",
            },
        )
    await asyncio.sleep(0.3)
    text = log.read_text()
    assert text.strip(), "the gateway logged nothing at debug level"
    for secret_value in secrets:
        assert secret_value not in text

"""pytest plugin: a REAL OAuth2/OIDC provider (node-oidc-provider, ``tests/oidc/op.mjs``).

Install it once (Node.js 20+): ``npm ci --prefix tests/oidc``. Without ``tests/oidc/node_modules``
the fixture FAILS with that command; it never skips.

Fixture ``oidc_provider`` (module scope): an :class:`OIDCProvider` on a free 127.0.0.1 port,
ready once it printed ``READY <issuer>`` and its discovery document answers. It has
``issuer``, ``resource`` (the default audience), ``pid``, ``token(scope=None, alg=None,
resource=None)`` (a real client-credentials JWT from the token endpoint, client_secret_basic),
``rotate_keys()`` (new signing keys while it runs; returns alg -> new kid), ``jwks_uri`` and
``stop()``. It is stopped by PID at the end of the module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support import free_port

HERE = Path(__file__).resolve().parent
CLIENT_ID = "gateway-test"
CLIENT_SECRET = "gateway-test-secret"
RESOURCE = "https://gateway.test/api"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
_START_ATTEMPTS = 3


@dataclass
class OIDCProvider:
    """A running ``op.mjs``; stop() ends it by PID."""

    issuer: str
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path
    resource: str = RESOURCE

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def jwks_uri(self) -> str:
        return f"{self.issuer}/jwks"

    def token(
        self, scope: str | None = None, alg: str | None = None, *, resource: str | None = None
    ) -> str:
        """A client-credentials access token (JWT); unknown scopes are dropped by the provider."""
        data = {"grant_type": "client_credentials", "resource": resource or self.resource}
        if scope is not None:
            data["scope"] = scope
        headers = {"X-OP-Alg": alg} if alg else {}
        response = httpx.post(
            f"{self.issuer}/token",
            data=data,
            headers=headers,
            auth=(CLIENT_ID, CLIENT_SECRET),
            timeout=10,
        )
        if response.status_code != 200:
            raise AssertionError(f"token endpoint: HTTP {response.status_code} {response.text}")
        token: str = response.json()["access_token"]
        return token

    def rotate_keys(self) -> dict[str, str]:
        """New signing keys, same process and port; returns {alg: new kid}."""
        response = httpx.post(f"{self.issuer}/__test/rotate", timeout=10)
        response.raise_for_status()
        kids: dict[str, str] = response.json()
        return kids

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """SIGTERM by PID, wait, then SIGKILL."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)


def _wait_ready(process: subprocess.Popen[bytes], log_path: Path, deadline: float) -> str | None:
    """The issuer from the "READY <issuer>" line of the log; None if the process exits first."""
    while time.monotonic() < deadline and process.poll() is None:
        for line in log_path.read_text(errors="replace").splitlines():
            if line.startswith("READY "):
                return line.split(" ", 1)[1].strip()
        time.sleep(0.05)
    return None


def start_oidc_provider(
    run_dir: Path, *, alg: str = "RS256", env: Mapping[str, str] | None = None
) -> OIDCProvider:
    """Start ``op.mjs`` on a free port and wait for its discovery document (bounded); ``env``
    adds to its environment (``OP_CONSOLE_REDIRECTS``...)."""
    if not (HERE / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(
            "the OIDC test provider is not installed: run npm ci --prefix tests/oidc", pytrace=False
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail("node (Node.js 20+) is needed for the OIDC test provider", pytrace=False)
    run_dir.mkdir(parents=True, exist_ok=True)
    for attempt in range(_START_ATTEMPTS):
        log_path = run_dir / f"op-{attempt}.log"
        port = str(free_port())
        environment = {**os.environ, "OP_PORT": port, "OP_ALG": alg, "NODE_ENV": "test"}
        with log_path.open("wb") as log:  # the child keeps its own descriptor
            process = subprocess.Popen(
                [node, str(HERE / "op.mjs")],
                cwd=HERE,
                env={**environment, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        issuer = _wait_ready(process, log_path, deadline)
        provider = OIDCProvider(issuer or "", process, log_path)
        if issuer is not None and _discovery_answers(issuer, deadline):
            return provider
        provider.stop()
        if "EADDRINUSE" not in provider.log_tail():
            break
    pytest.fail(f"the OIDC test provider did not start:\n{provider.log_tail()}", pytrace=False)


def _discovery_answers(issuer: str, deadline: float) -> bool:
    url = f"{issuer}/.well-known/openid-configuration"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def oidc_provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    provider = start_oidc_provider(tmp_path_factory.mktemp("oidc"))
    try:
        yield provider
    finally:
        provider.stop()

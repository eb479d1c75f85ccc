"""Over TLS the console's session cookie is ``Secure`` and ``__Host-`` prefixed (a real
``gateway serve`` with a certificate)."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from tests.certs import CA
from tests.support import ADMIN_TOKEN
from tests.system.serving import gateway_serve


def test_over_tls_the_session_cookie_is_secure_and_host_only(tmp_path: Path) -> None:
    ca = CA(tmp_path / "pki")
    issued = ca.server("127.0.0.1")
    context = ssl.create_default_context(cafile=str(ca.cert))
    flags = ("--tls-cert", str(issued.cert), "--tls-key", str(issued.key))
    env = {"GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    with (
        gateway_serve(tmp_path, *flags, env=env, https=context) as served,
        httpx.Client(verify=context, timeout=5) as client,
    ):
        signed = client.post(
            f"{served.url}/console/login",
            data={"token": ADMIN_TOKEN},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
        assert signed.status_code == 303, signed.text
        cookie = signed.headers["set-cookie"]
        assert cookie.startswith("__Host-gateway_console=")
        for attribute in ("Secure", "HttpOnly", "SameSite=Strict", "Path=/"):
            assert attribute in cookie
        assert "Domain" not in cookie
        value = signed.cookies["__Host-gateway_console"]
        client.cookies.clear()
        session = client.get(
            f"{served.url}/console/session",
            headers={"Cookie": f"__Host-gateway_console={value}"},
        )
        assert session.status_code == 200, session.text

"""The HTTP edge's limits against a real ``gateway serve``: oversized heads are refused with
JSON before the application runs, a slow head is cut at the header timeout (slowloris), and
thousands of idle keep-alive connections do not stop normal traffic.

The limits are set through GATEWAY_* variables (the flags are checked in tests/unit/cli).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.system.serving import Served, gateway_serve, raise_fd_limit

pytestmark = pytest.mark.anyio

LIMITS = {
    "GATEWAY_MAX_HEADER_BYTES": "16384",
    "GATEWAY_MAX_HEADERS": "50",
    "GATEWAY_MAX_REQUEST_LINE": "4096",
    "GATEWAY_HEADER_TIMEOUT": "2",
}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with gateway_serve(tmp_path_factory.mktemp("edge"), env=LIMITS) as served:
        yield served


def _raw(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send ``data`` on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # refused mid-send: the answer may still be readable
            sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def _answer(raw: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, orjson.loads(body)


def _gateway_error(body: dict[str, object], code: str, headers: dict[str, str]) -> None:
    error = body["error"]
    assert isinstance(error, dict), body
    assert error["code"] == code, body
    assert body["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"
    assert headers["content-type"] == "application/json"


def test_a_4mb_header_is_431_json(served: Served) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.get(f"{served.url}/healthz", headers={"X-Big": "a" * 4 * 1024 * 1024})
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "headers_too_large"
    assert response.headers["connection"] == "close"


def test_5000_headers_are_431_json(served: Served) -> None:
    fields = b"".join(b"X-H%d: 1\r\n" % i for i in range(5000))
    status, headers, body = _answer(_raw(served.port, b"GET /healthz HTTP/1.1\r\n" + fields))
    assert status == 431
    _gateway_error(body, "headers_too_large", headers)


def test_header_count_and_bytes_up_to_the_limits_are_served(served: Served) -> None:
    with httpx.Client(timeout=10) as client:
        many = {f"X-H{i}": "1" for i in range(40)}  # + host, accept... under 50
        assert client.get(f"{served.url}/healthz", headers=many).status_code == 200
        big = {"X-Big": "a" * 15000}
        assert client.get(f"{served.url}/healthz", headers=big).status_code == 200
        too_many = {f"X-H{i}": "1" for i in range(60)}
        assert client.get(f"{served.url}/healthz", headers=too_many).status_code == 431
        too_big = {"X-Big": "a" * 17000}
        assert client.get(f"{served.url}/healthz", headers=too_big).status_code == 431


def test_a_64kb_request_line_is_414_json(served: Served) -> None:
    target = b"/healthz?" + b"a" * 65536
    raw = _raw(served.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = _answer(raw)
    assert status == 414
    _gateway_error(body, "uri_too_long", headers)


def test_an_inference_path_too_long_gets_the_protocol_shape(served: Served) -> None:
    raw = _raw(served.port, b"GET /v2/models/" + b"m" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, headers, body = _answer(raw)
    assert status == 414
    assert isinstance(body["error"], str), body
    assert body["code"] == "uri_too_long", body
    assert body["request_id"] == headers["x-request-id"]


def test_a_request_the_parser_refuses_is_400_json(served: Served) -> None:
    status, headers, body = _answer(_raw(served.port, b"NOT HTTP AT ALL\r\n\r\n"))
    assert status == 400
    _gateway_error(body, "bad_request", headers)


def test_a_head_not_finished_in_time_is_408_json(served: Served) -> None:
    status, headers, body = _answer(_raw(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"))
    assert status == 408
    _gateway_error(body, "request_timeout", headers)


def test_a_connection_that_never_sends_is_closed_at_the_header_timeout(served: Served) -> None:
    status, _, body = _answer(_raw(served.port, b""))
    assert status == 408, body


async def test_slowloris_200_connections_are_cut_and_normal_traffic_is_served(
    served: Served,
) -> None:
    """200 connections each sending one header byte a second (for at most 15 s) are answered
    408 and closed at the 2 s header timeout, while normal requests meanwhile all succeed."""
    raise_fd_limit(4096)
    head = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"s" * 64
    outcomes: list[str] = []

    async def slow() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        # One read to the end for the whole drip: a read cancelled by a timeout would drop
        # what it had read so far (the answer, if its FIN came after the wait ended).
        reading = asyncio.create_task(reader.read())
        answer = b""
        try:
            for byte in head[:15]:  # at most 15 s of drip feeding
                writer.write(bytes([byte]))
                await writer.drain()
                done, _ = await asyncio.wait({reading}, timeout=1)
                if done:
                    answer = reading.result()
                    break
        except ConnectionError:
            pass
        finally:
            reading.cancel()
            writer.close()
        outcomes.append(answer.split(b"\r\n", 1)[0].decode("latin-1") or "open")

    statuses: list[int] = []
    stop = asyncio.Event()

    async def normal() -> None:
        async with httpx.AsyncClient(timeout=10) as client:
            while not stop.is_set():
                statuses.append((await client.get(f"{served.url}/healthz")).status_code)
                await asyncio.sleep(0.02)

    started = time.monotonic()
    traffic = [asyncio.create_task(normal()) for _ in range(4)]
    await asyncio.gather(*(slow() for _ in range(200)))
    stop.set()
    await asyncio.gather(*traffic)
    elapsed = time.monotonic() - started
    cut = outcomes.count("HTTP/1.1 408 Request Timeout")
    print(f"slowloris: 200 slow connections, {cut} cut with 408 in {elapsed:.1f}s; normal:")
    print(f"  {len(statuses)} requests, {sum(s != 200 for s in statuses)} failed")
    assert cut == 200, outcomes
    assert statuses
    assert set(statuses) == {200}


async def test_2000_idle_keep_alive_connections_do_not_stop_normal_traffic(
    served: Served,
) -> None:
    raise_fd_limit(8192)
    held: list[asyncio.StreamWriter] = []
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    opened = 0

    async def idle() -> None:
        nonlocal opened
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(request)  # one request, then the connection idles in keep-alive
        await reader.readuntil(b'{"status":"ok"}')
        held.append(writer)
        opened += 1

    gate = asyncio.Semaphore(200)  # opened 200 at a time: the listen backlog

    async def idle_gated() -> None:
        async with gate:
            await idle()

    try:
        await asyncio.gather(*(idle_gated() for _ in range(2000)))
        async with httpx.AsyncClient(timeout=10) as client:
            statuses = [(await client.get(f"{served.url}/healthz")).status_code for _ in range(200)]
        failed = sum(s != 200 for s in statuses)
        print(f"idle keep-alive: {opened} connections held; {len(statuses)} normal requests,")
        print(f"  {failed} failed")
        assert opened == 2000
        assert set(statuses) == {200}
    finally:
        for writer in held:
            writer.close()


def test_settings_have_sane_default_limits() -> None:
    from gateway.settings import Settings

    settings = Settings()
    assert settings.max_header_bytes == 64 * 1024
    assert settings.max_headers == 100
    assert settings.max_request_line == 8 * 1024
    assert settings.header_timeout == 10


def test_the_limits_are_flags_of_gateway_serve(tmp_path: Path) -> None:
    flags = ["--max-headers", "5", "--max-header-bytes", "2048", "--max-request-line", "512"]
    with gateway_serve(tmp_path, *flags, "--header-timeout", "1") as served:
        fields = b"".join(b"X-H%d: 1\r\n" % i for i in range(8))
        status, _, body = _answer(_raw(served.port, b"GET /healthz HTTP/1.1\r\n" + fields))
        assert status == 431, body
        target = b"/healthz?" + b"q" * 600
        status, _, body = _answer(_raw(served.port, b"GET " + target + b" HTTP/1.1\r\n\r\n"))
        assert status == 414, body
        status, _, body = _answer(_raw(served.port, b"GET /healthz HTTP/1.1\r\n"))
        assert status == 408, body

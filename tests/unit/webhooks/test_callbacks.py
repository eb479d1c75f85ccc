"""Callback URLs: the strict parse, the tenant's allow-list and the address check (SSRF)."""

from __future__ import annotations

import ipaddress

import pytest

from gateway.errors import CallbackNotAllowed, InvalidCallback
from gateway.store import Tenant
from gateway.webhooks.callbacks import (
    CallbackGuard,
    host_listed,
    normalize_pattern,
    parse_callback,
    parse_networks,
    refused_because,
)

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize(
    ("given", "normalized"),
    [
        ("https://Hooks.Acme.Test/cb?x=1#frag", "https://hooks.acme.test/cb?x=1"),
        ("https://hooks.acme.test:443", "https://hooks.acme.test/"),
        ("http://hooks.acme.test:8080/a", "http://hooks.acme.test:8080/a"),
        ("https://[2001:DB8::1]:8443/x", "https://[2001:db8::1]:8443/x"),
        ("https://XN--bcher-kva.example/x", "https://xn--bcher-kva.example/x"),
    ],
)
def test_a_url_is_normalized(given: str, normalized: str) -> None:
    assert parse_callback(given).url == normalized


@pytest.mark.parametrize(
    "given",
    [
        "hooks.acme.test/cb",  # not absolute
        "ftp://hooks.acme.test/",
        "https://user:pw@hooks.acme.test/",
        "https:///path",
        "https://hooks.acme.test:99999/",
        "https://hooks acme.test/",
        "http://0x7f000001/",  # shorthand IPv4 that resolvers read as 127.0.0.1
        "http://2130706433/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "https://[fe80::1%25eth0]/",
        "https://-bad-.test/",
        "https://bücher.example/",  # a header is ASCII: an IDN host comes as xn--
        "https://" + "a" * 2100 + ".test/",
    ],
)
def test_malformed_urls_are_400(given: str) -> None:
    with pytest.raises(InvalidCallback) as caught:
        parse_callback(given)
    assert caught.value.status == 400
    assert caught.value.code == "invalid_callback"


@pytest.mark.parametrize(
    ("host", "listed"),
    [
        ("hooks.acme.test", True),
        ("a.b.acme.test", True),
        ("acme.test", False),  # *.acme.test is below acme.test, not acme.test itself
        ("evilacme.test", False),
        ("hooks.acme.test.evil.test", False),
        ("other.test", False),
        ("127.0.0.1", True),
    ],
)
def test_the_allow_list_matches_exact_hosts_and_subdomains(host: str, listed: bool) -> None:
    patterns = ("hooks.acme.test", "*.acme.test", "127.0.0.1")
    assert host_listed(host, patterns) is listed


@pytest.mark.parametrize("bad", ["*.127.0.0.1", "0x7f000001", "exa mple.com", "*."])
def test_allow_list_entries_are_checked(bad: str) -> None:
    with pytest.raises(ValueError, match="callback host"):
        normalize_pattern(bad)


def test_allow_list_entries_are_normalized() -> None:
    assert normalize_pattern(" *.Acme.TEST ") == "*.acme.test"
    assert normalize_pattern("[::1]") == "::1"


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.1", "private"),
        ("169.254.169.254", "link-local"),  # cloud metadata
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "not global"),  # shared address space (carrier NAT)
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
        ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
        ("93.184.215.14", None),
        ("2606:4700::1111", None),
    ],
)
def test_addresses_outside_the_public_internet_are_refused(
    address: str, reason: str | None
) -> None:
    assert refused_because(ipaddress.ip_address(address), ()) == reason


def test_an_allowed_network_lets_its_addresses_through() -> None:
    allowed = parse_networks("127.0.0.0/8, 10.0.0.0/8")
    assert refused_because(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert refused_because(ipaddress.ip_address("::ffff:10.0.0.5"), allowed) is None
    assert refused_because(ipaddress.ip_address("192.168.1.1"), allowed) == "private"
    with pytest.raises(ValueError, match="webhook_allow_networks"):
        parse_networks("10.0.0.0/33")


def _resolver(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


TENANT = Tenant("acme", callback_hosts=("hooks.acme.test", "127.0.0.1", "::1", "inside.test"))
NAMES = {"hooks.acme.test": ["93.184.215.14"], "inside.test": ["93.184.215.14", "127.0.0.1"]}


async def test_a_host_not_on_the_list_is_403() -> None:
    guard = CallbackGuard(resolver=_resolver(NAMES))
    with pytest.raises(CallbackNotAllowed) as caught:
        guard.check_url(TENANT, "https://elsewhere.test/cb")
    assert caught.value.status == 403
    assert caught.value.code == "callback_not_allowed"
    with pytest.raises(CallbackNotAllowed):
        guard.check_url(Tenant("nobody"), "https://hooks.acme.test/cb")


async def test_http_needs_the_operators_consent() -> None:
    with pytest.raises(CallbackNotAllowed, match="https"):
        CallbackGuard().check_url(TENANT, "http://hooks.acme.test/cb")
    assert CallbackGuard(allow_http=True).check_url(TENANT, "http://hooks.acme.test/cb")


@pytest.mark.parametrize("url", ["https://127.0.0.1/", "https://[::1]/", "https://inside.test/"])
async def test_a_listed_host_on_a_private_address_is_refused_unless_allowed(url: str) -> None:
    """``inside.test`` resolves to a public and a loopback address: one refused address is
    enough to refuse it."""
    guard = CallbackGuard(resolver=_resolver(NAMES))
    with pytest.raises(CallbackNotAllowed, match="loopback"):
        await guard.addresses(guard.check_url(TENANT, url))
    allowed = CallbackGuard(parse_networks("127.0.0.0/8,::1/128"), resolver=_resolver(NAMES))
    assert await allowed.addresses(allowed.check_url(TENANT, url))


async def test_a_public_name_passes_and_an_unresolvable_one_is_400() -> None:
    guard = CallbackGuard(resolver=_resolver(NAMES))
    callback = guard.check_url(TENANT, "https://hooks.acme.test/cb")
    assert await guard.addresses(callback) == ["93.184.215.14"]
    gone = Tenant("acme", callback_hosts=("gone.test",))
    with pytest.raises(InvalidCallback, match="does not resolve"):
        await guard.addresses(guard.check_url(gone, "https://gone.test/"))


@pytest.mark.parametrize(
    "url", ["http://[::1]/", "http://0x7f000001/", "http://169.254.169.254/latest/meta-data/"]
)
async def test_the_classic_ssrf_urls_are_refused(url: str) -> None:
    tenant = Tenant("acme", callback_hosts=("::1", "169.254.169.254", "*.test"))
    guard = CallbackGuard(allow_http=True)
    with pytest.raises((CallbackNotAllowed, InvalidCallback)):
        await guard.addresses(guard.check_url(tenant, url))


async def test_localhost_really_resolves_to_loopback_and_is_refused() -> None:
    """The system resolver, not a table: ``localhost`` is on the list, its address is not."""
    tenant = Tenant("acme", callback_hosts=("localhost",))
    guard = CallbackGuard(allow_http=True)
    with pytest.raises(CallbackNotAllowed, match="loopback"):
        await guard.addresses(guard.check_url(tenant, "http://localhost:9/cb"))
    allowed = CallbackGuard(parse_networks("127.0.0.0/8,::1/128"), allow_http=True)
    assert await allowed.addresses(allowed.check_url(tenant, "http://localhost:9/cb"))

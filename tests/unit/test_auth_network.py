"""auth/network.py: the client's address behind trusted proxies, and the IP allow/deny lists."""

from __future__ import annotations

import pytest

from gateway.auth.network import (
    IpPolicy,
    NetworkSet,
    TrustedProxies,
    client_address,
    normalize_address,
    parse_address,
)

NO_PROXIES = TrustedProxies(())
PROXIES = TrustedProxies(("10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1/32"))


def scope(peer: str | None, *forwarded: str, port: int = 40000) -> dict[str, object]:
    headers = [(b"host", b"gateway"), *((b"x-forwarded-for", value.encode()) for value in forwarded)]
    return {"type": "http", "client": None if peer is None else (peer, port), "headers": headers}


# client_address


def test_no_trusted_proxies_is_the_peer():
    assert client_address(scope("203.0.113.9"), NO_PROXIES) == "203.0.113.9"
    assert client_address(scope("2001:db8::7"), NO_PROXIES) == "2001:db8::7"


def test_untrusted_peer_cannot_spoof_forwarded_for():
    spoofed = scope("203.0.113.9", "1.2.3.4", "10.0.0.1")
    assert client_address(spoofed, NO_PROXIES) == "203.0.113.9"
    assert client_address(spoofed, PROXIES) == "203.0.113.9"  # the peer itself is not a proxy


def test_trusted_peer_without_forwarded_for_is_the_peer():
    assert client_address(scope("10.1.2.3"), PROXIES) == "10.1.2.3"


def test_one_trusted_hop():
    assert client_address(scope("10.0.0.5", "198.51.100.4"), PROXIES) == "198.51.100.4"


def test_several_trusted_hops_are_skipped_from_the_right():
    assert client_address(scope("10.0.0.5", "198.51.100.4, 10.0.0.9, 10.2.0.1"), PROXIES) == "198.51.100.4"


def test_client_written_entries_left_of_the_first_untrusted_hop_are_ignored():
    # the client sent "X-Forwarded-For: 10.9.9.9, 1.1.1.1"; the proxy appended its real address
    forwarded = "10.9.9.9, 1.1.1.1, 198.51.100.4"
    assert client_address(scope("10.0.0.5", forwarded), PROXIES) == "198.51.100.4"


def test_spoofed_trusted_address_cannot_hide_the_client():
    # a client that claims to be a trusted proxy still shows up as the first untrusted hop
    assert client_address(scope("10.0.0.5", "10.0.0.7, 198.51.100.4"), PROXIES) == "198.51.100.4"


def test_all_header_lines_are_read_in_order():
    several = scope("10.0.0.5", "198.51.100.4, 10.0.0.8", "10.0.0.9")
    assert client_address(several, PROXIES) == "198.51.100.4"
    several = scope("10.0.0.5", "10.0.0.8", "198.51.100.4")
    assert client_address(several, PROXIES) == "198.51.100.4"


def test_every_hop_trusted_gives_the_leftmost():
    assert client_address(scope("10.0.0.5", "10.0.0.6, 10.0.0.7"), PROXIES) == "10.0.0.6"


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.4, unknown", "10.0.0.5"),  # the nearest entry is bad: the peer stands
        ("unknown, 10.0.0.8", "10.0.0.8"),  # stops at the last good (trusted) hop
        ("198.51.100.4, garbage!, 10.0.0.8", "10.0.0.8"),
        ("198.51.100.4, , 10.0.0.8", "10.0.0.8"),  # an empty entry is malformed
        ("300.1.1.1", "10.0.0.5"),
        ("1.2.3", "10.0.0.5"),
        ("01.2.3.4", "10.0.0.5"),
        ("[1.2.3.4]:80", "10.0.0.5"),  # brackets are for IPv6
        ("[::1", "10.0.0.5"),
        ("[::1]x", "10.0.0.5"),
        ("1.2.3.4:http", "10.0.0.5"),
        ("_hidden, 198.51.100.4", "198.51.100.4"),
    ],
)
def test_malformed_entries_stop_the_walk(forwarded, expected):
    assert client_address(scope("10.0.0.5", forwarded), PROXIES) == expected


@pytest.mark.parametrize(
    ("forwarded", "expected"),
    [
        ("198.51.100.4:5678", "198.51.100.4"),
        ("[2001:db8::1]:80", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),  # canonical form
        ("  198.51.100.4  ", "198.51.100.4"),
        ("::ffff:198.51.100.4", "198.51.100.4"),
        ("[::ffff:198.51.100.4]:443", "198.51.100.4"),
        ("fe80::1%eth0", "fe80::1"),
    ],
)
def test_entry_forms(forwarded, expected):
    assert client_address(scope("10.0.0.5", forwarded), PROXIES) == expected


def test_ports_on_trusted_hops():
    assert client_address(scope("10.0.0.5", "198.51.100.4:1234, 10.0.0.9:8080"), PROXIES) == "198.51.100.4"


def test_ipv6_proxies():
    assert client_address(scope("2001:db8:ffff::1", "2001:db8:1::5, 2001:db8:ffff::2"), PROXIES) == (
        "2001:db8:1::5"
    )
    # outside the trusted /48: believed no further
    assert client_address(scope("2001:db8:fffe::1", "198.51.100.4"), PROXIES) == "2001:db8:fffe::1"


def test_ipv4_mapped_peer_is_ipv4():
    # a dual-stack listener reports IPv4 peers as ::ffff:a.b.c.d
    assert client_address(scope("::ffff:203.0.113.9"), NO_PROXIES) == "203.0.113.9"
    assert client_address(scope("::ffff:10.0.0.5", "198.51.100.4"), PROXIES) == "198.51.100.4"
    assert client_address(scope("::ffff:127.0.0.1", "198.51.100.4"), PROXIES) == "198.51.100.4"


def test_mapped_trusted_cidr_matches_ipv4():
    mapped = TrustedProxies(("::ffff:10.0.0.0/104",))  # ::ffff:10.0.0.0/104 is 10.0.0.0/8
    assert client_address(scope("10.1.1.1", "198.51.100.4"), mapped) == "198.51.100.4"
    assert client_address(scope("11.1.1.1", "198.51.100.4"), mapped) == "11.1.1.1"


def test_no_client_address():
    assert client_address(scope(None, "198.51.100.4"), PROXIES) == ""
    assert client_address({"type": "http", "headers": []}, NO_PROXIES) == ""


def test_answers_are_cached_per_header_value():
    proxies = TrustedProxies(("10.0.0.0/8",))
    first = client_address(scope("10.0.0.5", "198.51.100.4, 10.0.0.9"), proxies)
    again = client_address(scope("10.0.0.5", "198.51.100.4, 10.0.0.9"), proxies)
    other = client_address(scope("10.0.0.5", "198.51.100.5, 10.0.0.9"), proxies)
    assert (first, again, other) == ("198.51.100.4", "198.51.100.4", "198.51.100.5")
    # the cache is keyed by the peer too: an untrusted peer's header never gets a cached answer
    assert client_address(scope("203.0.113.1", "198.51.100.4, 10.0.0.9"), proxies) == "203.0.113.1"


# address parsing


def test_parse_and_normalize():
    assert parse_address("1.2.3.4") == (32, 0x01020304)
    assert parse_address("::ffff:1.2.3.4") == (32, 0x01020304)
    assert parse_address("::1") == (128, 1)
    assert parse_address("1.2.3.4:80") is None
    assert parse_address("") is None
    assert normalize_address("[::1]:80") == "::1"
    assert normalize_address("1.2.3.4:80") == "1.2.3.4"
    assert normalize_address("nope") is None


def test_network_set():
    networks = NetworkSet(("10.0.0.0/8", "192.168.1.7", "2001:db8::/32"))
    assert "10.200.0.1" in networks
    assert "192.168.1.7" in networks and "192.168.1.8" not in networks
    assert "2001:db8:1::1" in networks and "2001:db9::1" not in networks
    assert "::ffff:10.0.0.1" in networks
    assert "not an address" not in networks and 42 not in networks
    assert not NetworkSet(()) and networks


# IpPolicy


def test_empty_policy_permits_everyone():
    policy = IpPolicy()
    assert policy.permits("203.0.113.9") and policy.permits("2001:db8::1") and policy.permits("")


def test_allow_list():
    policy = IpPolicy(allow=("10.0.0.0/8", "192.168.0.0/16"))
    assert policy.permits("10.1.2.3") and policy.permits("192.168.44.1")
    assert not policy.permits("203.0.113.9")
    assert not policy.permits("11.0.0.1")


def test_deny_only_permits_everyone_else():
    policy = IpPolicy(deny=("203.0.113.0/24",))
    assert not policy.permits("203.0.113.9")
    assert policy.permits("203.0.114.1") and policy.permits("2001:db8::1")


def test_deny_wins_over_allow():
    policy = IpPolicy(allow=("10.0.0.0/8",), deny=("10.6.6.0/24", "10.7.7.7/32"))
    assert policy.permits("10.6.5.255")
    assert not policy.permits("10.6.6.1")
    assert not policy.permits("10.7.7.7") and policy.permits("10.7.7.8")
    # a deny entry wider than the allow entry still wins
    assert not IpPolicy(allow=("10.1.0.0/16",), deny=("10.0.0.0/8",)).permits("10.1.2.3")


def test_ipv6_cidrs():
    policy = IpPolicy(allow=("2001:db8::/32", "fd00::/8"), deny=("2001:db8:bad::/48",))
    assert policy.permits("2001:db8:1234::1")
    assert policy.permits("fd12:3456::1")
    assert not policy.permits("2001:db8:bad::1")
    assert not policy.permits("2001:db9::1")
    assert not policy.permits("10.0.0.1")  # an IPv4 address matches no IPv6 network
    assert IpPolicy(allow=("::/0",)).permits("2001:db8::1")
    assert not IpPolicy(allow=("::/0",)).permits("1.2.3.4")


def test_ipv4_mapped_addresses_and_cidrs():
    assert IpPolicy(allow=("10.0.0.0/8",)).permits("::ffff:10.1.2.3")
    assert not IpPolicy(deny=("10.0.0.0/8",)).permits("::ffff:10.1.2.3")
    assert IpPolicy(allow=("::ffff:10.0.0.0/104",)).permits("10.1.2.3")
    assert not IpPolicy(allow=("::ffff:10.0.0.0/104",)).permits("11.1.2.3")


def test_catch_all_and_host_entries():
    assert IpPolicy(allow=("0.0.0.0/0",)).permits("203.0.113.9")
    assert not IpPolicy(deny=("0.0.0.0/0",)).permits("203.0.113.9")
    assert IpPolicy(deny=("0.0.0.0/0",)).permits("2001:db8::1")
    assert IpPolicy(allow=("198.51.100.4/32",)).permits("198.51.100.4")
    assert not IpPolicy(allow=("198.51.100.4/32",)).permits("198.51.100.5")


def test_unparseable_address_is_refused_by_any_list():
    assert not IpPolicy(allow=("10.0.0.0/8",)).permits("")
    assert not IpPolicy(deny=("10.0.0.0/8",)).permits("")
    assert not IpPolicy(deny=("10.0.0.0/8",)).permits("garbage")


def test_repeated_answers_are_stable():
    policy = IpPolicy(allow=("10.0.0.0/8",), deny=("10.6.6.0/24",))
    answers = [policy.permits(address) for address in ("10.1.1.1", "10.6.6.6", "8.8.8.8") * 100]
    assert answers == [True, False, False] * 100


def test_the_config_parser_output_is_accepted():
    from gateway.config.auth import parse_auth

    auth = parse_auth({"ip_allow": ["10.0.0.0/8", "2001:db8::/32"], "ip_deny": "10.6.6.6"})
    policy = IpPolicy(auth.ip_allow, auth.ip_deny)
    assert policy.permits("10.1.1.1") and not policy.permits("10.6.6.6")
    assert policy.permits("2001:db8::9") and not policy.permits("8.8.8.8")

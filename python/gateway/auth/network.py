"""Who is calling, by address: the client's address behind trusted proxies, and the IP
allow/deny lists (`auth.ip_allow`, `auth.ip_deny`, `auth.trusted_proxies`).

Addresses are compared as integers: every CIDR is precomputed once per config into, for each
prefix length, the set of its network numbers, so a lookup is one shift and one set probe per
distinct prefix length. IPv4-mapped IPv6 (`::ffff:1.2.3.4`) is the IPv4 address it maps, in
addresses and in CIDRs alike. Answers for recent addresses are kept in an LRU.

Per call, measured with `python -m gateway.auth.network` (CPython 3.11 on a shared 2-core VM
that other test runs were loading; best of 5 runs of 100,000 calls):

    IpPolicy.permits, no lists configured                      ~35 ns
    IpPolicy.permits, a recent address (LRU hit)               ~110 ns
    IpPolicy.permits, a new IPv4 / IPv6 address                ~1.3 us (parsed once, then cached)
    client_address, no trusted proxies                         ~0.2 us
    client_address, untrusted peer (trusted proxies set)       ~0.4 us
    client_address, trusted peer, 3-hop X-Forwarded-For        ~0.95 us (a recent header value)
                                                               ~5 us (a new one: parsed, cached)
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

from gateway.types import Scope

CACHE_SIZE = 8192  # recent addresses whose answer is kept
_V6 = socket.AF_INET6
_V4 = socket.AF_INET


def parse_address(text: str) -> tuple[int, int] | None:
    """(bits, value) of an IP address: bits is 32 for IPv4 (and IPv4-mapped IPv6), 128 for
    IPv6. None if `text` is not exactly an address (no port, no brackets; an IPv6 zone such as
    `%eth0` is ignored)."""
    try:
        if ":" in text:
            if "%" in text:
                text = text.split("%", 1)[0]
            value = int.from_bytes(socket.inet_pton(_V6, text))
            if value >> 32 == 0xFFFF:
                return 32, value & 0xFFFFFFFF
            return 128, value
        return 32, int.from_bytes(socket.inet_pton(_V4, text))
    except (OSError, ValueError):
        return None


def format_address(bits: int, value: int) -> str:
    if bits == 32:
        return socket.inet_ntop(_V4, value.to_bytes(4))
    return socket.inet_ntop(_V6, value.to_bytes(16))


def parse_entry(text: str) -> tuple[int, int] | None:
    """(bits, value) of an address as a client or proxy writes it in X-Forwarded-For:
    surrounding spaces and a port (`1.2.3.4:5678`, `[::1]:80`) allowed. None if it is not
    an address (`unknown`, `_hidden`, garbage)."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            return None
        rest = text[end + 1 :]
        if rest and not (rest[0] == ":" and rest[1:].isascii() and rest[1:].isdigit()):
            return None
        host = text[1:end]
        if ":" not in host:  # brackets are for IPv6 only
            return None
    elif text.count(":") == 1:  # IPv4 with a port (IPv6 has at least two colons)
        host, port = text.split(":")
        if not (port.isascii() and port.isdigit()):
            return None
    else:
        host = text
    return parse_address(host)


def normalize_address(text: str) -> str | None:
    """The canonical form of an address as a client or proxy writes it: IPv4 dotted, IPv6
    compressed lower-case, IPv4-mapped IPv6 as IPv4, a port dropped. None if `text` is not
    an address."""
    parsed = parse_entry(text)
    return None if parsed is None else format_address(*parsed)


class NetworkSet:
    """A set of CIDRs, for membership tests of single addresses. An address that does not
    parse is in no set."""

    __slots__ = ("_contains", "_v4", "_v6", "networks")

    def __init__(self, cidrs: Iterable[str]) -> None:
        self.networks = tuple(cidrs)
        v4: dict[int, set[int]] = {}
        v6: dict[int, set[int]] = {}
        for cidr in self.networks:
            network = ipaddress.ip_network(cidr.strip(), strict=False)
            value, prefix = int(network.network_address), network.prefixlen
            if network.version == 6 and prefix >= 96 and value >> 32 == 0xFFFF:
                # ::ffff:a.b.c.d/N is the IPv4 network a.b.c.d/(N - 96)
                value, prefix = value & 0xFFFFFFFF, prefix - 96
                v4.setdefault(prefix, set()).add(value >> (32 - prefix))
            elif network.version == 4:
                v4.setdefault(prefix, set()).add(value >> (32 - prefix))
            else:
                v6.setdefault(prefix, set()).add(value >> (128 - prefix))
        # (shift, networks) per prefix length, longest first
        self._v4 = tuple((32 - prefix, frozenset(nets)) for prefix, nets in sorted(v4.items(), reverse=True))
        self._v6 = tuple((128 - prefix, frozenset(nets)) for prefix, nets in sorted(v6.items(), reverse=True))
        self._contains = lru_cache(maxsize=CACHE_SIZE)(self._lookup)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        return isinstance(address, str) and self._contains(address)

    def _lookup(self, address: str) -> bool:
        parsed = parse_address(address)
        return parsed is not None and self.match(*parsed)

    def match(self, bits: int, value: int) -> bool:
        """Whether the parsed address (`parse_address`) is in the set; not cached."""
        for shift, networks in self._v4 if bits == 32 else self._v6:  # noqa: SIM110 (no generator: hot)
            if value >> shift in networks:
                return True
        return False


class TrustedProxies(NetworkSet):
    """`auth.trusted_proxies`: the peers whose X-Forwarded-For is believed."""

    __slots__ = ("_forwarded",)

    def __init__(self, cidrs: Iterable[str]) -> None:
        super().__init__(cidrs)
        self._forwarded = lru_cache(maxsize=CACHE_SIZE)(self._walk)

    def forwarded_for(self, peer: str, header: bytes) -> str:
        """The client a trusted `peer` forwarded for, from its X-Forwarded-For `header` (all
        lines joined with commas); recent answers are cached."""
        return self._forwarded(peer, header)

    def _walk(self, peer: str, header: bytes) -> str:
        current: tuple[int, int] | None = None  # the last good hop; None: still the peer
        for entry in reversed(header.decode("latin-1").split(",")):
            hop = parse_entry(entry)
            if hop is None:
                break
            current = hop
            if not self.match(*hop):
                break
        return peer if current is None else format_address(*current)


class IpPolicy:
    """`auth.ip_allow` / `auth.ip_deny`. Deny wins; an empty allow list admits every address
    the deny list does not name. An address that does not parse (a client with no address, as
    on a Unix socket) is permitted only when both lists are empty."""

    __slots__ = ("_allow", "_deny", "_open", "_permits", "allow", "deny")

    def __init__(self, allow: tuple[str, ...] = (), deny: tuple[str, ...] = ()) -> None:
        self.allow = allow
        self.deny = deny
        self._allow = NetworkSet(allow)
        self._deny = NetworkSet(deny)
        self._open = not allow and not deny
        self._permits = lru_cache(maxsize=CACHE_SIZE)(self._decide)

    def permits(self, address: str) -> bool:
        if self._open:
            return True
        return self._permits(address)

    def _decide(self, address: str) -> bool:
        parsed = parse_address(address)
        if parsed is None or self._deny.match(*parsed):
            return False
        return not self.allow or self._allow.match(*parsed)


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    if not client:
        return ""
    host: str = client[0]
    if host.startswith("::ffff:") and "." in host:  # a dual-stack listener's IPv4 client
        return host[7:]
    return host


def client_address(scope: Scope, trusted: TrustedProxies) -> str:
    """The calling client's address: the TCP peer's (`scope["client"]`), unless the peer is a
    trusted proxy. Then X-Forwarded-For (every header line, comma-separated, in order) is
    walked from the right, past the trusted hops, to the first untrusted address. A malformed
    entry stops the walk at the last good address; when every hop is trusted the leftmost one
    is the answer. An untrusted peer's X-Forwarded-For is ignored: anyone can write one.

    "" when the server gives no peer address (a Unix socket)."""
    peer = _peer(scope)
    if not trusted.networks or peer not in trusted:
        return peer
    lines = [value for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    if not lines:
        return peer
    return trusted.forwarded_for(peer, lines[0] if len(lines) == 1 else b",".join(lines))


def _measure() -> None:  # pragma: no cover - prints the figures quoted in the module docstring
    import time

    def per_call(function: Any, arguments: list[Any]) -> str:
        best = float("inf")
        for _ in range(5):
            started = time.perf_counter_ns()
            for argument in arguments:
                function(argument)
            elapsed = time.perf_counter_ns() - started
            started = time.perf_counter_ns()
            for _ in arguments:
                pass
            best = min(best, elapsed - (time.perf_counter_ns() - started))
        return f"{best / len(arguments):,.0f} ns"

    n = 100_000
    open_policy = IpPolicy()
    lists = (("10.0.0.0/8", "192.168.0.0/16", "2001:db8::/32"), ("10.6.6.0/24", "203.0.113.7/32"))
    policy = IpPolicy(*lists)
    print("IpPolicy.permits, no lists configured:", per_call(open_policy.permits, ["10.1.2.3"] * n))
    print("IpPolicy.permits, recent address (LRU hit):", per_call(policy.permits, ["10.1.2.3"] * n))
    v4 = [f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}" for i in range(n)]
    v6 = [f"2001:db8::{i:x}" for i in range(n)]
    print("IpPolicy.permits, new IPv4 address:", per_call(IpPolicy(*lists).permits, v4))
    print("IpPolicy.permits, new IPv6 address:", per_call(IpPolicy(*lists).permits, v6))
    none = TrustedProxies(())
    proxies = TrustedProxies(("10.0.0.0/8",))
    direct = {"client": ("203.0.113.9", 5555), "headers": [(b"x-forwarded-for", b"1.2.3.4")]}
    print("client_address, no trusted proxies:", per_call(lambda s: client_address(s, none), [direct] * n))
    print("client_address, untrusted peer:", per_call(lambda s: client_address(s, proxies), [direct] * n))
    hops = {
        "client": ("10.0.0.1", 5555),
        "headers": [(b"host", b"gw"), (b"x-forwarded-for", b"198.51.100.4, 10.0.0.3, 10.0.0.2")],
    }
    print(
        "client_address, trusted peer, 3 hops, recent:",
        per_call(lambda s: client_address(s, proxies), [hops] * n),
    )
    fresh = [
        {
            "client": ("10.0.0.1", 5555),
            "headers": [
                (b"x-forwarded-for", f"198.51.{i >> 8 & 255}.{i & 255}, 10.0.0.3, 10.0.0.2".encode())
            ],
        }
        for i in range(n)
    ]
    print("client_address, trusted peer, 3 hops, new:", per_call(lambda s: client_address(s, proxies), fresh))
    print("(a Python lambda call, included in the last three):", per_call(lambda s: None, [hops] * n))


if __name__ == "__main__":  # pragma: no cover
    _measure()

"""Which addresses a fetch may reach: the guard against feeds used as a request-forgery proxy.

A feed (or an article link, or a redirect) chosen by a stranger must not make the daemon talk to the
operator's own network: the cloud metadata service on 169.254.169.254, a router on 192.168.1.1, a
database on 127.0.0.1. So every hostname is resolved *before* connecting and every address it resolves
to is classified. Public (globally routable) addresses always pass. A non-public address passes only when

* the operator allowed private addresses outright (``allow_private``), or
* the *zone URL* (the feed URL the operator typed) itself resolves into the same zone: an operator who
  subscribes to ``http://127.0.0.1:8080/feed`` has chosen loopback, but has not chosen 10.0.0.0/8 or the
  link-local metadata service, so a redirect there is still refused.

Zones are the special-purpose networks below, named the way an error message should name them. Any other
non-global address is its own zone of one, so it passes only when it *is* the zone URL's address.

Limit: the check resolves the name and the HTTP client resolves it again when it connects, so a DNS
server that answers differently within that gap (rebinding) is not caught here.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ALLOWED_SCHEMES = frozenset({"http", "https"})

# (zone name used in messages, network). Order matters only for readability: the networks do not overlap.
_ZONES: tuple[tuple[str, ipaddress.IPv4Network | ipaddress.IPv6Network], ...] = tuple(
    (name, ipaddress.ip_network(net))
    for name, net in (
        ("loopback", "127.0.0.0/8"),
        ("loopback", "::1/128"),
        ("unspecified", "0.0.0.0/8"),
        ("unspecified", "::/128"),
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("shared (carrier-grade NAT)", "100.64.0.0/10"),
        ("link-local", "169.254.0.0/16"),
        ("link-local", "fe80::/10"),
        ("unique-local", "fc00::/7"),
        ("multicast", "224.0.0.0/4"),
        ("multicast", "ff00::/8"),
    )
)


@dataclass(frozen=True, slots=True)
class AddressProblem:
    """Why a URL may not be fetched; ``kind`` is the FetchResult.error_kind tag."""

    kind: str  # bad-scheme | bad-url | dns | private-address
    message: str


@dataclass(frozen=True, slots=True)
class Zone:
    """A named special-purpose network; ``key`` distinguishes two networks sharing a name."""

    name: str
    key: str


def _unmap(addr: IPAddress) -> IPAddress:
    # ::ffff:10.0.0.1 reaches 10.0.0.1 on dual-stack sockets, so judge the IPv4 address it carries.
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


# Cached, as _literal below: each fetch classifies its host and its zone URL's host, the same few every time.
@functools.lru_cache(maxsize=4096)
def zone_of(addr: IPAddress) -> Zone | None:
    """The special zone ``addr`` lies in, or None for a public address."""
    addr = _unmap(addr)
    for name, net in _ZONES:
        if addr.version == net.version and addr in net:
            return Zone(name, str(net))
    if addr.is_global:
        return None
    # Documentation, benchmarking, reserved ... ranges: not worth a name each, never a legitimate feed.
    return Zone("reserved", str(addr))


@functools.lru_cache(maxsize=4096)
def _literal(host: str) -> IPAddress | None:
    if not (host[:1].isdigit() or ":" in host or host[:1] == "["):
        return None  # a name: an IPv4 literal starts with a digit, an IPv6 one has a colon
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to; raises OSError (socket.gaierror) when the lookup fails."""
    literal = _literal(host)
    if literal is not None:
        return [literal]
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addrs: list[IPAddress] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = _literal(str(sockaddr[0]))
        if addr is not None and addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise socket.gaierror(socket.EAI_NONAME, "no addresses")
    return addrs


class _SchemeError(ValueError):
    pass


def _host_port(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) ``url``; raises ValueError with the reason otherwise."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise _SchemeError(scheme or "(none)")
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in URL {url!r}")
    port = parts.port  # raises ValueError for a non-numeric or out-of-range port
    return scheme, host, port or (443 if scheme == "https" else 80)


async def _zones_of_url(url: str | None) -> frozenset[Zone]:
    """The zones the operator chose by naming ``url``; empty when it is public or unresolvable."""
    if url is None:
        return frozenset()
    try:
        _scheme, host, port = _host_port(url)
        addrs = await resolve(host, port)
    except (OSError, ValueError):
        return frozenset()
    return frozenset(z for z in map(zone_of, addrs) if z is not None)


async def find_problem(url: str, *, allow_private: bool, zone_url: str | None) -> AddressProblem | None:
    """The reason ``url`` may not be fetched, or None. Resolves the host; never connects."""
    try:
        _scheme, host, port = _host_port(url)
    except _SchemeError as e:
        return AddressProblem("bad-scheme", f"unsupported URL scheme {str(e)!r} (only http and https)")
    except ValueError as e:
        return AddressProblem("bad-url", f"invalid URL: {e}")
    try:
        addrs = await resolve(host, port)
    except (OSError, UnicodeError):
        return AddressProblem("dns", f"DNS lookup failed for host {host}")
    if allow_private:
        return None
    chosen: frozenset[Zone] | None = None
    for addr in addrs:
        zone = zone_of(addr)
        if zone is None:
            continue
        if chosen is None:
            chosen = await _zones_of_url(zone_url)
        if zone not in chosen:
            named = "" if _literal(host) is not None else f" (host {host})"
            return AddressProblem("private-address", f"{zone.name} address {_unmap(addr)}{named} refused")
    return None


async def check_address(url: str, *, allow_private: bool, zone_url: str | None) -> str | None:
    """An error message when ``url`` must not be fetched (bad scheme, DNS failure, forbidden address).

    ``zone_url`` is the URL the operator configured (the feed); None means no zone was chosen, so only
    public addresses pass unless ``allow_private``.
    """
    problem = await find_problem(url, allow_private=allow_private, zone_url=zone_url)
    return None if problem is None else problem.message

"""Who the client is: the socket peer, or, behind a trusted proxy, X-Forwarded-For.

Only peers listed in `proxy.trusted` may speak for the client. Their X-Forwarded-For is read
right to left (uvicorn's algorithm): the first address that is not itself a trusted proxy is the
client. Headers from any other peer are ignored, so a client cannot spoof its address. A hop may
carry a port, as some load balancers write it (`203.0.113.7:41234`, `[2001:db8::1]:443`): the
client's source port as the proxy saw it (the socket's port is the proxy's own).

Addresses are parsed with the C `inet_pton` (the `ipaddress` module costs microseconds an
event) and cached, with trust checks, in bounded LRUs: the same proxies and clients come back.
"""

import functools
import ipaddress
import socket
from collections.abc import Iterable
from typing import NamedTuple

CACHE_SIZE = 65_536
_V4_MAPPED = bytes(10) + b"\xff\xff"


class Client(NamedTuple):
    packed: bytes  # 4 or 16 bytes
    text: str  # canonical form
    proxied: bool  # read from X-Forwarded-For of a trusted proxy
    port: int | None = None  # the source port a trusted proxy wrote beside the address


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_address(text: str) -> tuple[bytes, str] | None:
    """(packed, canonical text), ::ffff:192.0.2.1 read as 192.0.2.1; None if not an address."""
    text = text.strip()
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, text)
        except OSError:
            continue
        if packed.startswith(_V4_MAPPED):
            packed = packed[12:]
        return packed, socket.inet_ntop(
            socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed
        )
    return None


def _port(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= 65535


def split_hop(hop: str) -> tuple[str, int | None]:
    """(address, port) of one X-Forwarded-For hop: `a.b.c.d`, `a.b.c.d:port`, a bare IPv6
    address, `[v6]` or `[v6]:port`; a hop in no known form comes back as it is (and then
    fails to parse as an address)."""
    hop = hop.strip()
    if hop.startswith("["):
        address, bracket, port = hop[1:].partition("]")
        if bracket and not port:
            return address, None
        if bracket and port[0] == ":" and _port(port[1:]):
            return address, int(port[1:])
        return hop, None
    if hop.count(":") == 1:  # a bare IPv6 address has two colons or more
        address, _, port = hop.partition(":")
        if _port(port):
            return address, int(port)
    return hop, None


class ClientResolver:
    def __init__(self, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._trusted = tuple(trusted)
        self.is_trusted = functools.lru_cache(maxsize=CACHE_SIZE)(self._is_trusted)

    def _is_trusted(self, packed: bytes) -> bool:
        ip = ipaddress.ip_address(packed)
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded: bytes) -> Client | None:
        """The client; None when it cannot be known."""
        found = parse_address(peer) if peer else None
        if found is None:
            return None
        if not forwarded or not self._trusted or not self.is_trusted(found[0]):
            return Client(*found, False)
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            address, port = split_hop(hop)
            found = parse_address(address)
            if found is None:
                return None  # our own proxy wrote this hop: garbage here means a broken chain
            if not self.is_trusted(found[0]):
                return Client(*found, True, port)
        return Client(*found, True, port)  # every hop is a trusted proxy: the leftmost is our best

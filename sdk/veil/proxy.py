"""Who the client is: the socket peer, or, behind a trusted proxy, X-Forwarded-For.

Only peers listed in `proxy.trusted` may speak for the client. Their X-Forwarded-For is read
right to left (uvicorn's algorithm): the first address that is not itself a trusted proxy is the
client. Headers from any other peer are ignored, so a client cannot spoof its address. A hop may
carry a port, as some load balancers write it (`203.0.113.7:41234`, `[2001:db8::1]:443`): the
client's source port as the proxy saw it (the socket's port is the proxy's own).

Addresses are parsed with the C `inet_pton` (the `ipaddress` module costs microseconds an
event) and trust is an integer mask test. Whole answers are cached per (peer, X-Forwarded-For)
in a `ByteLRU` (caches.py): the same proxies and clients come back, and a client chooses the
length of what it sends.
"""

import ipaddress
import socket
from collections.abc import Iterable
from typing import NamedTuple

from .caches import ENTRY_OVERHEAD, ByteLRU

# ~3,500 recent clients behind one proxy (an entry weighs ~600 bytes with a one-hop header)
CACHE_BYTES = 1 << 21
_V4_MAPPED = bytes(10) + b"\xff\xff"
_V4, _V6, _pton, _ntop = socket.AF_INET, socket.AF_INET6, socket.inet_pton, socket.inet_ntop
_UNKNOWN = object()


class Client(NamedTuple):
    packed: bytes  # 4 or 16 bytes
    text: str  # canonical form
    proxied: bool  # read from X-Forwarded-For of a trusted proxy
    port: int | None = None  # the source port a trusted proxy wrote beside the address


# Builds a Client from a tuple in field order without NamedTuple's Python-level __new__.
_client = tuple.__new__

# A cached answer's weight beside its key's text: the Client and its address (text ≤ 45 chars).
_CLIENT_BYTES = 72 + 49 + 94 + 28


def _weigh(key: tuple[str | None, bytes], _: Client | None) -> int:
    return _FIXED + len(key[0] or "") + len(key[1])


_FIXED = ENTRY_OVERHEAD + 56 + 49 + 33 + _CLIENT_BYTES  # the key's tuple, str and bytes headers


def parse_address(text: str) -> tuple[bytes, str] | None:
    """(packed, canonical text), ::ffff:192.0.2.1 read as 192.0.2.1; None if not an address."""
    text = text.strip()
    try:
        packed = _pton(_V4, text)
        return packed, _ntop(_V4, packed)
    except OSError:
        pass
    try:
        packed = _pton(_V6, text)
    except OSError:
        return None
    if packed.startswith(_V4_MAPPED):
        packed = packed[12:]
        return packed, _ntop(_V4, packed)
    return packed, _ntop(_V6, packed)


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
        # (mask, network) as integers, by packed length: IPv4 networks hold only 4-byte
        # addresses and IPv6 ones 16-byte, as `ip in net` has it (a mapped v4 is read as v4)
        self._masks: dict[int, tuple[tuple[int, int], ...]] = {
            length: tuple(
                (int(net.netmask), int(net.network_address))
                for net in self._trusted
                if net.max_prefixlen == length * 8
            )
            for length in (4, 16)
        }
        # trusted peers, parsed: a proxy is the peer of every request it forwards
        self._proxies: ByteLRU[str, tuple[bytes, str]] = ByteLRU(1 << 16)
        self._answers: ByteLRU[tuple[str | None, bytes], Client | None] = ByteLRU(
            CACHE_BYTES, _weigh
        )

    def is_trusted(self, packed: bytes) -> bool:
        n = int.from_bytes(packed)
        for mask, net in self._masks[len(packed)]:  # noqa: SIM110 (any() of a genexpr: slower)
            if n & mask == net:
                return True
        return False

    def resolve(self, peer: str | None, forwarded: bytes) -> Client | None:
        """The client; None when it cannot be known."""
        key = (peer, forwarded)
        found = self._answers.get(key, _UNKNOWN)  # None is an answer too: a broken chain
        if found is _UNKNOWN:
            found = self._resolve(peer, forwarded)
            self._answers.put(key, found, _FIXED + len(peer or "") + len(forwarded))  # _weigh
        return found  # type: ignore[return-value]  # a Client or None, as _resolve answers

    def _resolve(self, peer: str | None, forwarded: bytes) -> Client | None:
        found = self._proxies.get(peer) if peer else None
        if found is None:
            found = parse_address(peer) if peer else None
            if found is None:
                return None
            if not self._trusted or not self.is_trusted(found[0]):
                return _client(Client, (*found, False, None))
            self._proxies.put(peer, found)  # type: ignore[arg-type]
        if not forwarded:
            return _client(Client, (*found, False, None))
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            # a hop without ':' is an IPv4 address alone (or garbage): nothing to split off
            address, port = split_hop(hop) if ":" in hop else (hop, None)
            found = parse_address(address)
            if found is None:
                return None  # our own proxy wrote this hop: garbage here means a broken chain
            if not self.is_trusted(found[0]):
                return _client(Client, (*found, True, port))
        # every hop is a trusted proxy: the leftmost is our best
        return _client(Client, (*found, True, port))

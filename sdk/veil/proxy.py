"""Who the client is: the socket peer, or, behind a trusted proxy, X-Forwarded-For.

Only peers listed in `proxy.trusted` may speak for the client. Their X-Forwarded-For is read
right to left (uvicorn's algorithm): the first address that is not itself a trusted proxy is the
client. Headers from any other peer are ignored, so a client cannot spoof its address.

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
    packed: bytes    # 4 or 16 bytes
    text: str        # canonical form
    proxied: bool    # read from X-Forwarded-For of a trusted proxy


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
        return packed, socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6,
                                        packed)
    return None


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
            found = parse_address(hop)
            if found is None:
                return None  # our own proxy wrote this hop: garbage here means a broken chain
            if not self.is_trusted(found[0]):
                return Client(*found, True)
        return Client(*found, True)  # every hop is a trusted proxy: the leftmost is our best

"""Who the client is: the socket peer, or, behind a trusted proxy, X-Forwarded-For.

Only peers listed in `proxy.trusted` may speak for the client. Their X-Forwarded-For is read
right to left (uvicorn's algorithm): the first address that is not itself a trusted proxy is the
client. Headers from any other peer are ignored, so a client cannot spoof its address.

Parsing an address with `ipaddress` costs microseconds and the same few proxies and clients
come back again and again, so parses and trust checks are cached (bounded LRU).
"""

import functools
import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
CACHE_SIZE = 65_536


@functools.lru_cache(maxsize=CACHE_SIZE)
def parse_address(text: str) -> Address | None:
    """The address, with ::ffff:192.0.2.1 read as 192.0.2.1; None when it is not one."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return (ip.ipv4_mapped or ip) if isinstance(ip, ipaddress.IPv6Address) else ip


class ClientResolver:
    def __init__(self, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._trusted = tuple(trusted)
        self.is_trusted = functools.lru_cache(maxsize=CACHE_SIZE)(self._is_trusted)

    def _is_trusted(self, ip: Address) -> bool:
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded: bytes) -> tuple[Address, bool] | None:
        """(client address, whether it came through a proxy); None when it cannot be known."""
        ip = parse_address(peer) if peer else None
        if ip is None:
            return None
        if not forwarded or not self._trusted or not self.is_trusted(ip):
            return ip, False
        for hop in reversed(forwarded.decode("latin-1").split(",")):
            addr = parse_address(hop)
            if addr is None:
                return None  # our own proxy wrote this hop: garbage here means a broken chain
            if not self.is_trusted(addr):
                return addr, True
        return addr, True  # every hop is a trusted proxy: the leftmost is the best we know

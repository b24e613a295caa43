"""Who the client is: the socket peer, or, behind a trusted proxy, X-Forwarded-For.

Only peers listed in `proxy.trusted` may speak for the client. Their X-Forwarded-For is read
right to left (uvicorn's algorithm): the first address that is not itself a trusted proxy is the
client. Headers from any other peer are ignored, so a client cannot spoof its address.
"""

import ipaddress
from collections.abc import Iterable

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _unmap(ip: Address) -> Address:
    """::ffff:192.0.2.1 is 192.0.2.1: truncate and locate it as IPv4."""
    return ip.ipv4_mapped or ip if isinstance(ip, ipaddress.IPv6Address) else ip


class ClientResolver:
    def __init__(self, trusted: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
        self._trusted = tuple(trusted)

    def is_trusted(self, ip: Address) -> bool:
        return any(ip in net for net in self._trusted)

    def resolve(self, peer: str | None, forwarded: bytes) -> tuple[Address, bool] | None:
        """(client address, whether it came through a proxy); None when it cannot be known."""
        try:
            ip = ipaddress.ip_address(peer) if peer else None
        except ValueError:
            return None
        if ip is None:
            return None
        ip = _unmap(ip)
        if not forwarded or not self._trusted or not self.is_trusted(ip):
            return ip, False
        hops = [h.strip() for h in forwarded.decode("latin-1").split(",")]
        for hop in reversed(hops):
            try:
                addr = _unmap(ipaddress.ip_address(hop))
            except ValueError:
                return None  # our own proxy wrote this hop: garbage here means a broken chain
            if not self.is_trusted(addr):
                return addr, True
        return addr, True  # every hop is a trusted proxy: the leftmost is the best we know

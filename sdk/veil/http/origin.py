"""Which site a beacon is for, from its `Origin` header.

A collector serves the snippet to several sites; the beacon's `Host` is the collector's own
name, the same for all of them. A browser sends `Origin` on every POST: `scheme://host[:port]`
of the page that sent the beacon, which its scripts cannot change. So a collector records a
beacon's site as the host name of its Origin, normalised as the pipeline normalises `Host`
(lower-cased, no port, no trailing dot; an IP literal names no site). `ingest.sites`, when
set, lists the sites that may send beacons: any other origin is refused with 403, counted as
`foreign_origin`, and nothing of the beacon is kept. A client that is not a browser sends no
Origin (its Host then names the site, and must be listed too) and could forge any: the list
keeps other sites' pages and made-up site names out, not a determined script.
"""

import ipaddress
import re

from ..pipeline import site_from_host
from .problems import Problem

# scheme://authority, nothing after it: RFC 6454's serialisation of a tuple origin
_ORIGIN = re.compile(rb"https?://([A-Za-z0-9.-]{1,253}|\[([0-9A-Fa-f:.]{2,45})\])(?::\d{1,5})?")


def _address(text: bytes) -> bool:
    try:
        ipaddress.ip_address(text.decode("ascii"))
    except ValueError:
        return False
    return True


def site_of_origin(origin: bytes) -> str | None:
    """The site an `Origin` value names (None: an IP literal, which names no site), or the
    Problem saying why it names none."""
    if origin == b"null":
        raise Problem(
            403,
            "opaque-origin",
            "Opaque origin",
            "Origin is null (a sandboxed frame, a file:// page, a redirect across sites): "
            "it does not say which site the beacon is for, so nothing was recorded",
            field="Origin",
        )
    m = _ORIGIN.fullmatch(origin)
    site = None if m is None else site_from_host(m.group(1))
    if site is None and (m is None or not _address(m.group(2) or m.group(1))):
        raise Problem(
            400,
            "invalid-header",
            "Invalid Origin header",
            "Origin must be scheme://host[:port], like https://shop.example.com",
            field="Origin",
        )
    return site


def foreign(site: str | None, header: str = "Origin") -> Problem:
    """403 for a beacon whose `header` (Origin, or Host without one) names no listed site."""
    return Problem(
        403,
        "foreign-origin",
        "Site not served",
        f"this collector does not take beacons from {site or 'an address without a name'} "
        "(ingest.sites); nothing was recorded",
        field=header,
    )

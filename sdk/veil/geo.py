"""Country and region from a MaxMind-format database (maxminddb, memory-mapped C reader).

The lookup uses the full IP in memory only; what is kept is an ISO country code and, where the
database has one, the ISO code of the first subdivision.
"""

import logging
from pathlib import Path

import maxminddb

log = logging.getLogger("veil.geo")


class GeoLookup:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)

    def locate(self, ip: str) -> tuple[str | None, str | None]:
        try:
            record = self._reader.get(ip)
        except ValueError:
            return None, None
        if not isinstance(record, dict):
            return None, None
        country = (record.get("country") or {}).get("iso_code")
        subdivisions = record.get("subdivisions") or [{}]
        region = subdivisions[0].get("iso_code") if isinstance(subdivisions, list) else None
        return country, region

    def close(self) -> None:
        self._reader.close()


def open_geoip(path: Path | None) -> GeoLookup | None:
    """The lookup, or None (with a warning naming the file) when it cannot be read.

    An unreadable database disables geolocation instead of stopping the host app: country and
    region are then stored as null.
    """
    if path is None:
        return None
    try:
        return GeoLookup(path)
    except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
        log.warning(
            "geoip.path: cannot read %s (%s); country and region will be null",
            path,
            exc.__class__.__name__,
        )
        return None

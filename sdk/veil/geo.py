"""Country and region from a MaxMind-format database (maxminddb, memory-mapped C reader).

The lookup uses the full IP in memory only; what is kept is an ISO country code and, where the
database has one, the ISO code of the first subdivision.
"""

import logging
from pathlib import Path

import maxminddb

log = logging.getLogger("veil.geo")


def _iso_code(value: object) -> str | None:
    """`value["iso_code"]` of a record's country or subdivision: maxminddb types every value
    as its whole record union, so each level is checked here, not assumed."""
    code = value.get("iso_code") if isinstance(value, dict) else None
    return code if isinstance(code, str) else None


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
        country = _iso_code(record.get("country"))
        subdivisions = record.get("subdivisions")
        region = (
            _iso_code(subdivisions[0]) if isinstance(subdivisions, list) and subdivisions else None
        )
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

"""UTC days as the store dates its rows: SQLite's `date(ts, 'unixepoch')`.

Visitor and network pseudonyms are keyed per UTC day, so the day is the unit every count is
made of (analytics/cells.py, rollups.py, live_days.py). `date()` rounds a timestamp to the
millisecond: a row 0.4 ms before midnight is the next day's. A read of whole days by `ts`
therefore reaches EDGE beyond them and keeps only the rows `date()` puts on them.
"""

import datetime as dt

DAY = 86_400  # seconds
EDGE = 0.001  # seconds: more than date()'s rounding of a timestamp

DayKey = tuple[str | None, ...]  # (day 'YYYY-MM-DD', *values of some dimensions as text)


def day_of(ts: float) -> str:
    """The UTC day 'YYYY-MM-DD' of epoch seconds `ts`."""
    return dt.datetime.fromtimestamp(ts, dt.UTC).date().isoformat()


def day_start(day: str) -> float:
    """UTC epoch seconds of a 'YYYY-MM-DD' day's midnight."""
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC).timestamp()


def next_day(day: str) -> str:
    return (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()


def as_text(value: object) -> str | None:
    """A dimension's value as every path gives it: text, or None."""
    return None if value is None else str(value)

"""Reading TOML tables with errors that name the key and say what is wrong.

Every problem is collected rather than raised at the first one, so `veil policy check` can list
them all in one run.
"""

import datetime as dt
import difflib
from collections.abc import Callable
from typing import Any

_MISSING = object()
_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    list: "an array",
    dict: "a table",
    dt.date: "a date like 2026-11-25",
}


class Table:
    """A TOML table at dotted `path`, read key by key; unknown keys are reported at `close`."""

    def __init__(self, data: Any, path: str, problems: list[str], absent: bool = False) -> None:
        self.path = path
        self.problems = problems
        self.absent = absent  # a missing required table is reported once, not key by key
        if not isinstance(data, dict):
            self.problem(path, f"must be a table, got {type(data).__name__}")
            data = {}
        self.data: dict[str, Any] = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, key: str, what: str) -> None:
        self.problems.append(f"{key}: {what}")

    def get(
        self,
        name: str,
        kind: type | tuple[type, ...],
        default: Any = _MISSING,
        check: Callable[[Any], str | None] | None = None,
    ) -> Any:
        """The value of `name` if it is of `kind` and passes `check`, else `default`."""
        self.seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                if not self.absent:
                    self.problem(self.key(name), "is required")
                return None
            return default
        value = self.data[name]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        # bool is an int in Python; TOML keeps them apart, and so do we.
        ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            ok, value = True, float(value)
        if not ok:
            expected = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
            self.problem(self.key(name), f"must be {expected}, got {value!r}")
            return None if default is _MISSING else default
        if check and (why := check(value)):
            self.problem(self.key(name), why)
            return None if default is _MISSING else default
        return value

    def table(self, name: str, required: bool = False) -> "Table":
        self.seen.add(name)
        absent = name not in self.data
        if absent and required:
            self.problem(self.key(name), "is required")
        return Table(self.data.get(name, {}), self.key(name), self.problems, absent=absent)

    def close(self) -> None:
        """Report every key that was never read: a typo must not pass silently."""
        for name in self.data.keys() - self.seen:
            hint = difflib.get_close_matches(name, sorted(self.seen), n=1)
            tail = f" (did you mean {hint[0]!r}?)" if hint else ""
            self.problem(self.key(name), f"unknown key{tail}")

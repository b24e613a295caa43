"""The closed vocabulary ua-parser can produce: every value its rules can yield from their own
text, never from the visitor's.

ua-parser fills a family, brand or version from a replacement template (`'Samsung'`,
`'$1 for ArcGIS'`) whose `$N` are regex groups of the user-agent. Where a group can only match
a finite set of strings (`(Firefox|Fennec)`, `(iPad|iPhone)`) the template's values are a
closed list written by uap-core's maintainers; where it can match anything (`([^;/]+)`,
`.{0,200}`) the value is whatever the client sent, e-mail addresses and IPs included. This
module enumerates the first kind from the regexes themselves (Python's own regex parser), so
the vocabulary follows whichever ua-parser rules are installed, with no list to keep by hand.
"""

import itertools
import re
from collections.abc import Iterable

# The stdlib's regex parser: private, stable since 3.11 (a test checks the vocabularies hold
# the known names). typeshed stubs it only as the deprecated sre_* modules: hence the ignores.
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser as sre_parse  # type: ignore[attr-defined]
from typing import Any, Protocol

MAX_VALUES = 256  # a group or template with more alternatives counts as open
_MAX_REPEAT = 3  # {0,3} is enumerable; + and * are not
_MAX_RANGE = 40  # [0-9] is; [A-z] (58 characters) is not
_GROUP = re.compile(r"\$(\d)")

# A parsed (sub)pattern: (opcode, argument) pairs. The argument's shape depends on the opcode
# (a code point, a (low, high, subpattern) triple, a list of branches, ...), and typeshed's union
# of those shapes cannot be narrowed by opcode identity: hence Any for it, and only for it.
_Parsed = Iterable[tuple[object, Any]]


class _Rule(Protocol):
    """A ua-parser matcher, as `closed_values` reads it: its regex (flags and replacement
    templates are optional attributes, read with getattr)."""

    @property
    def regex(self) -> str: ...


def _language(items: _Parsed) -> set[str] | None:
    """The strings a parsed (sub)pattern matches, or None when infinite or too many."""
    out = {""}
    for op, av in items:
        if op is sre.LITERAL:
            options: set[str] | None = {chr(av)}
        elif op is sre.IN:
            options = set()
            for kind, arg in av:
                if kind is sre.LITERAL:
                    options.add(chr(arg))
                elif kind is sre.RANGE and arg[1] - arg[0] <= _MAX_RANGE:
                    options.update(chr(c) for c in range(arg[0], arg[1] + 1))
                else:  # NEGATE, a category (\d, \w), a wide range
                    return None
        elif op is sre.SUBPATTERN:
            options = _language(av[3])
        elif op is sre.BRANCH:
            options = set()
            for branch in av[1]:
                found = _language(branch)
                if found is None:
                    return None
                options |= found
        elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
            low, high, sub = av
            inner = _language(sub) if high <= _MAX_REPEAT else None
            if inner is None or len(inner) ** high > MAX_VALUES:
                return None
            options = {
                "".join(p) for n in range(low, high + 1) for p in itertools.product(inner, repeat=n)
            }
        elif op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue  # zero-width: matches no text (an over-approximation is still closed)
        else:  # ANY, NOT_LITERAL, CATEGORY, GROUPREF, ...
            return None
        if options is None:
            return None
        out = {a + b for a in out for b in options}
        if len(out) > MAX_VALUES:
            return None
    return out


def _groups(regex: str, flags: int) -> dict[int, _Parsed]:
    """Each capturing group's parsed subpattern, by number."""
    found: dict[int, _Parsed] = {}

    def walk(items: _Parsed) -> None:
        for op, av in items:
            if op is sre.SUBPATTERN:
                if av[0] is not None:
                    found[av[0]] = av[3]
                walk(av[3])
            elif op is sre.BRANCH:
                for branch in av[1]:
                    walk(branch)
            elif op in (sre.MAX_REPEAT, sre.MIN_REPEAT):
                walk(av[2])
            elif op in (sre.ASSERT, sre.ASSERT_NOT):
                walk(av[1])

    walk(sre_parse.parse(regex, flags))
    return found


def template_values(
    regex: str, flags: int, template: str, groups: dict[int, _Parsed] | None = None
) -> set[str] | None:
    """Every value `template` can take for a match of `regex`; None when that is open."""
    if "$" not in template:
        return {template.strip()} - {""}
    if groups is None:
        groups = _groups(regex, flags)
    parts: list[set[str]] = []
    end = 0
    for m in _GROUP.finditer(template):
        parts.append({template[end : m.start()]})
        group = groups.get(int(m[1]))
        options = {""} if group is None else _language(group)
        if options is None:
            return None
        parts.append(options | {""})  # an optional group may not take part in the match
        end = m.end()
    parts.append({template[end:]})
    values = {""}
    for options in parts:
        values = {a + b for a in values for b in options}
        if len(values) > MAX_VALUES:
            return None
    return {v.strip() for v in values} - {""}


class Vocabulary:
    """A closed set of values; `canonical` maps a value (any letter case when the rule was
    case-insensitive) to the rules' own spelling, or None when it is not in the set."""

    def __init__(self, values: Iterable[str]) -> None:
        self._exact = frozenset(values)
        self._folded: dict[str, str] = {}
        for v in sorted(self._exact):
            self._folded.setdefault(v.casefold(), v)

    def __len__(self) -> int:
        return len(self._exact)

    def canonical(self, value: str | None) -> str | None:
        if value is None:
            return None
        if value in self._exact:
            return value
        return self._folded.get(value.casefold())


def closed_values(matchers: Iterable[_Rule], *attributes: str) -> dict[str, set[str]]:
    """Every closed value each of `attributes` takes over `matchers` (open rules add none)."""
    values: dict[str, set[str]] = {a: set() for a in attributes}
    for m in matchers:
        flags, groups = getattr(m, "flags", 0), None
        for attribute in attributes:
            template = getattr(m, attribute, None)
            if not template:
                continue
            if groups is None and "$" in template:
                groups = _groups(m.regex, flags)  # parsed once for all attributes
            found = template_values(m.regex, flags, template, groups)
            if found is not None:
                values[attribute] |= found
    return values

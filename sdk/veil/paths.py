"""Path rules: a path that reveals special-category data (`/clinic/hiv-test`) is dropped, or
reduced to a template, before anything is stored.

    [[policy.paths]]
    pattern = "/clinic/**"        # anchored: the whole path must match
    action = "template"           # or "drop": no path is stored for the event
    template = "/clinic/:page"    # what is stored instead, as written

Pattern syntax, segment by segment (a segment lies between two "/"):
- a literal segment matches itself, ignoring case;
- `*` inside a segment matches any characters but "/" (`/clinic/*`, `/clinic/hiv-*`);
- a segment that is exactly `**` matches any number of segments, none included
  (`/clinic/**` matches `/clinic`, `/clinic/hiv-test` and `/clinic/a/b`).

A path is compared in a normal form, so another spelling of the same page cannot slip past a
rule: percent-escapes decoded (repeatedly, so `%2568` is `h`), case folded, repeated "/"
collapsed, "." and ".." resolved, a trailing "/" ignored. Rules are tried in order; the first
that matches decides. A path that matches none is stored as it came.
"""

import functools
import re
from dataclasses import dataclass
from urllib.parse import unquote

from .tables import Table

ACTIONS = ("drop", "template")
MAX_LENGTH = 512


@dataclass(frozen=True, slots=True)
class PathRule:
    pattern: str
    action: str  # "drop" or "template"
    template: str | None  # stored instead of a matching path (action "template")


def normal_form(path: str) -> str:
    """The path as rules see it: "" for the root, else "/a/b" with no empty, "." or ".."
    segments, percent-decoded and case-folded."""
    for _ in range(4):  # bounded: each pass only ever shortens the text
        decoded = unquote(path)
        if decoded == path:
            break
        path = decoded
    segments: list[str] = []
    for segment in path.casefold().split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment not in ("", "."):
            segments.append(segment)
    return "".join("/" + s for s in segments)


_END = "(?![^/])"  # a segment ends here


def _segment_regex(segment: str) -> str:
    """One pattern segment. Each middle piece is placed leftmost and kept (an atomic group):
    placing it further right never helps the rest match, and trying every placement made
    `/*-*-*.html` against a long path cost time growing as a power of its length."""
    pieces = [re.escape(p) for p in segment.split("*")]
    if len(pieces) == 1:
        return "/" + pieces[0] + _END
    middle = "".join(f"(?>[^/]*?{p})" for p in pieces[1:-1])
    return "/" + pieces[0] + middle + "[^/]*" + pieces[-1] + _END


def _regex(pattern: str) -> str:
    """The regex of a pattern, linear in the path's length: the runs of segments between two
    `**` are placed leftmost and kept, as the pieces within a segment are."""
    runs: list[list[str]] = [[]]
    for segment in normal_form_of_pattern(pattern):
        if segment == "**":
            runs.append([])
        else:
            runs[-1].append(_segment_regex(segment))
    out = "".join(runs[0])
    if len(runs) == 1:
        return out
    for run in runs[1:-1]:
        out += "(?>(?:/[^/]++)*?" + "".join(run) + ")"
    return out + "(?:/[^/]++)*" + "".join(runs[-1])


def normal_form_of_pattern(pattern: str) -> list[str]:
    """A pattern's segments, decoded and folded like paths are (`*` is no escape: it stays)."""
    return [s for s in unquote(pattern).casefold().split("/") if s not in ("", ".")]


def patterns_regex(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex that fullmatches the normal form of a path any of `patterns` matches."""
    return re.compile("|".join(f"(?:{_regex(p)})" for p in patterns) or "(?!)")


@functools.lru_cache(maxsize=8)
def _matcher(rules: tuple[PathRule, ...]) -> re.Pattern[str]:
    # One alternation, in rule order: the first alternative that matches is the first rule.
    return re.compile("|".join(f"(?P<r{i}>{_regex(r.pattern)})" for i, r in enumerate(rules)))


def rule_for(rules: tuple[PathRule, ...], path: str) -> PathRule | None:
    """The first rule whose pattern matches `path`, or None."""
    if not rules:
        return None
    m = _matcher(rules).fullmatch(normal_form(path))
    if m is None:
        return None
    if m.lastgroup is None:  # every alternative is a named group r<i>: a match names one
        raise AssertionError(f"a path rule matched without naming its group: {m.re.pattern!r}")
    return rules[int(m.lastgroup[1:])]


def rewrite(rules: tuple[PathRule, ...], path: str | None) -> str | None:
    """What is stored for `path`: itself, its rule's template, or None (dropped)."""
    if not rules or path is None:
        return path
    rule = rule_for(rules, path)
    if rule is None:
        return path
    return rule.template if rule.action == "template" else None


# -- parsing `[[policy.paths]]` ----------------------------------------------------------------


def pattern_problem(pattern: str) -> str | None:
    """What is wrong with a pattern (this module's syntax), or None."""
    if not pattern.startswith("/") or len(pattern) > MAX_LENGTH:
        return f"must start with '/' and be at most {MAX_LENGTH} characters, got {pattern!r}"
    if "?" in pattern or "#" in pattern:
        return "must not contain '?' or '#': paths are stored without query or fragment"
    if any("**" in s and s != "**" for s in pattern.split("/")):
        return "'**' must be a whole segment (like '/clinic/**'); use '*' within a segment"
    return None


def _template_problem(template: str) -> str | None:
    if not template.startswith("/") or len(template) > MAX_LENGTH:
        return f"must start with '/' and be at most {MAX_LENGTH} characters, got {template!r}"
    if any(c in template for c in "*?#"):
        return "is stored as written: it must not contain '*', '?' or '#'"
    return None


def parse_rules(t: Table) -> tuple[PathRule, ...]:
    """`[[policy.paths]]` of the `[policy]` table `t`; problems land in `t.problems`."""
    rules = []
    for i, raw in enumerate(t.get("paths", list, [])):
        r = Table(raw, f"{t.key('paths')}[{i}]", t.problems)
        pattern = r.get("pattern", str, check=pattern_problem)
        action = r.get(
            "action",
            str,
            check=lambda v: (
                None if v in ACTIONS else f"must be one of {', '.join(ACTIONS)}, got {v!r}"
            ),
        )
        template = r.get("template", str, None, check=_template_problem)
        if action == "template" and template is None and "template" not in r.data:
            r.problem(
                r.key("template"),
                'is required when action = "template": the path '
                'stored instead, e.g. "/clinic/:page"',
            )
        if action == "drop" and template is not None:
            r.problem(r.key("template"), 'is only used with action = "template"')
        r.close()
        if pattern and action:
            rules.append(PathRule(pattern, action, template if action == "template" else None))
    return tuple(rules)

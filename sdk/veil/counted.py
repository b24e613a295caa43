"""What is counted: which requests the middleware records as page views.

    [capture]
    exclude = ["/**/*.css", "/health"]   # default: DEFAULT_EXCLUDE; [] counts every path
    include = ["/blog/**", "/"]          # unset (default): every path not excluded
    exclude_statuses = [404]             # default; [] counts every status

Patterns are those of `[[policy.paths]]` (paths.py): anchored, segment by segment, `*` within
a segment, `**` for any number of segments, compared with the path in its normal form
(`/STATIC//x.CSS` is `/static/x.css`, `%2e%2e` is `..`), so another spelling of an excluded
path is excluded too. A path is counted when `include` is unset or matches it, and no
`exclude` pattern matches it: an exclusion always wins, the defaults too (to count a page the
defaults leave out, a page named `/health`, write `exclude` without that entry).

A request the rules leave out is not captured at all: nothing of it is queued or stored, and
it is counted as the drop `excluded_path` (or `excluded_status`), one number per day. A
beacon's path, when it sends one, goes through the path rules you write (`include`, or an
`exclude` of your own), never the defaults nor the status rule: a beacon is sent by a page, so
the defaults' static assets and health checks never send one, and a page named like one
(`/tags/node.js`) is a page.
"""

from .caches import weigh_entry
from .paths import normal_form, pattern_problem, patterns_regex
from .tables import Table

_ASSETS = (
    *("css", "js", "mjs", "map"),  # styles, scripts, source maps
    *("png", "jpg", "jpeg", "gif", "svg", "webp", "avif", "ico", "bmp"),  # images
    *("woff", "woff2", "ttf", "otf", "eot"),  # fonts
    *("mp4", "webm", "mp3", "ogg", "wasm", "webmanifest"),
)
DEFAULT_EXCLUDE: tuple[str, ...] = (
    *(f"/**/*.{suffix}" for suffix in _ASSETS),
    *("/robots.txt", "/sitemap.xml"),
    *("/health", "/healthz", "/livez", "/readyz", "/ping", "/metrics"),  # health checks
    "/.well-known/**",
)
DEFAULT_EXCLUDE_STATUSES: frozenset[int] = frozenset({404})  # a scan of missing paths
CACHE_BYTES = 1 << 18  # path -> counted: the paths a site serves, ~1,000 of them


class CountingRules:
    """`counts(path)`: whether a request for `path` is a page view; `statuses`: the response
    statuses that are not.

    The answer for a path is kept in `known`, a plain dict the middleware reads first: one
    lookup in C on every request (a ByteLRU's get, a Python call that also moves the entry,
    cost the request path ~1,500 instructions more). It is bounded in bytes as ByteLRU
    counts them, and emptied whole when full: a scan of made-up paths costs the site's own
    paths a recomputation each time it fills it, and never more memory."""

    __slots__ = ("_exclude", "_include", "_nbytes", "beacons", "known", "statuses")

    def __init__(
        self,
        include: tuple[str, ...] | None = None,
        exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
        statuses: frozenset[int] = DEFAULT_EXCLUDE_STATUSES,
    ) -> None:
        self._include = None if include is None else patterns_regex(include)
        self._exclude = patterns_regex(exclude) if exclude else None
        self.statuses = statuses
        # whether a beacon's path is checked: only against rules the operator wrote
        self.beacons = include is not None or exclude != DEFAULT_EXCLUDE
        self.known: dict[str, bool] = {}  # emptied in place, never replaced: hold it
        self._nbytes = 0

    def counts_beacon(self, path: str) -> bool:
        """Whether a beacon reporting a page view of `path` is one (the module says why the
        defaults do not apply)."""
        return not self.beacons or self.counts(path)

    def counts(self, path: str) -> bool:
        found = self.known.get(path)
        return self.decide(path) if found is None else found

    def decide(self, path: str) -> bool:
        """The answer for a path not in `known`, which then keeps it."""
        normal = normal_form(path)
        counted = (self._include is None or self._include.fullmatch(normal) is not None) and (
            self._exclude is None or self._exclude.fullmatch(normal) is None
        )
        size = weigh_entry(path, counted)
        if size <= CACHE_BYTES:
            if self._nbytes + size > CACHE_BYTES:
                self.known.clear()
                self._nbytes = 0
            self.known[path] = counted
            self._nbytes += size
        return counted


# -- parsing `[capture]` -----------------------------------------------------------------------


def _patterns(t: Table, name: str) -> tuple[str, ...] | None:
    """The patterns under `name`, or None when it is absent (or not an array)."""
    raw = t.get(name, list, None)
    if raw is None:
        return None
    patterns = []
    for i, value in enumerate(raw):
        key = f"{t.key(name)}[{i}]"
        if not isinstance(value, str):
            t.problem(key, f"must be a path pattern string like '/static/**', got {value!r}")
        elif why := pattern_problem(value):
            t.problem(key, why if repr(value) in why else f"{why}; got {value!r}")
        else:
            patterns.append(value)
    return tuple(patterns)


def _statuses(t: Table) -> frozenset[int]:
    raw = t.get("exclude_statuses", list, None)
    if raw is None:
        return DEFAULT_EXCLUDE_STATUSES
    statuses = set()
    for i, value in enumerate(raw):
        if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
            t.problem(
                f"{t.key('exclude_statuses')}[{i}]",
                f"must be an HTTP status code from 100 to 599, got {value!r}",
            )
        else:
            statuses.add(value)
    return frozenset(statuses)


def parse_counting(t: Table) -> tuple[tuple[str, ...] | None, tuple[str, ...], frozenset[int]]:
    """(include, exclude, exclude_statuses) of the `[capture]` table `t`; problems land in
    `t.problems`. Absent keys take the defaults; `exclude = []` turns the defaults off."""
    include = _patterns(t, "include")
    if include is not None and "include" in t.data and not t.data["include"]:
        t.problem(
            t.key("include"),
            "is empty, which would count no page; leave it out to count every path "
            "that exclude does not leave out",
        )
        include = None
    exclude = _patterns(t, "exclude")
    return include, DEFAULT_EXCLUDE if exclude is None else exclude, _statuses(t)

"""Found in review: a path pattern whose regex backtracked for minutes on one crafted request
path (every `[capture]` and `[[policy.paths]]` rule is matched on the request path), and a
collector's site list that an Origin-less beacon passed with any Host."""

import random
import subprocess
import sys
from fnmatch import fnmatchcase

from servers import ServerProcess
from test_site_origin import collector, drops, send, sites

from veil import Veil
from veil.paths import normal_form, normal_form_of_pattern, patterns_regex

from conftest import rows

PATTERNS = [
    "/**/*-*-*.html",
    "/**/a/**/b/**/c",
    "/*a*a*b",
    "/**",
    "/a/**",
    "/**/x",
    "/**/*.css",
    "/a*/**/b*c/**",
    "/*/*/*",
    "/**/a*a/**/a",
    "/x/**/**/y",
    "/",
]


def reference(pattern: str, path: str) -> bool:
    """Segment by segment, trying every placement of `**`: slow, plainly right."""
    want, have = normal_form_of_pattern(pattern), [s for s in path.split("/") if s]

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(have)
        if want[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(have) + 1))
        # `*` within a segment; fnmatch's other wildcards never occur in these paths
        return j < len(have) and fnmatchcase(have[j], want[i]) and match(i + 1, j + 1)

    return match(0, 0)


def test_the_linear_regex_matches_what_the_rule_says():
    rng = random.Random(11)
    for pattern in PATTERNS:
        regex = patterns_regex((pattern,))
        for _ in range(3_000):
            segments = rng.randint(0, 6)
            path = "".join(
                "/" + "".join(rng.choice("ab-xc.") for _ in range(rng.randint(1, 5)))
                for _ in range(segments)
            )
            path = normal_form(path)
            assert (regex.fullmatch(path) is not None) == reference(pattern, path), (pattern, path)


HOSTILE = """
from veil.counted import CountingRules
from veil.paths import PathRule, rule_for
rules = CountingRules(exclude=("/**/*-*-*.html", "/*-*-*-*.html", "/**/a/**/b/**/c"))
for path in ("/" + "-" * 16000, "/a" * 8000, "/" + "-" * 8000 + "/x"):
    assert rules.counts(path)
policy = (PathRule("/**/*-*-*.html", "drop", None), PathRule("/*-*-*-*.x", "drop", None))
assert rule_for(policy, "/" + "-" * 16000) is None
print("done")
"""


def test_a_crafted_path_cannot_stall_the_rules():
    # each of these took from 1.85 s to hours before (time growing as a power of the path's
    # length); linear now, milliseconds. The bound is a hang check, 100x what it takes
    done = subprocess.run(
        [sys.executable, "-c", HOSTILE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == "done", done.stderr


def test_a_beacon_without_origin_needs_a_listed_host(tmp_path, master_key):
    server: ServerProcess = collector(tmp_path, master_key, 'sites = ["shop.example"]\n')
    try:
        made_up = [send(server, None, host=h) for h in ("evil.example", "x22408.attacker.example")]
        assert [(r.status_code, r.json()["field"]) for r in made_up] == [(403, "Host")] * 2
        assert send(server, None, host="shop.example").status_code == 202
    finally:
        assert server.stop() == 0
    assert sites(server) == ["shop.example"]
    assert drops(server) == {"foreign_origin": 2}


async def test_what_is_captured_is_the_request_as_it_came(make_config, started_site):
    """With the status rule the request is captured after the app ran: an inner middleware
    that rewrites the scope in place must not change what veil records."""

    async def page(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def rewriting(scope, receive, send):
        scope["path"] = "/static/rewritten.css"  # would be excluded, had it come so
        scope["client"] = ("203.0.113.99", 1)
        scope["headers"] = [(b"user-agent", b"curl/8.0")]  # a bot: dropped, had it come so
        await page(scope, receive, send)

    site = await started_site(Veil(make_config()), app=rewriting)
    async with site.client("198.51.100.20") as client:
        assert (await client.get("/pricing")).status_code == 200
    await site.veil.stop()
    (row,) = rows(site.veil, "SELECT browser, network FROM event_rows")
    assert row[0] == "Chrome"  # the request's own user-agent
    assert drops(site.veil) == {}

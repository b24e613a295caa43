"""Re-linking across days: how many returning people an attacker holding the database links.

The promise under test: a cookieless visitor's pseudonym is keyed per UTC day, so one person's
days are unlinkable once the day keys are destroyed. The attacker here has the whole
`event_rows` view (everything an analyst or a thief of the file sees) and no keys. For each pair of
days, they build for every pseudonym a profile of all stored columns except the pseudonyms,
ids and times (the merged values of its rows: a page request and the snippet's beacon give
different columns) and link the pseudonym of day A to the one of day B when that profile occurs
exactly once on each day (with and without a clear network prefix, keeping either's links:
a phone's prefix changes every visit). We report the fraction of people present on both days
whom such a unique match re-links correctly, and the false links. Rows of the cookieless
purpose (`connection`) only: a consenting subject is linked across days by consent.

The stream: bench/traffic.py's population (households, offices, phones on mobile data; one
device, screen and language each; daily, regular and one-off visitors; page request + beacon
per page view, addresses in a MaxMind database so country and region are stored), run through
each veil's real pipeline into a real SQLite store, for `--days` UTC days (today onwards: the
keystore makes a key for a future day, never for one past its life).

Both row shapes in one run, each veil in its own process on the same stream:
  before  the base commit's pipeline (a `git worktree` checkout of 0637979, `--base`);
  after   this tree's pipeline;
then "what if" rows: further coarsening simulated on top of the stored "after" rows, to decide
what the pipeline should store (not what it stores).

    git worktree add --detach /tmp/base-h4 0637979   # once
    .venv/bin/python bench/relinking.py [--people 600,6000] [--days 5] [--base /tmp/base-h4]
"""

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path

import traffic

HERE = Path(__file__).resolve().parent
# Never part of a profile: row ids, times, pseudonyms and what no two rows share.
NOT_PROFILE = {"id", "event_id", "ts", "visitor", "subject", "seal_key", "sealed_endpoint", "path"}


# -- one veil, one stream (run in a child process, so each veil imports its own code) ---------


async def emit(out: Path, people: int, days: int, seed: int) -> None:
    from veil import Veil
    from veil.config import from_dict
    from veil.store.columns import ROW_COLUMNS

    os.environ.setdefault("VEIL_MASTER_KEY", traffic.MASTER_KEY)
    geo = traffic.geo_database(out / "geo.mmdb")
    cfg = from_dict(
        {
            "site": "shop.example.org",
            "store": {"url": f"sqlite:///{out}/veil.db"},
            "keys": {"path": f"{out}/keys.db"},
            "proxy": {"trusted": [traffic.PROXY]},
            "geoip": {"path": str(geo)},
            "capture": {"queue_size": 1_000_000, "batch_size": 1000, "flush_interval": 3600.0},
        },
        base=out,
    )
    veil = Veil(cfg)
    await veil.start()
    pipeline, store = veil.writer.pipeline, veil.store
    event_id, purpose = ROW_COLUMNS.index("event_id"), ROW_COLUMNS.index("purpose")
    rng = random.Random(seed + 2)
    population = traffic.population(people, seed)
    first = dt.datetime.now(dt.UTC).date()
    truth: dict[str, int] = {}
    for day, visits in enumerate(traffic.visits(population, days, seed)):
        midnight = dt.datetime.combine(first + dt.timedelta(days=day), dt.time(), dt.UTC)
        views = []
        for person, ip, pages in visits:
            ts = midnight.timestamp() + rng.uniform(0, 86000)
            for _ in range(pages):
                path = f"/page/{rng.randrange(40)}"
                port = rng.randrange(1024, 65536)
                views.append(
                    (ts, person, traffic.person_scope(person, ip, path, port, False), None)
                )
                views.append(
                    (
                        ts + 0.3,
                        person,
                        traffic.person_scope(person, ip, path, port + 1, True),
                        traffic.beacon_of(person, path),
                    )
                )
                ts += rng.uniform(5, 120)
        views.sort(key=lambda v: v[0])
        for _, _, scope, beacon in views:
            assert veil.buffer.capture(scope, "connection", beacon)
        captured = [
            (item[0], ts, *item[2:])
            for item, (ts, *_) in zip(veil.buffer.take(len(views)), views, strict=True)
        ]
        for start in range(0, len(captured), 1000):
            chunk = captured[start : start + 1000]
            rows, drops, _ = pipeline.process(chunk)
            # one connection row per event, in order (the base commit also keeps California
            # visitors' browsing_history under its opt-out default: extra rows, not counted)
            kept = [r for r in rows if r[purpose] == "connection"]
            assert not drops and len(kept) == len(chunk), (drops, len(kept))
            for row, (_, person, _, _) in zip(kept, views[start : start + 1000], strict=True):
                truth[row[event_id]] = person.id
            await store.write(rows, drops, (first + dt.timedelta(days=day)).isoformat())
    await veil.stop()
    (out / "truth.json").write_text(json.dumps(truth))


def run_child(label: str, pythonpath: str | None, people: int, days: int, seed: int) -> Path:
    out = Path(tempfile.mkdtemp(prefix=f"veil-relink-{label}-"))
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "--emit",
            str(out),
            "--people",
            str(people),
            "--days",
            str(days),
            "--seed",
            str(seed),
        ],
        env=env,
        check=True,
        cwd=HERE.parent,
    )
    return out


# -- the attacker ------------------------------------------------------------------------------

Transform = dict[str, Callable[[object], object] | None]  # column → new value; None: dropped


def load(out: Path) -> tuple[list[str], list[tuple], dict[str, int]]:
    db = sqlite3.connect(out / "veil.db")
    cursor = db.execute(
        "SELECT *, date(ts, 'unixepoch') FROM event_rows WHERE purpose = 'connection'"
    )
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall()
    db.close()
    return columns, rows, json.loads((out / "truth.json").read_text())


def measure(
    columns: list[str], rows: list[tuple], truth: dict[str, int], transform: Transform | None = None
) -> dict:
    """Re-linking over every pair of days, by unique profile match.

    The attacker tries two profiles and keeps the links of either: every stored column but
    the pseudonyms, and the same without the network prefix when it is stored in clear (a
    household's prefix re-links it, a phone's changes every visit and would hide the match).
    A daily network pseudonym is a pseudonym: never part of a profile.
    """
    transform = transform or {}
    index = {c: i for i, c in enumerate(columns)}
    clear_network = any("/" in r[index["network"]] for r in rows if r[index["network"]])
    used = [
        c
        for c in columns[:-1]
        if c not in NOT_PROFILE
        and (c != "network" or clear_network)
        and transform.get(c, 1) is not None
    ]
    merged: dict[str, dict[str, list[set]]] = defaultdict(dict)  # day → pseudonym → per column
    persons: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for r in rows:
        day, pseudonym = r[-1], r[index["visitor"]]
        if pseudonym is None:
            continue
        values = merged[day].setdefault(pseudonym, [set() for _ in used])
        for k, c in enumerate(used):
            v = r[index[c]]
            if v is not None:
                values[k].add(transform[c](v) if c in transform else v)
        persons[day][pseudonym].add(truth[r[index["event_id"]]])
    strategies = [used] + ([[c for c in used if c != "network"]] if clear_network else [])
    returning = relinked = links = false = 0
    for a, b in itertools.combinations(sorted(merged), 2):
        both = set().union(*persons[a].values()) & set().union(*persons[b].values())
        pairs: set[tuple[str, str]] = set()
        for keep in strategies:
            ks = [used.index(c) for c in keep]
            prof_a = {
                p: tuple(tuple(sorted(map(str, v[k]))) for k in ks) for p, v in merged[a].items()
            }
            prof_b = {
                p: tuple(tuple(sorted(map(str, v[k]))) for k in ks) for p, v in merged[b].items()
            }
            count_a, count_b = Counter(prof_a.values()), Counter(prof_b.values())
            unique_b = {prof: q for q, prof in prof_b.items() if count_b[prof] == 1}
            pairs |= {
                (p, unique_b[prof])
                for p, prof in prof_a.items()
                if count_a[prof] == 1 and prof in unique_b
            }
        found: set[int] = set()
        for p, q in pairs:
            shared = persons[a][p] & persons[b][q]
            found |= shared & both
            false += not shared
        links += len(pairs)
        returning += len(both)
        relinked += len(found)
    per_day = sum(len(v) for v in merged.values()) / max(len(merged), 1)
    return {
        "returning": returning,
        "relinked": relinked,
        "links": links,
        "false": false,
        "pseudonyms_per_day": per_day,
        "columns": used,
        "clear_network": clear_network,
    }


WHAT_IF: list[tuple[str, Transform]] = [
    ("no languages list", {"languages": None}),
    ("no gpc/dnt", {"gpc": None, "dnt": None}),
    ("no pixel_ratio", {"pixel_ratio": None}),
    ("no screen", {"screen_w": None, "screen_h": None}),
    ("no region", {"region": None}),
    ("no os_version/browser_version", {"os_version": None, "browser_version": None}),
    ("no region, no versions", {"region": None, "os_version": None, "browser_version": None}),
    (
        "only country, os, browser, device, language",
        {
            c: None
            for c in (
                "region",
                "os_version",
                "browser_version",
                "device_brand",
                "device_model",
                "languages",
                "gpc",
                "dnt",
                "screen_w",
                "screen_h",
                "pixel_ratio",
            )
        },
    ),
]


def line(label: str, m: dict) -> str:
    rate = m["relinked"] / m["returning"] if m["returning"] else 0.0
    precision = 1 - m["false"] / m["links"] if m["links"] else 1.0
    return (
        f"  {label:<46}{rate:>8.1%}{m['relinked']:>8}/{m['returning']:<7}"
        f"{m['links']:>7}{m['false']:>7}{precision:>8.1%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--people", default="600,6000", help="population sizes, comma-separated")
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--base", default="/tmp/base-h4", help="checkout of the base commit")
    ap.add_argument("--emit", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.emit:
        asyncio.run(emit(Path(args.emit), int(args.people), args.days, args.seed))
        return
    base = Path(args.base)
    if not (base / "sdk" / "veil").is_dir():
        sys.exit(f"no base checkout at {base}: git worktree add --detach {base} 0637979")
    header = (
        f"  {'rows as stored':<46}{'re-linked':>8}{'of returning':>15}"
        f"{'links':>7}{'false':>7}{'precision':>10}"
    )
    for people in (int(p) for p in args.people.split(",")):
        runs = {
            "before (base 0637979)": run_child(
                "before", f"{base}/sdk:{base}/collector", people, args.days, args.seed
            ),
            "after (this tree)": run_child("after", None, people, args.days, args.seed),
        }
        loaded = {label: load(out) for label, out in runs.items()}
        after = loaded["after (this tree)"]
        m = measure(*after)
        print(
            f"\n{people} people, {args.days} days, {len(after[1])} rows, "
            f"~{m['pseudonyms_per_day']:.0f} pseudonyms a day; a person is 'returning' once "
            f"per pair of days they visited on both"
        )
        print(header)
        for label, data in loaded.items():
            result = measure(*data)
            print(line(label, result))
            print(f"    profile: {', '.join(result['columns'])}")
        print("  what if the stored 'after' rows were coarser still (simulated):")
        for label, transform in WHAT_IF:
            print(line(label, measure(*after, transform)))
        for out in runs.values():
            for f in out.iterdir():
                f.unlink()
            out.rmdir()


if __name__ == "__main__":
    main()

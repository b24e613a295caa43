"""The `veil` command line: init, policy check, keys, query, drops, retention, provisions,
audit, rights, analysts, notice, serve.

Every command takes `--config FILE`, before or after the command (after wins); without it
`$VEIL_CONFIG`, then `./veil.toml`, then the built-in defaults are used. Errors print one line
per problem and exit 1; `veil serve` exits 1 when its store cannot open for good. `veil
--version` prints the installed version. `veil serve --workers N` runs N HTTP workers and one
writer process (serve.py).

Each command imports what it needs when it runs: `veil query` never loads the HTTP side
(starlette, uvicorn, httpx), GeoIP, the user-agent parser nor the rights machinery.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import logging
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

from veil import config as config_mod
from veil.errors import QueryError, VeilError
from veil.query import DIMENSIONS

if TYPE_CHECKING:
    from veil.consent import Ledger
    from veil.store.keys import KeyStore
    from veil.store.sqlite import SQLiteStore

# `veil notice --format` and the grounds `veil rights refuse` takes: veil/notice.py FORMATS
# and veil/rights/requests.py GROUNDS, named here so building the parser loads neither
# (tests/test_cli_hardening.py checks they agree)
NOTICE_FORMATS = ("md", "html")
REFUSAL_GROUNDS = ("harm", "business", "law")


def _config(args: argparse.Namespace) -> config_mod.Config:
    return config_mod.load(args.config)


def cmd_init(args: argparse.Namespace) -> int:
    from veil.starter import starter_toml

    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"{path} exists; use --force to overwrite it", file=sys.stderr)
        return 1
    path.write_text(starter_toml(), encoding="utf-8")
    print(f"wrote {path}; check it with: veil policy check {path}")
    return 0


def cmd_policy_check(args: argparse.Namespace) -> int:
    from veil.geo import open_geoip
    from veil.store import versions as policy_versions

    cfg = config_mod.load(args.file or args.config)
    warnings = list(cfg.warnings)
    if cfg.geoip_path and open_geoip(cfg.geoip_path) is None:
        warnings.append(
            f"geoip.path: {cfg.geoip_path} cannot be read as a MaxMind database; "
            "country and region will be null"
        )
    # What starting would refuse, checked against the store's past versions (read-only): a
    # changed policy whose version was not bumped, a new version without a change entry, a
    # version not yet in effect. A collector's store is checked where it runs.
    if cfg.remote.url:
        problems = policy_versions.problems(None, cfg.policy)
    else:
        problems, more = policy_versions.check_store(cfg.store.path, cfg.policy)
        warnings += more
    for w in warnings:
        print(f"warning: {w}")
    where = cfg.source or "built-in defaults"
    for problem in problems:
        print(f"{where}: {problem}", file=sys.stderr)
    if problems:
        return 1
    p = cfg.policy
    print(
        f"{where}: OK — policy {p.version} effective {p.effective}, purposes: "
        f"{', '.join(p.purposes)}"
    )
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    from veil.store.keys import KeyStore

    ks = KeyStore.open(_config(args).keys)
    try:
        rows = [dataclasses.astuple(k) for k in ks.list()]
    finally:
        ks.close()
    _print_table(
        ("id", "kind", "epoch", "created_at", "expires_at", "destroyed_at"),
        [tuple("-" if v is None else v for v in r) for r in rows],
    )
    return 0


def cmd_keys_rotate(args: argparse.Namespace) -> int:
    from veil.store.keys import KeyStore

    ks = KeyStore.open(_config(args).keys)
    try:
        destroyed = ks.rotate()
    finally:
        ks.close()
    print(
        f"destroyed {len(destroyed)} expired key(s)"
        + (f": {', '.join(destroyed)}" if destroyed else "")
    )
    return 0


def cmd_keys_generate_master(args: argparse.Namespace) -> int:
    from veil.store.keys import new_master_key

    print(new_master_key())
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from veil.query import run_query

    by = [d.strip() for d in args.by.split(",") if d.strip()]
    metrics = [m.strip() for ms in args.metric or ["events"] for m in ms.split(",") if m.strip()]
    filters = {}
    for where in args.where or []:
        dim, sep, value = where.partition("=")
        if not sep or not dim.strip():
            raise QueryError(f"--where takes DIMENSION=VALUE, got {where!r}")
        filters[dim.strip()] = value
    result = asyncio.run(
        run_query(
            _config(args),
            by,
            since=args.since,
            purpose=args.purpose,
            metrics=metrics,
            filters=filters,
            until=args.until,
        )
    )
    columns = (*result.by, *result.metrics)
    if args.format == "json":
        print(json.dumps(dataclasses.asdict(result), indent=2))
        return 0
    # a suppressed cell says so in each metric's place
    shown = [
        tuple(
            "suppressed" if r.get("suppressed") and c in result.metrics else r[c] for c in columns
        )
        for r in result.rows
    ]
    if args.format == "csv":
        import csv
        import io

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows(shown)
        print(out.getvalue(), end="")
    else:
        _print_table(columns, shown)
        if result.suppressed_groups:
            print(
                f"({result.suppressed_groups} cell(s) suppressed: fewer than "
                f"{result.min_group_size} persons, or hidden beside one that was)"
            )
        if result.partial_groups:
            print(
                f"({result.partial_groups} cell(s) leave out days with fewer than "
                f"{result.min_group_size} persons: their counts are of the other days)"
            )
    return 0


def cmd_drops(args: argparse.Namespace) -> int:
    from veil.query import drop_counts

    counts = asyncio.run(drop_counts(_config(args)))
    _print_table(("reason", "events"), sorted(counts.items()))
    return 0


def cmd_retention(args: argparse.Namespace) -> int:
    from veil import retention
    from veil.query import existing_store
    from veil.store import LocalStore
    from veil.store.keys import KeyStore

    cfg = _config(args)

    async def run() -> dict[str, int]:
        async with existing_store(cfg) as store:
            if not isinstance(store, LocalStore):
                raise QueryError(
                    f"this app forwards its events to {cfg.remote.url}: "
                    "retention runs on the collector"
                )
            keystore = KeyStore.open(cfg.keys)
            try:
                return await retention.enforce(store, keystore, cfg.policy)
            finally:
                keystore.close()

    _print_table(("purpose", "rows deleted"), sorted(asyncio.run(run()).items()))
    return 0


def _utc(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def cmd_provisions_export(args: argparse.Namespace) -> int:
    import csv

    from veil.query import existing_store
    from veil.store import LocalStore
    from veil.store.base import PROVISION_COLUMNS

    cfg = _config(args)

    async def rows() -> list[dict]:
        async with existing_store(cfg) as store:
            if not isinstance(store, LocalStore):
                raise QueryError(
                    f"this app forwards its events to {cfg.remote.url}: "
                    "export the register on the collector"
                )
            return await store.provisions()

    # `date`: the entry's time in UTC, to the second, in place of its timestamp
    register = [
        {"id": entry["id"], "date": _utc(entry["ts"])}
        | {k: v for k, v in entry.items() if k not in ("id", "ts")}
        for entry in asyncio.run(rows())
    ]
    if args.format == "json":
        print(json.dumps(register, indent=2))
    else:
        fields = ("id", "date", *PROVISION_COLUMNS[2:])  # the register's date, not its ts
        writer = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(register)
    return 0


def _audited_store(cfg: config_mod.Config) -> Path:
    if cfg.remote.url:
        raise QueryError(
            f"this app forwards its events to {cfg.remote.url}: the audit log is on the collector"
        )
    return cfg.store.path


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from veil.store import audit

    path = _audited_store(_config(args))
    head = audit.read_anchor(audit.head_path(path))
    with audit.open_readonly(path) as db:
        findings = audit.verify(db, head)
        chain = audit.entries(db, last=1)
        (count,) = db.execute("SELECT COUNT(*) FROM audit_log").fetchone()
    for finding in findings:
        print(f"audit log broken: {finding}", file=sys.stderr)
    if findings:
        return 1
    if head is None and count:
        print(f"warning: no head file {audit.head_path(path)}: a cut-short log goes unseen")
    tip = f"; head {chain[-1].seq} {chain[-1].hash}" if chain else ""
    print(f"audit log intact: {count} entries{tip}")
    return 0


def cmd_audit_show(args: argparse.Namespace) -> int:
    from veil.store import audit

    if args.last is not None and args.last < 1:
        print("veil: --last must be 1 or more", file=sys.stderr)
        return 1
    with audit.open_readonly(_audited_store(_config(args))) as db:
        shown = audit.entries(db, args.kind, args.last)
    _print_table(
        ("seq", "date", "kind", "details"), [(e.seq, _utc(e.ts), e.kind, e.details) for e in shown]
    )
    return 0


@contextlib.asynccontextmanager
async def _rights_parts(
    cfg: config_mod.Config,
) -> AsyncIterator[tuple["SQLiteStore", "KeyStore", "Ledger"]]:
    """The store, keystore and ledger a DPO's rights command works on (a local store only)."""
    from veil.consent import Ledger
    from veil.store.keys import KeyStore
    from veil.store.sqlite import SQLiteStore
    from veil.subjects import Subjects

    if cfg.remote.url:
        raise QueryError(
            f"this app forwards its events to {cfg.remote.url}: answer requests on the collector"
        )
    keystore = KeyStore.open(cfg.keys)
    store = SQLiteStore(cfg.store.path)
    try:
        await store.open(cfg.policy)
        yield store, keystore, Ledger(store, cfg.policy, Subjects(keystore))
    finally:
        await store.close()
        keystore.close()


def cmd_rights_list(args: argparse.Namespace) -> int:
    from veil.rights import requests as rights_requests

    async def run() -> list[rights_requests.Overdue]:
        async with _rights_parts(_config(args)) as (store, _, _):
            return rights_requests.open_requests(store)

    _print_table(
        ("request", "kind", "channel", "status", "received", "due", "overdue"),
        [
            (
                r.row.id,
                r.row.kind,
                r.row.channel,
                r.row.status,
                _utc(r.row.received),
                _utc(r.row.due),
                "OVERDUE" if r.overdue else "",
            )
            for r in asyncio.run(run())
        ],
    )
    return 0


def cmd_rights_close(args: argparse.Namespace) -> int:
    from veil.rights import requests as rights_requests

    async def run() -> rights_requests.RequestRow:
        async with _rights_parts(_config(args)) as (store, _, _):
            if args.rights_command == "refuse":
                return await rights_requests.refuse(store, args.request, args.ground)
            return await rights_requests.finish(store, args.request, {"by": "dpo"})

    row = asyncio.run(run())
    print(f"{row.id}: {row.status}" + (f" ({row.ground})" if row.ground else ""))
    return 0


def cmd_rights_request(args: argparse.Namespace) -> int:
    """A request the DPO received (by mail) and verified: it goes through the same life as
    one made over HTTP, under the channel `dpo`."""
    from veil.rights import requests as rights_requests
    from veil.rights.correct import correct
    from veil.rights.erase import erase
    from veil.rights.export import export, to_csv
    from veil.rights.identity import dpo_requester

    cfg = _config(args)
    verb = args.rights_command
    kind = {("restrict", True): "lift_restriction", ("suspend", True): "resume"}.get(
        (verb, bool(getattr(args, "lift", False) or getattr(args, "resume", False))), verb
    )

    async def run() -> tuple[rights_requests.RequestRow, object]:
        async with _rights_parts(cfg) as (store, keystore, ledger):
            who = dpo_requester(ledger.subjects, args.user_id, args.cookie)
            row = await rights_requests.receive(store, keystore, who, kind, args.jurisdiction)
            result: object = None
            if verb in ("access", "export"):
                result = await export(store, keystore, cfg.policy, who.subject)
            elif verb == "correct":
                result = await correct(
                    store,
                    keystore,
                    ledger,
                    who.subject,
                    args.record_id,
                    args.field,
                    json.loads(args.value),
                )
            elif verb == "delete":
                result = await erase(store, keystore, who.subject, row.id, policy=cfg.policy)
            elif verb in ("restrict", "suspend", "object"):
                purpose = args.purpose if verb == "object" else ""
                result = {
                    "changed": await rights_requests.apply_limit(
                        store, keystore, cfg.policy, who.subject, kind, row.id, purpose
                    )
                }
            if verb != "complaint":  # a complaint stays open until answered: `rights close`
                row = await rights_requests.finish(store, row.id, {"by": "dpo"})
            return row, result

    row, result = asyncio.run(run())
    if verb in ("access", "export") and args.format == "csv":
        print(to_csv(result), end="")  # type: ignore[arg-type]
    elif result is not None:
        print(json.dumps(result, indent=2, default=str))
    print(f"request {row.id} ({row.kind}): {row.status}, due {_utc(row.due)}", file=sys.stderr)
    return 0


@contextlib.asynccontextmanager
async def _analysts_store(cfg: config_mod.Config) -> AsyncIterator["SQLiteStore"]:
    """The local store analysts are kept in (a collector's, never an app that forwards)."""
    from veil.store.sqlite import SQLiteStore

    if cfg.remote.url:
        raise QueryError(
            f"this app forwards its events to {cfg.remote.url}: add analysts on the collector"
        )
    store = SQLiteStore(cfg.store.path)
    await store.open(cfg.policy)
    try:
        yield store
    finally:
        await store.close()


def cmd_analysts_add(args: argparse.Namespace) -> int:
    from veil.analytics import analysts

    cfg = _config(args)

    async def run() -> str:
        async with _analysts_store(cfg) as store:
            _, token = await analysts.add(
                store, cfg.policy, args.name, args.purpose, args.use or [analysts.DEFAULT_USE]
            )
            return token

    token = asyncio.run(run())
    print(token)  # the only time it is shown: the store keeps its hash
    print(
        f"analyst {args.name!r} added; the token above is shown once and cannot be recovered",
        file=sys.stderr,
    )
    return 0


def cmd_analysts_list(args: argparse.Namespace) -> int:
    from veil.analytics import analysts

    cfg = _config(args)

    async def run() -> list[analysts.Analyst]:
        async with _analysts_store(cfg) as store:
            return await analysts.every(store)

    _print_table(
        ("name", "purposes", "uses", "created", "revoked"),
        [
            (
                a.name,
                ",".join(a.purposes),
                ",".join(a.uses),
                _utc(a.created),
                "" if a.revoked is None else _utc(a.revoked),
            )
            for a in asyncio.run(run())
        ],
    )
    return 0


def cmd_analysts_revoke(args: argparse.Namespace) -> int:
    from veil.analytics import analysts

    cfg = _config(args)

    async def run() -> None:
        async with _analysts_store(cfg) as store:
            await analysts.revoke(store, args.name)

    asyncio.run(run())
    print(f"analyst {args.name!r} revoked: their token no longer reads anything")
    return 0


def cmd_notice(args: argparse.Namespace) -> int:
    from veil.notice import render_notice

    print(render_notice(_config(args), args.format), end="")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from .serve import ServeOptions, serve

    if args.workers < 1:
        print("veil: --workers must be 1 or more", file=sys.stderr)
        return 1
    options = ServeOptions(args.host, args.port, args.workers, args.loop, args.http, args.config)
    return serve(_config(args), options)


def _print_table(columns: tuple[str, ...], rows: list[tuple]) -> None:
    cells = [tuple("" if v is None else str(v) for v in r) for r in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not cells:
        print("(no rows)")


def _version() -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version("veil")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        from veil import __version__

        return __version__


class _VersionAction(argparse.Action):
    """argparse's "version" action, the version looked up only when asked for (reading the
    installed package's metadata costs ~12 ms on every command otherwise)."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest,
            nargs=0,
            default=argparse.SUPPRESS,
            help="show program's version number and exit",
        )

    def __call__(self, parser: argparse.ArgumentParser, *args: object) -> None:
        print(f"veil {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    config_help = "veil.toml to use (default: $VEIL_CONFIG, then ./veil.toml)"
    # `--config` goes before or after the command. After it, SUPPRESS as the default: a
    # subcommand that was not given one must not overwrite the one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS, help=config_help)
    parser = argparse.ArgumentParser(prog="veil", description="Privacy-preserving telemetry.")
    parser.add_argument("--config", metavar="FILE", default=None, help=config_help)
    parser.add_argument("--version", action=_VersionAction)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init", parents=[common], help="write a commented starter veil.toml")
    p.add_argument("path", nargs="?", default="veil.toml")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_init)

    policy = sub.add_parser("policy", help="the privacy policy").add_subparsers(
        dest="policy_command", required=True
    )
    p = policy.add_parser("check", parents=[common], help="validate veil.toml")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_policy_check)

    keys = sub.add_parser("keys", help="the keystore").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser(
        "list", parents=[common], help="key ids, epochs and times (never bytes)"
    ).set_defaults(func=cmd_keys_list)
    keys.add_parser(
        "rotate", parents=[common], help="destroy expired keys, make today's"
    ).set_defaults(func=cmd_keys_rotate)
    keys.add_parser(
        "generate-master", parents=[common], help="print a new random master key"
    ).set_defaults(func=cmd_keys_generate_master)

    p = sub.add_parser("query", parents=[common], help="aggregate events (small groups withheld)")
    p.add_argument("--by", default="", help=f"comma-separated: {', '.join(DIMENSIONS)}")
    p.add_argument(
        "--metric",
        action="append",
        help="events (default), visitors, subjects (consent purposes); repeat or comma-separate",
    )
    p.add_argument(
        "--where", action="append", metavar="DIM=VALUE", help="keep one value of a dimension"
    )
    p.add_argument("--since", metavar="WHEN", help="a duration back (24h, 7d) or a UTC date")
    p.add_argument("--until", metavar="WHEN", help="exclusive: a duration back or a UTC date")
    p.add_argument("--purpose", default="connection")
    p.add_argument("--format", choices=("table", "json", "csv"), default="table")
    p.set_defaults(func=cmd_query)

    sub.add_parser("drops", parents=[common], help="events dropped, by reason").set_defaults(
        func=cmd_drops
    )

    sub.add_parser(
        "retention",
        parents=[common],
        help="dispose of data past its purpose's retention, destroy expired keys",
    ).set_defaults(func=cmd_retention)

    provisions = sub.add_parser("provisions", help="the provision register").add_subparsers(
        dest="provisions_command", required=True
    )
    p = provisions.add_parser(
        "export",
        parents=[common],
        help="every provision to a third party: recipient, date, "
        "categories, subjects' count, basis",
    )
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.set_defaults(func=cmd_provisions_export)

    p = sub.add_parser(
        "notice", parents=[common], help="print the privacy notice, rendered from the policy"
    )
    p.add_argument("--format", choices=NOTICE_FORMATS, default="md")
    p.set_defaults(func=cmd_notice)

    audit_cmds = sub.add_parser("audit", help="the hash-chained audit log").add_subparsers(
        dest="audit_command", required=True
    )
    audit_cmds.add_parser(
        "verify",
        parents=[common],
        help="check the chain and the consent ledger; exit 1 naming each broken entry",
    ).set_defaults(func=cmd_audit_verify)
    p = audit_cmds.add_parser("show", parents=[common], help="list audit entries, oldest first")
    p.add_argument("--kind", help="only entries of this kind (consent, decision, erasure, …)")
    p.add_argument("--last", type=int, metavar="N", help="only the last N entries")
    p.set_defaults(func=cmd_audit_show)

    rights = sub.add_parser("rights", help="data-subject requests").add_subparsers(
        dest="rights_command", required=True
    )
    rights.add_parser(
        "list", parents=[common], help="open requests, the most urgent first, overdue marked"
    ).set_defaults(func=cmd_rights_list)
    p = rights.add_parser("refuse", parents=[common], help="refuse an open request on a ground")
    p.add_argument("request", help="the request's reference (R-…)")
    p.add_argument("--ground", required=True, help=", ".join(REFUSAL_GROUNDS))
    p.set_defaults(func=cmd_rights_close)
    p = rights.add_parser("close", parents=[common], help="mark an open request answered")
    p.add_argument("request", help="the request's reference (R-…)")
    p.set_defaults(func=cmd_rights_close)
    for verb, what in (
        ("access", "print everything held about the subject"),
        ("export", "print everything held about the subject (JSON or CSV)"),
        ("correct", "correct an app-declared field of one of the subject's records"),
        ("delete", "erase the subject from every table, destroy their keys"),
        ("restrict", "restrict (or --lift) the use of the subject's data"),
        ("suspend", "stop (or --resume) collection about the subject"),
        ("object", "record the subject's objection to a legitimate-interests purpose"),
        ("complaint", "record a complaint (left open until `veil rights close`)"),
    ):
        p = rights.add_parser(
            verb, parents=[common], help=f"for a request received by mail: {what}"
        )
        who = p.add_mutually_exclusive_group(required=True)
        who.add_argument("--user-id", help="the app's own id for the person")
        who.add_argument("--cookie", help="the value of the visitor's subject cookie")
        p.add_argument(
            "--jurisdiction",
            choices=("gdpr", "ccpa", "appi", "strictest"),
            default="strictest",
            help="the requester's regime (ccpa: due in 45 days, else one month)",
        )
        if verb in ("access", "export"):
            p.add_argument("--format", choices=("json", "csv"), default="json")
        if verb == "correct":
            p.add_argument("--record-id", type=int, required=True)
            p.add_argument("--field", required=True)
            p.add_argument("--value", required=True, help="the new value, as JSON")
        if verb == "restrict":
            p.add_argument("--lift", action="store_true")
        if verb == "suspend":
            p.add_argument("--resume", action="store_true")
        if verb == "object":
            p.add_argument("--purpose", default="connection")
        p.set_defaults(func=cmd_rights_request)

    analyst_cmds = sub.add_parser(
        "analysts", help="who may read aggregates through the stats API"
    ).add_subparsers(dest="analysts_command", required=True)
    p = analyst_cmds.add_parser(
        "add", parents=[common], help="add an analyst; prints their token once"
    )
    p.add_argument("name")
    p.add_argument(
        "--purpose", action="append", required=True, help="a purpose granted (repeatable)"
    )
    p.add_argument(
        "--use", action="append", help="a use their reads may serve (default: statistics)"
    )
    p.set_defaults(func=cmd_analysts_add)
    analyst_cmds.add_parser(
        "list", parents=[common], help="analysts and their grants (never tokens)"
    ).set_defaults(func=cmd_analysts_list)
    p = analyst_cmds.add_parser("revoke", parents=[common], help="revoke an analyst's token")
    p.add_argument("name")
    p.set_defaults(func=cmd_analysts_revoke)

    p = sub.add_parser("serve", parents=[common], help="run the collector service")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="HTTP worker processes, all feeding one writer process (default 1)",
    )
    p.add_argument("--loop", choices=("uvloop", "asyncio", "auto"), default="uvloop")
    p.add_argument("--http", choices=("httptools", "h11", "auto"), default="httptools")
    p.set_defaults(func=cmd_serve)
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="veil: %(levelname)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except VeilError as exc:
        if isinstance(exc, config_mod.ConfigError):
            for problem in exc.problems:
                print(f"{exc.source}: {problem}", file=sys.stderr)
        else:
            print(f"veil: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

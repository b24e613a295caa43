"""Restriction, suspension and objection (issue 10): kept but unused, not collected, not
collected under the purpose objected to; each reversible, each audited. Real SQLite files,
real HTTP through the middleware, `veil query` through the real CLI."""

import asyncio
import json

import pytest
from policies import GUARDED

from veil import Veil
from veil.errors import SubjectRestricted
from veil.rights import limits
from veil_collector.cli import main

from conftest import Site, rows, scalar

GRANT = {"grant": ["browsing_history"]}
IPS = ("198.51.100.20", "203.0.113.30")  # DE and JP in the test GeoIP database


@pytest.fixture
async def site(make_config, geoip_db, started_site) -> Site:
    cfg = make_config(geoip={"path": str(geoip_db)}, query={"min_group_size": 1})
    return await started_site(Veil(cfg))


async def consent(site: Site, ip: str) -> str:
    async with site.client(ip) as c:
        r = await c.post("/veil/consent", json=GRANT)
        return r.cookies["__Host-veil_sid"]


async def visit(site: Site, ip: str, path: str, cookie: str | None = None, **headers: str):
    async with site.client(ip, **headers) as c:
        if cookie:
            c.cookies.set("__Host-veil_sid", cookie, domain="shop.example")
        assert (await c.get(path)).text == "page"
    await site.veil.flush()


async def query(site: Site, capsys, config_path) -> dict[str, int]:
    """`veil query --by country --purpose browsing_history --format json`: events per
    country (the CLI runs its own event loop: in a thread, beside the test's)."""
    argv = ["query", "--config", str(config_path), "--by", "country"]
    code = await asyncio.to_thread(
        main, [*argv, "--purpose", "browsing_history", "--format", "json"]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    return {r["country"]: r["events"] for r in json.loads(out)["rows"]}


def audit_kinds(site: Site, kind: str) -> list[dict]:
    return [
        json.loads(d) for (d,) in rows(site, "SELECT details FROM audit_log WHERE kind=?", kind)
    ]


@pytest.fixture
def config_file(site, data_dir, geoip_db):
    path = data_dir / "veil.toml"
    path.write_text(
        f'[store]\nurl = "sqlite:///{site.veil.config.store.path}"\n'
        f'[keys]\npath = "{site.veil.config.keys.path}"\n'
        f'[geoip]\npath = "{geoip_db}"\n[query]\nmin_group_size = 1\n'
    )
    return path


async def test_a_restricted_subject_vanishes_from_veil_query_until_lifted(
    site, capsys, config_file
):
    cookies = [await consent(site, ip) for ip in IPS]
    for ip, cookie in zip(IPS, cookies, strict=True):
        await visit(site, ip, "/a", cookie)
        await visit(site, ip, "/b", cookie)
    assert await query(site, capsys, config_file) == {"DE": 2, "JP": 2}
    de = site.veil.ledger.subjects.browser(cookies[0])
    store, keystore = site.veil.store, site.veil.keystore
    assert await limits.impose(store, keystore, de, limits.RESTRICTION, request_id="r-1")
    assert not await limits.impose(store, keystore, de, limits.RESTRICTION)  # already
    assert await query(site, capsys, config_file) == {"JP": 2}
    assert scalar(site, "SELECT COUNT(*) FROM events_browsing_history WHERE subject=?", de) == 2
    await visit(site, IPS[0], "/c", cookies[0])  # restriction keeps collecting (storage only)
    assert scalar(site, "SELECT COUNT(*) FROM events_browsing_history WHERE subject=?", de) == 3
    assert await limits.lift(store, keystore, de, limits.RESTRICTION)
    assert await query(site, capsys, config_file) == {"DE": 3, "JP": 2}
    entries = audit_kinds(site, "restriction")
    assert [e["action"] for e in entries] == ["imposed", "lifted"]
    assert entries[0]["request_id"] == "r-1" and de not in json.dumps(entries)


async def test_the_analysts_events_view_leaves_out_a_restricted_or_suspended_subject(site):
    cookies = [await consent(site, ip) for ip in IPS]
    for ip, cookie in zip(IPS, cookies, strict=True):
        await visit(site, ip, "/a", cookie)
    de = site.veil.ledger.subjects.browser(cookies[0])
    store, keystore = site.veil.store, site.veil.keystore

    def in_view() -> tuple[int, int]:
        """(browsing_history rows in the analysts' view, connection rows there)."""
        return (
            scalar(site, "SELECT COUNT(*) FROM events WHERE purpose = 'browsing_history'"),
            scalar(site, "SELECT COUNT(*) FROM events WHERE purpose = 'connection'"),
        )

    assert in_view() == (2, 2)
    for kind in (limits.RESTRICTION, limits.SUSPENSION):
        assert await limits.impose(store, keystore, de, kind)
        assert in_view() == (1, 2)  # their cookieless twins carry no subject: unaffected
        assert scalar(site, "SELECT COUNT(*) FROM event_rows WHERE subject = ?", de) == 1
        assert await limits.lift(store, keystore, de, kind)
        assert in_view() == (2, 2)


async def test_a_store_opened_by_this_veil_gets_its_current_views(site, make_config, started):
    """An upgrade that changes a view rebuilds it at open, even with no table changed."""
    db = site.veil.store.db
    db.execute("DROP VIEW events")
    db.execute("CREATE VIEW events AS SELECT 1 AS id")
    await site.veil.stop()
    again = await started(Veil(site.veil.config))
    assert scalar(again, "SELECT COUNT(*) FROM events WHERE purpose = 'connection'") == 0
    names = [r[1] for r in again.store.db.execute("PRAGMA table_info(events)")]
    assert names[:4] == ["id", "ts", "day", "purpose"]


async def test_provide_and_decide_refuse_a_restricted_user_until_lifted(make_config, started):
    veil = await started(Veil(make_config(policy=GUARDED)))
    for user in ("ann", "ben"):
        await veil.grant(user, ["provision:CloudCo", "decision:credit_limit"])
    await veil.record("ann", "care", plan="p")
    assert await veil.restrict("ann")
    with pytest.raises(SubjectRestricted):
        await veil.provide("CloudCo", "care", [{"subject": "ben"}, {"subject": "ann"}])
    with pytest.raises(SubjectRestricted):
        await veil.decide("ann", "credit_limit", 1000)
    await veil.provide("CloudCo", "care", [{"subject": "ben"}])  # others are unaffected
    await veil.decide("ben", "credit_limit", 1000)
    await veil.record("ann", "care", plan="q")  # restriction: storage goes on
    assert scalar(veil, "SELECT COUNT(*) FROM records") == 2  # rows remain
    assert scalar(veil, "SELECT count FROM drops WHERE reason='restricted'") == 2
    assert await veil.lift_restriction("ann")
    await veil.provide("CloudCo", "care", [{"subject": "ann"}])
    await veil.decide("ann", "credit_limit", 1000)
    assert scalar(veil, "SELECT COUNT(*) FROM provisions") == 2


async def test_a_suspended_subject_s_requests_store_nothing(site):
    cookie = await consent(site, IPS[0])
    await visit(site, IPS[0], "/before", cookie)
    stored = scalar(site, "SELECT COUNT(*) FROM event_rows")
    subject = site.veil.ledger.subjects.browser(cookie)
    assert await limits.impose(site.veil.store, site.veil.keystore, subject, limits.SUSPENSION)
    for path in ("/during-1", "/during-2"):
        await visit(site, IPS[0], path, cookie)
    assert scalar(site, "SELECT COUNT(*) FROM event_rows") == stored  # nothing, any purpose
    assert scalar(site, "SELECT count FROM drops WHERE reason='suspended'") == 2
    await visit(site, IPS[1], "/someone-else")  # another visitor is stored as ever
    assert scalar(site, "SELECT COUNT(*) FROM event_rows") == stored + 1
    assert await limits.lift(site.veil.store, site.veil.keystore, subject, limits.SUSPENSION)
    await visit(site, IPS[0], "/after", cookie)
    assert rows(site, "SELECT path FROM events_browsing_history ORDER BY id") == [
        ("/before",),
        ("/after",),
    ]
    assert [e["action"] for e in audit_kinds(site, "suspension")] == ["imposed", "lifted"]


async def test_a_suspended_app_user_gets_nothing_recorded(make_config, started):
    veil = await started(Veil(make_config(policy=GUARDED)))
    assert await veil.suspend("cy")
    with pytest.raises(SubjectRestricted):
        await veil.record("cy", "care", plan="p")
    assert scalar(veil, "SELECT COUNT(*) FROM records") == 0
    assert await veil.resume("cy") and not await veil.resume("cy")
    await veil.record("cy", "care", plan="p")
    assert scalar(veil, "SELECT COUNT(*) FROM records") == 1


async def test_a_visitor_without_a_subject_objects_to_connection_by_cookie(site):
    async with site.client(IPS[0]) as c:
        r = await c.post("/veil/consent", json={"object": ["connection"]})
        assert r.status_code == 200
        assert r.json()["purposes"]["connection"]["collected"] is False
        assert "__Host-veil_optout=connection;" in r.headers["set-cookie"]
        assert "veil_sid" not in r.headers["set-cookie"]
        await c.get("/page")
        await site.veil.flush()
        assert scalar(site, "SELECT COUNT(*) FROM events_connection") == 0
        assert scalar(site, "SELECT count FROM drops WHERE reason='objected'") == 1
        assert rows(site, "SELECT COUNT(*) FROM consent_ledger") == [(0,)]  # not a consent
        r = await c.post("/veil/consent", json={"lift_objection": ["connection"]})
        assert r.json()["purposes"]["connection"]["collected"] is True
        assert "veil_sid" not in r.headers["set-cookie"]  # a grant of it issues no subject
        await c.get("/page")
    await site.veil.flush()
    assert scalar(site, "SELECT COUNT(*) FROM events_connection") == 1


async def test_a_subject_objects_to_connection_and_their_consented_purpose_goes_on(site):
    cookie = await consent(site, IPS[0])
    subject = site.veil.ledger.subjects.browser(cookie)
    async with site.client(IPS[0]) as c:
        c.cookies.set("__Host-veil_sid", cookie, domain="shop.example")
        r = await c.post("/veil/consent", json={"object": ["connection"]})
        assert r.status_code == 200
    await site.veil.flush()
    connection = scalar(site, "SELECT COUNT(*) FROM events_connection")
    # the limit is the subject's: it holds even from a browser that lost the opt-out cookie
    await visit(site, IPS[0], "/objected", cookie)
    assert scalar(site, "SELECT COUNT(*) FROM events_connection") == connection
    assert rows(site, "SELECT path FROM events_browsing_history WHERE subject=?", subject) == [
        ("/objected",)
    ]
    (entry,) = audit_kinds(site, "objection")
    assert entry["purpose"] == "connection" and entry["action"] == "imposed"
    assert subject not in json.dumps(entry)


async def test_an_app_user_objects_only_to_a_legitimate_interests_purpose(make_config, started):
    veil = await started(Veil(make_config(policy=GUARDED)))
    assert await veil.object("dee")
    with pytest.raises(Exception, match="legitimate interests"):
        await veil.object("dee", "browsing_history")
    assert await veil.lift_objection("dee")
    assert rows(veil, "SELECT COUNT(*) FROM subject_limits") == [(0,)]


@pytest.mark.parametrize(
    "body",
    [
        {"object": ["browsing_history"]},  # consent-based: withdraw instead
        {"object": ["nonsense"]},
        {"refuse": ["connection"]},  # an objection is said as one, not as a refusal
        {"grant": ["connection"]},
    ],
)
async def test_only_a_legitimate_interests_purpose_can_be_objected_to(site, body):
    async with site.client(IPS[0]) as c:
        r = await c.post("/veil/consent", json=body)
    assert r.status_code == 400 and "set-cookie" not in r.headers
    assert rows(site, "SELECT COUNT(*) FROM subject_limits") == [(0,)]

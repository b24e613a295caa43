"""Issue 8, items 4 and 5: typed records instead of tuples and side channels, and one error
vocabulary. These pin the shape (one definition each layout derives from), not timings."""

import dataclasses
import inspect
import time

import pytest

from veil import FieldError, Veil
from veil.capture import CaptureBuffer, Captured, VeilCookies
from veil.consent import ConsentRecord, check_scopes, fan_out
from veil.errors import (
    DecisionRefused,
    Drop,
    NotConsented,
    ProvisionRefused,
    Refused,
    SpecialCategoryRefused,
    UndeclaredDecision,
    UndeclaredRecipient,
    UnknownDecisionId,
    UnknownException,
    UnknownPurpose,
    UnknownScope,
)
from veil.geo import open_geoip
from veil.jurisdiction import regime_for
from veil.pipeline import ConsentView, Event, Pipeline, Processed, Withdrawal
from veil.proxy import ClientResolver
from veil.pseudonymise import Pseudonymiser
from veil.runtime import Running
from veil.store.columns import ROW_COLUMNS
from veil.store.keys import KeyStore

from conftest import CHROME

SUBJECT = "subject-pseudonym"
COOKIE = "signed-cookie-value"


def test_the_capture_buffer_queues_the_one_captured_record():
    buffer = CaptureBuffer(10, 10)
    scope = {
        "type": "http",
        "path": "/p",
        "client": ("198.51.100.7", 50123),
        "headers": [(b"user-agent", b"UA"), (b"host", b"shop.example")],
    }
    assert buffer.capture(scope, "connection")
    (item,) = buffer.take(1)
    assert isinstance(item, Captured)
    assert (item.purpose, item.peer, item.port, item.agent, item.host, item.request_path) == (
        "connection",
        "198.51.100.7",
        50123,
        b"UA",
        b"shop.example",
        "/p",
    )


def test_an_event_takes_every_captured_field_by_its_name(make_config):
    policy = make_config().policy
    values = {name: f"<{name}>" for name in Captured._fields}
    values |= {"purpose": "connection", "ts": 1.5, "beacon": {"screen_w": 1}}
    event = Event(Captured(**values), policy.purposes["connection"], "1.0")
    for name, value in values.items():
        assert getattr(event, name) == value, name
    assert event.source == "beacon"


def test_every_row_column_is_an_event_attribute():
    declared = set(Event.__annotations__) | set(vars(Event))
    assert not [c for c in ROW_COLUMNS if c not in declared]


def test_event_is_an_explicit_class_not_one_built_from_the_column_list():
    assert Event.__bases__ == (object,)


@pytest.fixture
def pipeline(make_config, geoip_db):
    cfg = make_config()
    ks = KeyStore.open(cfg.keys)
    yield Pipeline(
        cfg.policy,
        cfg.site,
        ClientResolver(cfg.trusted_proxies),
        Pseudonymiser(ks),
        open_geoip(geoip_db),
        False,
    )
    ks.close()


def _request(gpc: bytes | None) -> Captured:
    return Captured(
        "connection",
        time.time(),
        "198.51.100.7",
        50123,
        CHROME.encode(),
        b"de",
        gpc,
        None,
        b"",
        b"shop.example",
        None,
        "/page",
        VeilCookies(COOKIE, None),
    )


def _granted(explicit_gpc: bool = False) -> ConsentView:
    grant = ConsentRecord(
        time.time() - 60,
        SUBJECT,
        "browsing_history",
        "grant",
        "banner",
        True,
        explicit_gpc,
        "1.0",
        "strictest",
    )
    return ConsentView({COOKIE: SUBJECT}, {SUBJECT: [grant]})


def test_process_returns_the_gpc_withdrawals_with_rows_and_drops(pipeline):
    done = pipeline.process([_request(gpc=b"1")], _granted())
    assert isinstance(done, Processed)
    assert len(done.rows) == 1 and not done.drops  # GPC wins: connection only
    assert done.withdrawals == [Withdrawal(SUBJECT, "browsing_history", "gdpr")]
    assert not hasattr(pipeline, "withdrawals")  # no side channel for the writer to read

    again = pipeline.process([_request(gpc=None)], _granted())
    assert len(again.rows) == 2 and again.withdrawals == []  # a grant in force feeds both


def test_the_consent_fan_out_is_decided_in_consent(make_config):
    policy = make_config().policy
    consented = [p for p in policy.purposes.values() if p.needs_consent]
    records = _granted().histories[SUBJECT]
    eu = regime_for("DE", "BE")
    now = time.time()
    assert fan_out(policy, consented, [], now, eu, signal=False) == ((), ())
    kept, withdrawn = fan_out(policy, consented, records, now, eu, signal=False)
    assert [p.key for p in kept] == ["browsing_history"] and not withdrawn
    kept, withdrawn = fan_out(policy, consented, records, now, eu, signal=True)
    assert not kept and list(withdrawn) == ["browsing_history"]
    gpc_grant = _granted(explicit_gpc=True).histories[SUBJECT]  # given under GPC: it holds
    kept, withdrawn = fan_out(policy, consented, gpc_grant, now, eu, signal=True)
    assert [p.key for p in kept] == ["browsing_history"] and not withdrawn


def test_refusals_carry_reasons_from_the_one_drop_vocabulary():
    assert {
        Refused.reason,
        NotConsented.reason,
        SpecialCategoryRefused.reason,
        DecisionRefused.reason,
        ProvisionRefused.reason,
    } <= set(Drop)
    assert NotConsented.reason == "no_consent"  # the stored names stay as they were
    assert Drop.REFUSAL_UNRECORDED == "refusal_unrecorded"
    from veil import pipeline

    assert pipeline.Drop is Drop


CALLER_MISTAKES = (
    UnknownPurpose,
    UndeclaredDecision,
    UnknownDecisionId,
    UndeclaredRecipient,
    UnknownException,
    UnknownScope,
)


@pytest.mark.parametrize("error", CALLER_MISTAKES)
def test_each_caller_mistake_has_its_own_field_error(error):
    assert issubclass(error, FieldError)
    assert len(set(CALLER_MISTAKES)) == 6  # no two names for one class


def test_unknown_purpose_and_unknown_scope_are_raised_where_they_happen(make_config):
    policy = make_config().policy
    with pytest.raises(UnknownPurpose):
        policy.purpose("profiling")
    with pytest.raises(UnknownScope):
        check_scopes(policy, ["browsing_history", "marketing"])
    with pytest.raises(UnknownScope):
        check_scopes(policy, ["provision:nobody"])


async def test_the_guards_raise_their_own_errors(make_config):
    veil = Veil(make_config())
    await veil.start()
    try:
        with pytest.raises(UndeclaredDecision):
            await veil.decide("user-1", "credit_score", "approved")
        with pytest.raises(UnknownDecisionId):
            await veil.contest("0" * 32, "please review")
        with pytest.raises(UndeclaredRecipient):
            await veil.provide("nobody", "connection", [])
        with pytest.raises(UnknownPurpose):
            await veil.record("user-1", "profiling", x=1)
    finally:
        await veil.stop()


async def test_what_an_open_gives_is_one_frozen_running_state(make_config):
    veil = Veil(make_config())
    assert veil.running is None and veil.writer is None and veil.ledger is None
    await veil.start()
    try:
        running = veil.running
        assert isinstance(running, Running)
        assert (veil.writer, veil.store, veil.keystore, veil.ledger, veil.guards) == (
            running.writer,
            running.store,
            running.keystore,
            running.ledger,
            running.guards,
        )
        with pytest.raises(dataclasses.FrozenInstanceError):
            running.writer = None
    finally:
        await veil.stop()
    assert veil.stats().running is False and veil.writer is running.writer  # counters stay


def test_decide_and_provide_have_explicit_keyword_only_signatures():
    for method in (Veil.decide, Veil.provide):
        kinds = {p.kind for p in inspect.signature(method).parameters.values()}
        assert inspect.Parameter.VAR_KEYWORD not in kinds, method.__name__
        assert inspect.Parameter.KEYWORD_ONLY in kinds, method.__name__

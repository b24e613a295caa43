"""The guards through the Python API and HTTP: each refusal and each permitted path."""

from pathlib import Path

import httpx
import pytest
from policies import GUARDED
from starlette.applications import Starlette

from veil import (
    DecisionRefused,
    FieldError,
    NotConsented,
    ProvisionRefused,
    QueryError,
    SpecialCategoryRefused,
    StoreError,
    Veil,
    VeilMiddleware,
)
from veil.config import from_dict
from veil.query import run_query

from conftest import rows, scalar

SECRET_DIAGNOSIS = "rare-condition-7f3a9c"


@pytest.fixture
async def veil(make_config, started):
    return await started(Veil(make_config(policy=GUARDED)))


def disk_contains(data_dir: Path, needle: str) -> list[str]:
    return [
        p.name for p in data_dir.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()
    ]


def drops(v: Veil) -> dict[str, int]:
    return dict(rows(v, "SELECT reason, SUM(count) FROM drops GROUP BY reason"))


def count(v: Veil, table: str) -> int:
    return scalar(v, f"SELECT COUNT(*) FROM {table}")


async def test_special_category_is_refused_without_explicit_prior_consent(veil, data_dir):
    with pytest.raises(SpecialCategoryRefused, match="medical_history"):
        await veil.record("user-1", "care", diagnosis=SECRET_DIAGNOSIS, plan="basic")
    # consent to another purpose, or an implicit one, is not enough
    await veil.grant("user-1", ["special:medical_history:credit"])
    await veil.grant("user-1", ["special:medical_history:care"], explicit=False)
    with pytest.raises(SpecialCategoryRefused):
        await veil.record("user-1", "care", diagnosis=SECRET_DIAGNOSIS)
    assert count(veil, "records") == 0
    assert drops(veil) == {"special_category": 2}
    await veil.stop()
    assert disk_contains(data_dir, SECRET_DIAGNOSIS) == []  # nothing refused reached disk


async def test_special_category_with_explicit_prior_consent_is_kept_sealed(veil, data_dir):
    await veil.grant("user-2", ["special:medical_history:care"])
    await veil.record("user-2", "care", diagnosis=SECRET_DIAGNOSIS, plan="basic")
    await veil.record("user-3", "care", plan="premium")  # no special field: no consent needed
    assert count(veil, "records") == 2
    await veil.stop()
    assert disk_contains(data_dir, SECRET_DIAGNOSIS) == []  # sealed under the subject's key
    assert disk_contains(data_dir, "user-2") == []  # the app's id is never stored


async def test_consent_withdrawn_before_recording_refuses_again(veil):
    await veil.grant("user-4", ["special:medical_history:care"])
    await veil.withdraw("user-4", ["special:medical_history:care"])
    with pytest.raises(SpecialCategoryRefused):
        await veil.record("user-4", "care", diagnosis="x")


@pytest.mark.parametrize(
    ("purpose", "fields", "message"),
    [
        ("care", {"blood_type": "A"}, "not declared under"),
        ("care", {"user_agent": "x"}, "collected automatically"),
        ("care", {"income": 10.0}, "not allowed for purpose 'care'"),
        ("credit", {"income": "lots"}, "must be of type number"),
        ("marketing", {"plan": "x"}, "unknown purpose"),
    ],
)
async def test_undeclared_or_mistyped_fields_are_refused(veil, purpose, fields, message):
    with pytest.raises(FieldError, match=message):
        await veil.record("user-5", purpose, **fields)
    assert count(veil, "records") == 0


async def test_consent_based_purpose_needs_consent_for_records(make_config, started):
    policy = {
        **GUARDED,
        "purposes": {
            **GUARDED["purposes"],
            "care": {**GUARDED["purposes"]["care"], "legal_basis": "consent"},
        },
    }
    v = await started(Veil(make_config(policy=policy)))
    with pytest.raises(NotConsented):
        await v.record("user-6", "care", plan="basic")
    await v.grant("user-6", ["care"])
    await v.record("user-6", "care", plan="basic")


async def test_decision_with_legal_effect_needs_a_basis(veil):
    with pytest.raises(DecisionRefused, match="credit_limit"):
        await veil.decide("user-7", "credit_limit", 5000, inputs={"income": 1.0})
    by_contract = await veil.decide("user-7", "credit_limit", 5000, contract="loan-agreement-v3")
    await veil.grant("user-8", ["decision:credit_limit"])
    by_consent = await veil.decide("user-8", "credit_limit", 1000, model="m-3")
    await veil.withdraw("user-8", ["decision:credit_limit"])
    with pytest.raises(DecisionRefused):
        await veil.decide("user-8", "credit_limit", 1000)
    assert await veil.decide("user-9", "reminder_time", "09:00")  # no legal effect
    with pytest.raises(FieldError, match="undeclared decision"):
        await veil.decide("user-9", "firing", True)
    logged = dict(rows(veil, "SELECT id, basis FROM decisions"))
    assert logged[by_contract] == "contract" and logged[by_consent] == "explicit_consent"
    assert len(logged) == 3
    assert drops(veil) == {"decision_refused": 2}


async def test_a_decision_is_contestable_over_http(veil):
    decision = await veil.decide("user-10", "credit_limit", 0, contract="loan-agreement-v3")
    app = VeilMiddleware(Starlette(), veil=veil)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.5", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://shop.example") as c:
        ok = await c.post(
            "/veil/rights/human-review", json={"decision": decision, "reason": "my income is wrong"}
        )
        unknown = await c.post(
            "/veil/rights/human-review", json={"decision": "nope", "reason": "x"}
        )
        cross = await c.post(
            "/veil/rights/human-review",
            json={"decision": decision, "reason": "x"},
            headers={"Origin": "https://evil.example"},
        )
    assert ok.status_code == 202 and ok.json()["status"] == "requested"
    assert unknown.status_code == 404 and unknown.json()["field"] == "decision"
    assert cross.status_code == 403
    assert count(veil, "reviews") == 1


async def test_decision_purposes_are_closed_to_analyst_queries(veil):
    with pytest.raises(QueryError, match="automated decisions"):
        await run_query(veil.config, ["browser"], purpose="credit")


async def test_provision_needs_consent_or_an_explicit_exception(veil):
    records = [
        {"subject": "a", "plan": "basic", "country": "US"},
        {"subject": "b", "plan": "premium", "country": "US"},
    ]
    with pytest.raises(ProvisionRefused, match="2 of 2 subject"):
        await veil.provide("CloudCo", "care", records)
    await veil.grant("a", ["provision:CloudCo"])
    with pytest.raises(ProvisionRefused, match="1 of 2 subject"):
        await veil.provide("CloudCo", "care", records)
    await veil.grant("b", ["provision:CloudCo"])
    assert await veil.provide("CloudCo", "care", records)
    assert await veil.provide("CloudCo", "care", records, exception="law")
    with pytest.raises(ProvisionRefused, match="difficult to obtain"):
        await veil.provide("CloudCo", "care", records, exception="vital_interests")
    assert await veil.provide(
        "CloudCo", "care", records, exception="vital_interests", consent_obtainable=False
    )
    with pytest.raises(ProvisionRefused, match="not declared for purpose"):
        await veil.provide("CloudCo", "credit", [{"subject": "a", "income": 1.0}], exception="law")
    with pytest.raises(FieldError, match="undeclared recipient"):
        await veil.provide("Nobody", "care", records)
    register = rows(
        veil, "SELECT recipient, basis, subjects, categories FROM provisions ORDER BY id"
    )
    assert register == [
        ("CloudCo", "consent", 2, "user.contact"),
        ("CloudCo", "law", 2, "user.contact"),
        ("CloudCo", "vital_interests", 2, "user.contact"),
    ]


async def test_transfers_of_eu_data_need_adequacy_or_sccs(veil):
    eu = [{"subject": "c", "plan": "basic", "country": "DE"}]
    with pytest.raises(ProvisionRefused, match="standard contractual clauses"):
        await veil.provide("Partner", "care", eu, exception="law")
    await veil.provide("CloudCo", "care", eu, exception="law")
    assert rows(veil, "SELECT transfer FROM provisions") == [("EU→US under scc",)]


async def test_a_changed_policy_must_bump_its_version(make_config, data_dir, started):
    v = await started(Veil(make_config(policy=GUARDED)))
    await v.stop()
    changed = {
        **GUARDED,
        "purposes": {
            **GUARDED["purposes"],
            "credit": {**GUARDED["purposes"]["credit"], "retention": "30d"},
        },
    }
    from veil.store import SQLiteStore

    store = SQLiteStore(v.config.store.path)
    cfg = from_dict({"policy": changed}, base=data_dir)
    with pytest.raises(StoreError, match=r"bump policy\.version"):
        await store.open(cfg.policy)
    bumped = from_dict(
        {
            "policy": {
                **changed,
                "version": "g2",
                "changes": [
                    {
                        "version": "g2",
                        "effective": changed["effective"],
                        "summary": "Credit data kept 30 days.",
                    }
                ],
            }
        },
        base=data_dir,
    )
    await store.open(bumped.policy)
    await store.close()


async def test_the_api_needs_a_started_veil(make_config):
    from veil import VeilError

    with pytest.raises(VeilError, match="not running"):
        await Veil(make_config(policy=GUARDED)).grant("u", ["browsing_history"])


async def test_the_snippets_record_call_goes_through_the_same_guard(veil, data_dir):
    app = VeilMiddleware(Starlette(), veil=veil)
    transport = httpx.ASGITransport(app=app, client=("198.51.100.5", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="https://shop.example") as c:
        record = {"purpose": "care", "fields": {"diagnosis": SECRET_DIAGNOSIS}}
        no_cookie = await c.post("/veil/record", json=record)
        await c.post("/veil/consent", json={"grant": ["browsing_history"]})
        refused = await c.post("/veil/record", json=record)
        undeclared = await c.post(
            "/veil/record", json={"purpose": "care", "fields": {"ssn": "123"}}
        )
        await c.post("/veil/consent", json={"grant": ["special:medical_history:care"]})
        accepted = await c.post("/veil/record", json=record)
    assert no_cookie.status_code == 403 and no_cookie.json()["type"].endswith("no-subject")
    assert refused.status_code == 403
    assert refused.json()["type"] == "urn:veil:problem:special-category"
    assert undeclared.status_code == 400 and "not declared" in undeclared.json()["detail"]
    assert accepted.status_code == 202
    assert count(veil, "records") == 1
    await veil.stop()
    assert disk_contains(data_dir, SECRET_DIAGNOSIS) == []


def test_policy_check_warns_on_a_declared_special_category_field(tmp_path, capsys):
    from veil_collector.cli import main

    config = tmp_path / "veil.toml"
    config.write_text("""
[policy]
version = "w1"
effective = 2026-11-01
controller = { name = "C", contact = "c@example.com" }
dpo = { name = "D", contact = "d@example.com" }
[policy.fields.union]
type = "boolean"
category = "user.workplace"
special = "trade_union"
description = "Member of a trade union"
[policy.purposes.hr]
description = "HR"
data_use = "essential.service"
legal_basis = "contract"
retention = "30d"
fields = ["union"]
""")
    assert main(["policy", "check", str(config)]) == 0
    out = capsys.readouterr().out
    assert "warning: policy.fields.union: special category 'trade_union'" in out
    config.write_text(config.read_text().replace('"trade_union"', '"politics"'))
    assert main(["policy", "check", str(config)]) == 1
    assert "policy.fields.union.special: must be one of race, creed" in capsys.readouterr().err


async def test_gpc_withdraws_an_earlier_special_category_consent(veil):
    await veil.grant("p1", ["special:medical_history:care"])
    with pytest.raises(SpecialCategoryRefused):
        await veil.record("p1", "care", gpc=True, diagnosis="flu")
    await veil.record("p1", "care", diagnosis="flu")  # without the signal, it holds
    await veil.grant("p2", ["special:medical_history:care"], signal=True)  # given under GPC
    await veil.record("p2", "care", gpc=True, diagnosis="flu")
    assert count(veil, "records") == 2


async def test_a_grant_needs_a_subject_and_a_provision_needs_subjects(veil):
    for nobody in ("", None):
        with pytest.raises(FieldError):
            await veil.grant(nobody, ["special:medical_history:care"])
    assert count(veil, "consent_ledger") == 0
    assert len(await veil.refuse(None, ["special:medical_history:care"])) == 1  # anonymous
    with pytest.raises(FieldError, match="subject"):
        await veil.provide("CloudCo", "care", [{"plan": "basic"}])

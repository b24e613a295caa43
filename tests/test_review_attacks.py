"""Forgery attacks on the app-signed subject token (rights/identity.py), over real HTTP.

test_rights_attacks.py mangles a token's spelling and replays a foreign or expired one; these
keep an honest token's MAC and splice in what an outsider would want: another user's
pseudonym (to act for them) or a later expiry (to stretch a stolen token). Either must be
refused, with nothing done and no request stored.
"""

import pytest
from policies import GUARDED

from veil import Veil

from conftest import Site, rows

A_IP = "198.51.100.20"


@pytest.fixture
async def site(make_config, started_site) -> Site:
    return await started_site(Veil(make_config(policy=GUARDED, query={"min_group_size": 1})))


def _splice(token: str, *, subject: str | None = None, push: int = 0) -> str:
    version, pseudonym, expires, mac = token.split(".")
    return ".".join((version, subject or pseudonym, str(int(expires) + push), mac))


@pytest.mark.parametrize(
    "forge",
    [
        lambda t, bob: _splice(t, subject=bob),  # alice's MAC over bob's pseudonym
        lambda t, bob: _splice(t, push=3600),  # alice's MAC, an hour longer
        lambda t, bob: _splice(t, subject=bob, push=3600),
    ],
)
async def test_an_honest_tokens_mac_does_not_carry_over_to_a_spliced_payload(site, forge):
    veil = site.veil
    for user in ("alice", "bob"):
        await veil.grant(user, ["provision:CloudCo"])
    bob = veil.ledger.subjects.app("bob")
    token = veil.subject_token("alice", ttl=60)
    forged = forge(token, bob)
    assert forged != token
    async with site.client(A_IP) as c:
        r = await c.post(
            "/veil/rights/delete", json={}, headers={"Authorization": f"Bearer {forged}"}
        )
        assert r.status_code == 401 and r.json()["type"].endswith("token-invalid"), r.text
    assert rows(site, "SELECT kind FROM rights_requests") == []
    assert len(await veil.consents("bob")) == 1 and len(await veil.consents("alice")) == 1
    # the honest token still works: the refusal above is the splice's, not the setup's
    async with site.client(A_IP) as c:
        r = await c.post(
            "/veil/rights/delete", json={}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text
    assert await veil.consents("alice") == [] and len(await veil.consents("bob")) == 1

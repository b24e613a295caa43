import datetime as dt
import secrets

import pytest

from veil import KeyStoreError
from veil.pseudonymise import Pseudonymiser, network_of, unseal
from veil.store.keys import KeyStore, load_master_key

TODAY = dt.datetime.now(dt.UTC).date()


@pytest.fixture
def keystore(make_config):
    ks = KeyStore.open(make_config().keys)
    yield ks
    ks.close()


def test_day_keys_are_random_stable_and_distinct_per_kind(keystore):
    visitor = keystore.key_for("visitor", TODAY)
    assert visitor == keystore.key_for("visitor", TODAY)
    assert visitor[1] != keystore.key_for("seal", TODAY)[1]
    assert len(visitor[1]) == 32


def test_key_bytes_are_wrapped_at_rest(keystore):
    _, key = keystore.key_for("visitor", TODAY)
    assert key not in keystore.path.read_bytes()


def test_rotation_destroys_expired_keys_unrecoverably(make_config):
    cfg = make_config()
    ks = KeyStore.open(cfg.keys)
    ks.key_for("visitor", TODAY)
    yesterday = TODAY - dt.timedelta(days=1)
    old = ks.key_for("visitor", yesterday)
    # Two days on, yesterday's visitor key is past its life (today and yesterday are kept).
    destroyed = ks.rotate(now=dt.datetime.combine(TODAY + dt.timedelta(days=1), dt.time(1), dt.UTC))
    assert destroyed == [old[0]]
    assert ks.key_by_id(old[0]) is None
    info = {k.id: k for k in ks.list()}
    assert info[old[0]].destroyed_at is not None
    assert info[f"visitor-{TODAY}"].destroyed_at is None
    ks.close()
    # The wrapped bytes are gone from the file, not only marked.
    raw = cfg.keys.path.read_bytes()
    assert not (cfg.keys.path.parent / "keys.db-journal").exists()
    assert info[old[0]].id.encode() in raw  # metadata stays as evidence
    # a destroyed day's key is never re-created
    reopened = KeyStore.open(cfg.keys)
    assert reopened.key_for("visitor", yesterday) is None
    reopened.close()


def test_a_key_already_past_its_life_is_never_created(keystore):
    assert keystore.key_for("visitor", TODAY - dt.timedelta(days=5)) is None


def test_wrong_master_key_is_refused_clearly(make_config, monkeypatch):
    cfg = make_config()
    KeyStore.open(cfg.keys).close()
    monkeypatch.setenv("VEIL_MASTER_KEY", secrets.token_hex(32))
    with pytest.raises(KeyStoreError, match="master key does not match"):
        KeyStore.open(cfg.keys)


def test_malformed_master_key_is_refused(make_config, monkeypatch):
    monkeypatch.setenv("VEIL_MASTER_KEY", "short")
    with pytest.raises(KeyStoreError, match="VEIL_MASTER_KEY: the master key must be 32 bytes"):
        load_master_key(make_config().keys)


def test_development_key_is_made_once_with_a_warning(make_config, monkeypatch, caplog):
    monkeypatch.delenv("VEIL_MASTER_KEY")
    cfg = make_config()
    first = load_master_key(cfg.keys)
    assert load_master_key(cfg.keys) == first
    assert "development master key" in caplog.text
    assert (cfg.keys.path.parent / "master.key").stat().st_mode & 0o777 == 0o600


def test_master_key_file(make_config, tmp_path, monkeypatch):
    monkeypatch.delenv("VEIL_MASTER_KEY")
    secret = tmp_path / "master"
    secret.write_text(secrets.token_hex(32))
    cfg = make_config(keys={"master_key_file": str(secret)})
    assert load_master_key(cfg.keys) == bytes.fromhex(secret.read_text())


def test_visitor_pseudonym_is_keyed_daily_and_unlinkable_across_days(keystore):
    p = Pseudonymiser(keystore)
    yesterday = TODAY - dt.timedelta(days=1)
    a = p.visitor(TODAY, "site", "198.51.100.7", b"UA")
    assert a == p.visitor(TODAY, "site", "198.51.100.7", b"UA")
    assert len(a) == 32
    assert a != p.visitor(TODAY, "site", "198.51.100.8", b"UA")
    assert a != p.visitor(TODAY, "other", "198.51.100.7", b"UA")
    assert a != p.visitor(yesterday, "site", "198.51.100.7", b"UA")


def test_sealed_endpoint_is_readable_until_its_key_is_destroyed(keystore):
    p = Pseudonymiser(keystore)
    key_id, blob = p.seal(TODAY, "198.51.100.7", 50123)
    assert b"198.51.100.7" not in blob
    assert unseal(keystore, key_id, blob) == b"198.51.100.7 50123"
    keystore.destroy(key_id)
    assert unseal(keystore, key_id, blob) is None


@pytest.mark.parametrize(
    ("ip", "net"),
    [
        ("198.51.100.77", "198.51.100.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1::/48"),
    ],
)
def test_network_truncation(ip, net):
    import ipaddress

    assert network_of(ipaddress.ip_address(ip).packed) == net

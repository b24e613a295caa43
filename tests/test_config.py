import datetime as dt
import tomllib

import pytest

from veil import ConfigError
from veil.config import load
from veil.policy import DEFAULT_POLICY, parse_policy
from veil.starter import render_policy, starter_toml
from veil.tables import Table


def write(tmp_path, text: str):
    path = tmp_path / "veil.toml"
    path.write_text(text)
    return path


def problems_of(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load(write(tmp_path, text))
    return err.value.problems


def test_no_file_runs_on_built_in_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = load()
    assert cfg.source is None
    assert cfg.policy is DEFAULT_POLICY
    assert cfg.store.path == tmp_path / "veil-data" / "veil.db"


def test_runtime_only_file_uses_default_policy_and_resolves_paths_against_the_file(tmp_path):
    cfg = load(
        write(
            tmp_path,
            '[store]\nurl = "sqlite:///data/x.db"\n[proxy]\n'
            'trusted = ["10.0.0.0/8", "127.0.0.1"]\n',
        )
    )
    assert cfg.policy is DEFAULT_POLICY
    assert cfg.store.path == tmp_path / "data" / "x.db"
    assert [str(n) for n in cfg.trusted_proxies] == ["10.0.0.0/8", "127.0.0.1/32"]


def test_env_var_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("VEIL_CONFIG", str(write(tmp_path, "site = 'shop.example'\n")))
    assert load().site == "shop.example"


def test_every_problem_names_its_key(tmp_path):
    problems = problems_of(
        tmp_path,
        """
        [store]
        ulr = "sqlite:///x.db"
        [capture]
        queue_size = "big"
        batch_size = 0
        [proxy]
        trusted = ["not-an-ip"]
        [keys]
        seal_retention = "forever"
    """,
    )
    assert "store.ulr: unknown key (did you mean 'url'?)" in problems
    assert "capture.queue_size: must be an integer, got 'big'" in problems
    assert "capture.batch_size: must be greater than 0, got 0" in problems
    assert "proxy.trusted: 'not-an-ip' is not an IP address or CIDR network" in problems
    assert any(p.startswith("keys.seal_retention: must be a duration") for p in problems)


def test_broken_toml_and_missing_file_are_config_errors(tmp_path):
    assert problems_of(tmp_path, "[store\n")[0].startswith("not valid TOML")
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "absent.toml")


def test_postgres_url_is_refused_with_a_clear_message(tmp_path):
    (problem,) = problems_of(tmp_path, '[store]\nurl = "postgresql://localhost/veil"\n')
    assert problem.startswith("store.url: PostgreSQL stores are not available")


POLICY = """
[policy]
version = "2"
effective = 2026-12-01
controller = { name = "Example K.K.", contact = "privacy@example.com" }
dpo = { name = "DPO", contact = "dpo@example.com" }
[policy.purposes.connection]
description = "Run the connection"
data_use = "essential.service"
legal_basis = "legitimate_interests"
retention = "7d"
fields = ["ip_address", "user_agent"]
"""


def test_a_declared_policy_replaces_the_default(tmp_path):
    cfg = load(write(tmp_path, POLICY))
    assert cfg.policy.version == "2"
    p = cfg.policy.purpose("connection")
    assert p.fields == {"ip_address", "user_agent"}
    assert p.retention == dt.timedelta(days=7)
    assert not p.needs_consent
    assert cfg.warnings == ()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (
            ('fields = ["ip_address", "user_agent"]', 'fields = ["ip_address", "email"]'),
            "policy.purposes.connection.fields: unknown field(s) ['email']",
        ),
        (
            ('fields = ["ip_address", "user_agent"]', 'fields = ["path"]'),
            "policy.purposes.connection.fields: ['path'] may only be collected under a purpose "
            "that needs consent",
        ),
        (
            ("legitimate_interests", "because"),
            "policy.purposes.connection.legal_basis: must be one of",
        ),
        (
            ('retention = "7d"', 'retention = "a week"'),
            "policy.purposes.connection.retention: must",
        ),
        (
            ('legal_basis = "legitimate_interests"', 'legal_basis = "consent"\nconsent = false'),
            "policy.purposes.connection.consent: cannot be false when legal_basis is 'consent'",
        ),
        (("effective = 2026-12-01", 'effective = "soon"'), "policy.effective: must be a date"),
        (('dpo = { name = "DPO", contact = "dpo@example.com" }', ""), "policy.dpo: is required"),
    ],
)
def test_policy_errors_name_the_key(tmp_path, edit, expected):
    problems = problems_of(tmp_path, POLICY.replace(*edit))
    assert any(p.startswith(expected) for p in problems), problems


def test_recipients_must_name_declared_purposes_and_a_safeguard(tmp_path):
    problems = problems_of(
        tmp_path,
        POLICY
        + """
[[policy.recipients]]
name = "Cloud Inc."
country = "usa"
role = "processor"
purposes = ["marketing"]
safeguard = "trust us"
""",
    )
    country = "policy.recipients[0].country: must be an ISO 3166-1"
    assert any(p.startswith(country) for p in problems)
    assert "policy.recipients[0].purposes: names undeclared purpose(s) ['marketing']" in problems
    assert any(p.startswith("policy.recipients[0].safeguard: must be one of") for p in problems)


def test_rendered_default_policy_parses_back_to_itself():
    problems: list[str] = []
    data = tomllib.loads(render_policy(DEFAULT_POLICY))
    parsed = parse_policy(Table(data["policy"], "policy", problems))
    assert problems == []
    assert parsed == DEFAULT_POLICY


def test_starter_file_is_valid_and_runs_on_the_default_policy(tmp_path):
    cfg = load(write(tmp_path, starter_toml()))
    assert cfg.policy == DEFAULT_POLICY
    assert cfg.min_group_size == 5

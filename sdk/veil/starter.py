"""`veil init`: a commented starter `veil.toml`, its policy rendered from DEFAULT_POLICY so the
two can never drift apart."""

from .policy import DEFAULT_POLICY, Policy

RUNTIME = """\
# veil.toml — the one config file for veil: runtime keys and, optionally, the privacy policy.
# Relative paths resolve against this file's directory. Check it with: veil policy check

# site = "example.com"        # the site name stored with events; default: the Host header
#                             # (a collector: each beacon's Origin; leave site out there)

[store]
url = "sqlite:///./veil-data/veil.db"   # the embedded default; one writer, WAL

[keys]
path = "./veil-data/keys.db"  # keystore, apart from the events, wrapped by the master key
# master_key_file = "/run/secrets/veil-master-key"  # else $VEIL_MASTER_KEY; else a dev key
seal_ip = false               # keep IP and port AES-GCM-sealed under a short-lived key
seal_retention = "7d"         # the seal key (and so every sealed IP) is destroyed after this

[proxy]
trusted = []                  # IPs/CIDRs of your reverse proxies; X-Forwarded-For only from them

[geoip]
# path = "GeoLite2-City.mmdb" # MaxMind-format database for country and region

[capture]
queue_size = 10000            # events waiting for the writer; beyond it they are dropped, counted
batch_size = 1000
flush_interval = 0.25         # seconds: what a crash (kill -9) may lose; SIGTERM loses nothing
max_retries = 3               # store write retries before a batch is dropped (counted)
# What is a page view: a path matching exclude (default: static assets like /**/*.css,
# /favicon.ico, /robots.txt, health checks like /healthz, /.well-known/**) or a status in
# exclude_statuses is not captured, only counted. exclude = [] counts every path.
# exclude = ["/**/*.css", "/**/*.js", "/healthz"]
# include = ["/blog/**", "/"]  # only these paths (an exclude still wins); default: every path
exclude_statuses = [404]

[ingest]
rate = 20.0                   # beacons per second per client network (/24, /48) at POST /veil/e
burst = 200
# sites = ["example.com", "shop.example.com"]  # pages that may send beacons, by Origin;
#                             # any other origin gets 403 (counted). Default: any site.

[consent]
secure_cookie = true          # __Host- cookies; false only for plain-HTTP development
cookie_days = 180
rate = 1.0                    # consent/app records per second per client network
burst = 20
max_changes_per_day = 50      # grants one subject may make in 24 hours

[query]
min_group_size = 5            # groups with fewer distinct visitors are never shown

# Without a [policy] table veil runs the built-in policy below. To change it, uncomment it,
# edit it, and bump its version.
"""


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_policy(policy: Policy) -> str:
    out = [
        "[policy]",
        f"version = {_toml_str(policy.version)}",
        f"effective = {policy.effective.isoformat()}",
        '# controller.country: ISO code of the controller\'s country (e.g. "JP"); unset, no',
        "# recipient counts as domestic and every one needs a transfer safeguard",
        f"controller = {{ name = {_toml_str(policy.controller.name)}, "
        f"contact = {_toml_str(policy.controller.contact)}"
        + (
            f", country = {_toml_str(policy.controller.country)}"
            if policy.controller.country
            else ""
        )
        + " }",
        f"dpo = {{ name = {_toml_str(policy.dpo.name)}, "
        f"contact = {_toml_str(policy.dpo.contact)} }}",
    ]
    out += [
        "# A new version needs a [[policy.changes]] entry; veil refuses to start a version",
        "# before its effective date (UTC), so the previous one stays in force until then.",
        "# Consents lapse for a purpose whose fields, retention or recipients the new",
        "# version broadens; rows are kept no longer than their own version promised.",
    ]
    for c in policy.changes:
        out += [
            "",
            "[[policy.changes]]",
            f"version = {_toml_str(c.version)}",
            f"effective = {c.effective.isoformat()}",
            f"summary = {_toml_str(c.summary)}",
        ]
    for p in policy.purposes.values():
        days = p.retention.days if not p.retention.seconds else None
        retention = f"{days}d" if days else f"{int(p.retention.total_seconds() // 3600)}h"
        fields = ", ".join(_toml_str(f) for f in sorted(p.fields))
        out += [
            "",
            f"[policy.purposes.{p.key}]",
            f"description = {_toml_str(p.description)}",
            f"data_use = {_toml_str(p.data_use)}",
            f"legal_basis = {_toml_str(p.legal_basis)}",
            f"consent = {str(p.needs_consent).lower()}",
            f"retention = {_toml_str(retention)}",
            f"fields = [{fields}]",
        ]
    for f in policy.app_fields.values():
        out += [
            "",
            f"[policy.fields.{f.name}]",
            f"type = {_toml_str(f.type)}",
            f"category = {_toml_str(f.category)}",
            f"description = {_toml_str(f.description)}",
        ]
        if f.special:
            out.append(f"special = {_toml_str(f.special)}")
    for d in policy.decisions.values():
        bases = ", ".join(_toml_str(b) for b in d.bases)
        out += [
            "",
            f"[policy.decisions.{d.key}]",
            f"description = {_toml_str(d.description)}",
            f"legal_effect = {str(d.legal_effect).lower()}",
            f"bases = [{bases}]",
            f"purpose = {_toml_str(d.purpose)}",
        ]
        for key, names in (("contracts", d.contracts), ("laws", d.laws)):
            if names:
                out.append(f"{key} = [{', '.join(_toml_str(n) for n in names)}]")
    for r in policy.recipients:
        purposes = ", ".join(_toml_str(k) for k in r.purposes)
        out += [
            "",
            "[[policy.recipients]]",
            f"name = {_toml_str(r.name)}",
            f"country = {_toml_str(r.country)}",
            f"role = {_toml_str(r.role)}",
            f"purposes = [{purposes}]",
            f"safeguard = {_toml_str(r.safeguard)}",
        ]
        if r.dpf_certified:
            out.append("dpf_certified = true")
    out += [
        "",
        "# Paths that reveal special-category data are dropped or reduced to a template",
        "# before storage; `*` matches within a segment, `**` any number of segments:",
        "# [[policy.paths]]",
        '# pattern = "/clinic/**"',
        '# action = "template"          # or "drop"',
        '# template = "/clinic/:page"',
    ]
    for rule in policy.paths:
        out += [
            "",
            "[[policy.paths]]",
            f"pattern = {_toml_str(rule.pattern)}",
            f"action = {_toml_str(rule.action)}",
        ]
        if rule.template is not None:
            out.append(f"template = {_toml_str(rule.template)}")
    return "\n".join(out) + "\n"


def starter_toml() -> str:
    policy = render_policy(DEFAULT_POLICY)
    commented = "\n".join(f"# {line}" if line else "#" for line in policy.splitlines())
    return RUNTIME + "\n" + commented + "\n"

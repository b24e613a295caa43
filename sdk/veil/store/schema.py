"""The event store's schema, as ordered migrations (the index + 1 is SQLite's user_version).

Never edit a migration that has shipped: append a new one.
"""

MIGRATIONS: tuple[str, ...] = (
    # 1: purposes, the event log, the analyst view, drop counters.
    """
    CREATE TABLE purposes (
        key               TEXT PRIMARY KEY,
        legal_basis       TEXT NOT NULL,
        needs_consent     INTEGER NOT NULL,
        retention_seconds INTEGER NOT NULL,
        policy_version    TEXT NOT NULL
    );
    CREATE TABLE event_log (
        id              INTEGER PRIMARY KEY,
        ts              REAL NOT NULL,               -- UTC, seconds since the epoch
        purpose         TEXT NOT NULL REFERENCES purposes (key),
        policy_version  TEXT NOT NULL,
        source          TEXT NOT NULL CHECK (source IN ('request', 'beacon')),
        site            TEXT,
        visitor         TEXT,                        -- keyed hash, key rotated daily
        network         TEXT,                        -- /24 or /48 prefix
        country         TEXT,
        region          TEXT,
        os              TEXT,
        os_version      TEXT,
        browser         TEXT,
        browser_version TEXT,
        device          TEXT,
        device_brand    TEXT,
        device_model    TEXT,
        language        TEXT,
        languages       TEXT,
        gpc             INTEGER,
        dnt             INTEGER,
        screen_w        INTEGER,
        screen_h        INTEGER,
        pixel_ratio     REAL,
        path            TEXT,
        seal_key        TEXT,                        -- keystore id of the seal key
        sealed_endpoint BLOB                         -- nonce || AES-GCM("IP port")
    );
    CREATE INDEX event_log_purpose_ts ON event_log (purpose, ts);
    CREATE VIEW events AS
        SELECT id, strftime('%Y-%m-%dT%H:%M:%fZ', ts, 'unixepoch') AS ts,
               date(ts, 'unixepoch') AS day, purpose, policy_version, source, site, visitor,
               country, region, os, os_version, browser, browser_version, device,
               device_brand, device_model, language, languages, gpc, dnt, screen_w, screen_h,
               pixel_ratio, path
        FROM event_log;
    CREATE TABLE drops (
        day    TEXT NOT NULL,
        reason TEXT NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (day, reason)
    );
    """,
    # 2: event ids, so a batch retried over the network is stored once.
    """
    ALTER TABLE event_log ADD COLUMN event_id TEXT;
    CREATE UNIQUE INDEX event_log_event_id ON event_log (event_id);
    """,
    # 3: subjects, the consent ledger, app records, decisions, provisions, policy versions.
    """
    ALTER TABLE event_log ADD COLUMN subject TEXT;  -- only on rows of consent-based purposes
    CREATE INDEX event_log_subject ON event_log (subject) WHERE subject IS NOT NULL;
    CREATE TABLE consent_ledger (
        id             INTEGER PRIMARY KEY,
        ts             REAL NOT NULL,
        subject        TEXT,             -- NULL: a refusal by a visitor without a subject
        scope          TEXT NOT NULL,
        action         TEXT NOT NULL CHECK (action IN ('grant', 'refuse', 'withdraw')),
        method         TEXT NOT NULL CHECK (method IN ('banner', 'api', 'gpc')),
        explicit       INTEGER NOT NULL,
        gpc            INTEGER NOT NULL,
        policy_version TEXT NOT NULL,
        jurisdiction   TEXT NOT NULL
    );
    CREATE INDEX consent_ledger_subject ON consent_ledger (subject, scope, ts);
    CREATE TRIGGER consent_ledger_no_update BEFORE UPDATE ON consent_ledger
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
    CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
    CREATE TABLE records (
        id             INTEGER PRIMARY KEY,
        ts             REAL NOT NULL,
        purpose        TEXT NOT NULL REFERENCES purposes (key),
        policy_version TEXT NOT NULL,
        subject        TEXT NOT NULL,
        fields         TEXT NOT NULL,    -- the declared field names, comma-separated
        key_id         TEXT NOT NULL,    -- the subject's key in the keystore
        sealed         BLOB NOT NULL     -- nonce || AES-GCM(JSON of the values)
    );
    CREATE INDEX records_subject ON records (subject);
    CREATE TABLE decisions (
        id             TEXT PRIMARY KEY,
        ts             REAL NOT NULL,
        type           TEXT NOT NULL,
        purpose        TEXT NOT NULL REFERENCES purposes (key),
        policy_version TEXT NOT NULL,
        subject        TEXT NOT NULL,
        legal_effect   INTEGER NOT NULL,
        basis          TEXT NOT NULL,    -- explicit_consent, contract, law, none_needed
        evidence       TEXT,             -- contract or law reference the app gave
        key_id         TEXT NOT NULL,
        sealed         BLOB NOT NULL     -- AES-GCM(JSON of outcome, inputs, model)
    );
    CREATE INDEX decisions_subject ON decisions (subject);
    CREATE TABLE reviews (
        id          INTEGER PRIMARY KEY,
        ts          REAL NOT NULL,
        decision_id TEXT NOT NULL REFERENCES decisions (id),
        status      TEXT NOT NULL CHECK (status IN ('requested', 'upheld', 'overturned')),
        key_id      TEXT NOT NULL,
        sealed      BLOB NOT NULL        -- AES-GCM of the subject's reason
    );
    CREATE TABLE provisions (
        id           INTEGER PRIMARY KEY,
        ts           REAL NOT NULL,
        recipient    TEXT NOT NULL,
        country      TEXT NOT NULL,
        role         TEXT NOT NULL,
        purpose      TEXT NOT NULL,
        categories   TEXT NOT NULL,      -- data categories provided, comma-separated
        subjects     INTEGER NOT NULL,   -- how many data subjects
        records      INTEGER NOT NULL,
        basis        TEXT NOT NULL,      -- consent, law, vital_interests, public_health
        safeguard    TEXT NOT NULL,
        transfer     TEXT                -- e.g. 'EU→US under scc'; NULL when domestic
    );
    CREATE TABLE policy_versions (
        version    TEXT PRIMARY KEY,
        effective  TEXT NOT NULL,
        digest     TEXT NOT NULL,        -- SHA-256 of the policy as declared
        first_seen REAL NOT NULL
    );
    """,
    # Each policy version's terms per purpose: consents lapse when a later version broadens
    # them, and rows are kept no longer than the version they were collected under promised.
    # Versions registered before this table existed keep only their retention (from purposes).
    """
    CREATE TABLE policy_terms (
        version           TEXT NOT NULL,
        purpose           TEXT NOT NULL,
        fields            TEXT,          -- JSON array, sorted; NULL: not on record
        retention_seconds INTEGER NOT NULL,
        recipients        TEXT,          -- JSON array of recipient names; NULL: not on record
        PRIMARY KEY (version, purpose)
    );
    INSERT INTO policy_terms (version, purpose, fields, retention_seconds, recipients)
        SELECT policy_version, key, NULL, retention_seconds, NULL FROM purposes;
    """,
    # Batches whose drop counts are applied: a replayed or retried batch adds them once.
    """
    CREATE TABLE applied_batches (
        id      TEXT PRIMARY KEY,         -- the sender's batch id (wire.py)
        applied REAL NOT NULL             -- when; pruned after store.sqlite.BATCH_MEMORY
    );
    CREATE INDEX applied_batches_applied ON applied_batches (applied);
    """,
    # Unlinkable across days (pseudonymise.py): `network` now holds a daily network pseudonym.
    # The clear /24 and /48 prefixes stored before are erased (their day keys are gone or
    # elsewhere, so they cannot be pseudonymised now); rows that carry a subject lose the
    # visitor pseudonym, the exact time and the event id that paired them with their
    # cookieless twins; screens become their width class (no height), pixel ratios their class.
    """
    UPDATE event_log SET network = NULL WHERE network IS NOT NULL;
    UPDATE event_log SET visitor = NULL, ts = CAST(ts AS INTEGER),
                         event_id = lower(hex(randomblob(12)))
        WHERE subject IS NOT NULL;
    UPDATE event_log SET screen_h = NULL,
                         screen_w = CASE WHEN screen_w >= 2560 THEN 2560
                                         WHEN screen_w >= 1920 THEN 1920
                                         WHEN screen_w >= 1400 THEN 1400
                                         WHEN screen_w >= 1200 THEN 1200
                                         WHEN screen_w >= 992 THEN 992
                                         WHEN screen_w >= 768 THEN 768
                                         WHEN screen_w >= 576 THEN 576 ELSE 0 END
        WHERE screen_w IS NOT NULL OR screen_h IS NOT NULL;
    UPDATE event_log SET pixel_ratio = CASE WHEN pixel_ratio < 1.25 THEN 1.0
                                            WHEN pixel_ratio < 1.75 THEN 1.5
                                            WHEN pixel_ratio < 2.5 THEN 2.0 ELSE 3.0 END
        WHERE pixel_ratio IS NOT NULL;
    """,
    # Retention deletes app records in chunks by (purpose, ts), as it does events: without
    # this index each chunk would scan the whole table (store/offloop.py).
    """
    CREATE INDEX records_purpose_ts ON records (purpose, ts);
    """,
    # Narrow rows (layout.py): one table per purpose, made at open from the policy and listed
    # here, and each distinct agent stored once. The rows of event_log move into them at the
    # next open (layout.move_legacy), which drops it and rebuilds the views.
    """
    CREATE TABLE event_tables (
        purpose TEXT PRIMARY KEY REFERENCES purposes (key),
        name    TEXT NOT NULL UNIQUE,        -- events_<purpose>
        number  INTEGER NOT NULL UNIQUE      -- in every view id: row id * 1000 + number
            CHECK (number BETWEEN 1 AND 999)
    );
    CREATE TABLE agents (
        id              INTEGER PRIMARY KEY,
        key             TEXT NOT NULL UNIQUE,   -- json_array of the seven values, NULLs too
        os              TEXT,
        os_version      TEXT,
        browser         TEXT,
        browser_version TEXT,
        device          TEXT,
        device_brand    TEXT,
        device_model    TEXT,
        epoch           INTEGER NOT NULL DEFAULT 0  -- agent_epoch when a writer last looked it up
    );
    CREATE TABLE agent_epoch (epoch INTEGER NOT NULL);  -- one row; bumped by each agent prune
    INSERT INTO agent_epoch VALUES (0);
    """,
    # The consent ledger stays append-only, except for disposal (an erasure, retention): the
    # disposing transaction holds a row in ledger_disposal (disposal.py) while it deletes.
    """
    CREATE TABLE ledger_disposal (reason TEXT NOT NULL);
    DROP TRIGGER consent_ledger_no_delete;
    CREATE TRIGGER consent_ledger_no_delete BEFORE DELETE ON consent_ledger
        WHEN NOT EXISTS (SELECT 1 FROM ledger_disposal)
        BEGIN SELECT RAISE(ABORT, 'the consent ledger is append-only'); END;
    """,
    # The audit log (audit.py): append-only, hash-chained; each entry commits to the one
    # before it, so an edited, removed, inserted or reordered entry is found by `verify`.
    """
    CREATE TABLE audit_log (
        seq     INTEGER PRIMARY KEY,      -- 1, 2, 3, … without gaps
        ts      REAL NOT NULL,            -- UTC, seconds since the epoch
        kind    TEXT NOT NULL,
        details TEXT NOT NULL,            -- canonical JSON; never a pseudonym or raw identifier
        prev    TEXT NOT NULL,            -- the hash of entry seq - 1 (audit.GENESIS for seq 1)
        hash    TEXT NOT NULL             -- SHA-256 over prev and (seq, ts, kind, details)
    );
    CREATE INDEX audit_log_kind ON audit_log (kind, seq);
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    """,
    # Rights requests (rights/requests.py): one row per request a subject makes, named by the
    # audit's subject_ref, never the pseudonym, so a request outlives the erasure it asked for.
    """
    CREATE TABLE rights_requests (
        id           TEXT PRIMARY KEY,    -- the reference given to the subject, random
        kind         TEXT NOT NULL CHECK (kind IN ('access', 'export', 'correct', 'delete',
                         'restrict', 'lift_restriction', 'suspend', 'resume', 'object',
                         'complaint')),
        subject_ref  TEXT NOT NULL,       -- audit.subject_ref of the pseudonym
        channel      TEXT NOT NULL CHECK (channel IN ('cookie', 'token', 'dpo')),
        status       TEXT NOT NULL CHECK (status IN ('received', 'verified', 'done', 'refused')),
        jurisdiction TEXT NOT NULL,       -- the regime whose period set `due`
        received     REAL NOT NULL,
        due          REAL NOT NULL,
        closed       REAL,
        ground       TEXT CHECK (ground IN ('harm', 'business', 'law')),
        CHECK ((status = 'refused') = (ground IS NOT NULL)),
        CHECK ((status IN ('done', 'refused')) = (closed IS NOT NULL))
    );
    CREATE INDEX rights_requests_open ON rights_requests (due)
        WHERE status IN ('received', 'verified');
    """,
    # Whose data each provision carried (rights/export.py): the register counted subjects only,
    # so a subject could not be told who received their data. Old entries have no links.
    """
    CREATE TABLE provision_subjects (
        provision_id INTEGER NOT NULL REFERENCES provisions (id) ON DELETE CASCADE,
        subject      TEXT NOT NULL,
        PRIMARY KEY (subject, provision_id)
    ) WITHOUT ROWID;
    ALTER TABLE provisions ADD COLUMN policy_version TEXT;  -- NULL: entered before it was kept
    CREATE INDEX IF NOT EXISTS reviews_decision ON reviews (decision_id);  -- by subject
    """,
    # Per-subject keys by a random id (pseudonymise.seal_for_subject): the keystore no longer
    # names a key after the pseudonym, and an erased subject who returns gets a fresh key.
    # Subject limits (rights/limits.py): restriction (kept, used for nothing), suspension
    # (restriction, and nothing collected), objection to a legitimate-interests purpose.
    """
    CREATE TABLE subject_keys (
        subject TEXT PRIMARY KEY,         -- the pseudonym
        key_id  TEXT NOT NULL UNIQUE,     -- its key in the keystore: random, names no one
        created REAL NOT NULL
    );
    CREATE TABLE subject_limits (
        subject TEXT NOT NULL,
        kind    TEXT NOT NULL CHECK (kind IN ('restriction', 'suspension', 'objection')),
        purpose TEXT NOT NULL DEFAULT '', -- the purpose objected to; '' for the others
        since   REAL NOT NULL,
        PRIMARY KEY (subject, kind, purpose)
    ) WITHOUT ROWID;
    """,
    # -- issue 10 slot B (rights requests, subject limits, deletion proofs): the rights helpers
    # Retention for veil's own records (store/retention_all.py): reviews found by their
    # decision and key, decisions by age, the provision register by recipient and age; subject
    # keys released from their subject, waiting to be erased.
    """
    CREATE INDEX IF NOT EXISTS reviews_decision ON reviews (decision_id);
    CREATE INDEX IF NOT EXISTS reviews_key ON reviews (key_id);
    CREATE INDEX IF NOT EXISTS decisions_ts ON decisions (ts);
    CREATE INDEX IF NOT EXISTS provisions_recipient_ts ON provisions (recipient, ts);
    CREATE TABLE subject_keys_released (
        key_id   TEXT PRIMARY KEY,        -- a subject key nothing was sealed under: random id
        released REAL NOT NULL            -- when its mapping went; erased a day later if unused
    );
    """,
    # Analysts (analytics/analysts.py): who may read which purposes' aggregates, for which
    # uses. Only the SHA-256 of a bearer token is kept; a revoked analyst's row stays, so the
    # audit log's reads keep naming someone the store still knows.
    """
    CREATE TABLE analysts (
        name       TEXT PRIMARY KEY,
        token_hash BLOB NOT NULL UNIQUE CHECK (length(token_hash) = 32),
        purposes   TEXT NOT NULL,         -- JSON array of purpose keys granted
        uses       TEXT NOT NULL,         -- JSON array of the uses their reads may serve
        created    REAL NOT NULL,
        revoked    REAL
    );
    """,
    # Daily rollups (store/rollups.py): per purpose, dimension ('' the totals), UTC day and
    # value, a day cell's counts (no pseudonym); `rollup_days` says which are current, and
    # deleting a marker deletes its rollup's rows.
    """
    CREATE TABLE rollup_days (
        purpose TEXT NOT NULL,
        day     TEXT NOT NULL,            -- 'YYYY-MM-DD', UTC
        dim     TEXT NOT NULL,            -- a dimension; '' for the day's totals
        build   INTEGER,                  -- a builder's claim while it reads; NULL: current
        PRIMARY KEY (purpose, day, dim)
    ) WITHOUT ROWID;
    CREATE TABLE rollups (
        purpose  TEXT NOT NULL,
        dim      TEXT NOT NULL,
        day      TEXT NOT NULL,
        value    TEXT,                    -- the dimension's value as text; NULL: none
        events   INTEGER NOT NULL,
        visitors INTEGER NOT NULL,        -- distinct cookieless visitor pseudonyms that day
        networks INTEGER NOT NULL,        -- distinct cookieless network pseudonyms that day
        subjects INTEGER NOT NULL         -- distinct subjects that day
    );
    CREATE INDEX rollups_day ON rollups (purpose, dim, day);
    CREATE TRIGGER rollup_days_gone AFTER DELETE ON rollup_days BEGIN
        DELETE FROM rollups WHERE purpose = OLD.purpose AND dim = OLD.dim AND day = OLD.day;
    END;
    """,
    # The live days' accumulators (store/live_days.py) extend what they counted with the rows
    # inserted since, for as long as `n` stays put: the rollup triggers (rollups.py) bump it on
    # every delete or update of a purpose table's row and every restriction or suspension
    # change. `store` is random: a store made afresh at the same path is not the one counted.
    """
    CREATE TABLE live_generation (
        store INTEGER NOT NULL,
        n     INTEGER NOT NULL
    );
    INSERT INTO live_generation VALUES (abs(random()), 0);
    """,
    # Rollups of a pair of dimensions (store/rollups.py: `dim` 'browser|site', the site filter
    # of a dashboard serving several sites): the second dimension's value.
    """
    ALTER TABLE rollups ADD COLUMN value2 TEXT;  -- a pair's second value as text; else NULL
    """,
)

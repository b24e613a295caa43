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
)

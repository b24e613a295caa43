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
)

-- v0001: the outbox, dead letters and the hash-chained audit.
-- Forward only: never edit a migration that has shipped; add the next number instead.

-- Every accepted record, until the platform accepted it, it was dead-lettered, or a configured
-- capacity policy evicted it (which the audit records). AUTOINCREMENT: ids are never reused,
-- so an id names one record for the life of the file (audit id ranges, message ids).
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('property', 'message', 'child_property', 'measurement')),
    class       INTEGER NOT NULL CHECK (class IN (0, 1, 2)),  -- 0 critical, 1 normal, 2 bulk
    target      TEXT    NOT NULL,  -- the device, gateway or measurement source the request goes to
    child       TEXT,              -- child device of a gateway (child_property only)
    event_time  INTEGER NOT NULL,  -- time of measurement, ms since the Unix epoch, UTC
    enqueued_at INTEGER NOT NULL,  -- ms since the Unix epoch, UTC
    payload     BLOB    NOT NULL,  -- the record's JSON exactly as it goes into a request body
    bytes       INTEGER NOT NULL   -- length(payload)
);
-- Drain and eviction order: by class, oldest first.
CREATE INDEX outbox_by_class ON outbox (class, id);

-- Running totals per class, maintained in the same transaction as every insert and delete,
-- so capacity checks read one row instead of scanning the outbox.
CREATE TABLE outbox_totals (
    class   INTEGER PRIMARY KEY,
    records INTEGER NOT NULL,
    bytes   INTEGER NOT NULL
);
INSERT INTO outbox_totals (class, records, bytes) VALUES (0, 0, 0), (1, 0, 0), (2, 0, 0);

-- Records the platform refused for good, with the platform's reason. `edgebuf dead-letters
-- retry` moves them back into the outbox under their original id.
CREATE TABLE dead_letter (
    id            INTEGER PRIMARY KEY,  -- the record's outbox id
    kind          TEXT    NOT NULL,
    class         INTEGER NOT NULL,
    target        TEXT    NOT NULL,
    child         TEXT,
    event_time    INTEGER NOT NULL,
    enqueued_at   INTEGER NOT NULL,
    payload       BLOB    NOT NULL,
    bytes         INTEGER NOT NULL,
    failed_at     INTEGER NOT NULL,
    reason        TEXT    NOT NULL,
    http_status   INTEGER,
    error_code    TEXT,
    error_message TEXT
);

-- Append-only. hash = SHA-256(previous row's hash || seq || at || event || detail); the first
-- row chains from 32 zero bytes. `edgebuf audit verify` recomputes the chain.
CREATE TABLE audit (
    seq    INTEGER PRIMARY KEY,
    at     INTEGER NOT NULL,  -- ms since the Unix epoch, UTC
    event  TEXT    NOT NULL,
    detail TEXT    NOT NULL,  -- a JSON object
    hash   BLOB    NOT NULL
);
CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit is append-only'); END;

-- v0005: Cumulocity device control. The operation_status record kind, what the uplink knows of
-- each operation's final status, what `inbox exec --operations` ran, and recovered inbox rows.
-- Forward only: never edit a migration that has shipped; add the next number instead.

-- The outbox's CHECK names the record kinds, and SQLite cannot alter a CHECK: the table is
-- rebuilt with the new kind, its rows and its AUTOINCREMENT counter kept (ids are never
-- reused: dead letters and the audit name records by id).
CREATE TABLE outbox_v5 (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT    NOT NULL CHECK (kind IN ('property', 'message', 'child_property', 'measurement', 'operation_status')),
    class       INTEGER NOT NULL CHECK (class IN (0, 1, 2)),  -- 0 critical, 1 normal, 2 bulk
    target      TEXT    NOT NULL,  -- the device, gateway, measurement source or operation id
    child       TEXT,              -- child device of a gateway (child_property only)
    event_time  INTEGER NOT NULL,  -- time of measurement, ms since the Unix epoch, UTC
    enqueued_at INTEGER NOT NULL,  -- ms since the Unix epoch, UTC
    payload     BLOB    NOT NULL,  -- the record's JSON exactly as it goes into a request body
    bytes       INTEGER NOT NULL   -- length(payload)
);
INSERT INTO outbox_v5 (id, kind, class, target, child, event_time, enqueued_at, payload, bytes)
    SELECT id, kind, class, target, child, event_time, enqueued_at, payload, bytes FROM outbox;
DELETE FROM sqlite_sequence WHERE name = 'outbox_v5';
INSERT INTO sqlite_sequence (name, seq) SELECT 'outbox_v5', seq FROM sqlite_sequence WHERE name = 'outbox';
DROP TABLE outbox;
ALTER TABLE outbox_v5 RENAME TO outbox;
CREATE INDEX outbox_by_class ON outbox (class, id);
-- The ordering rule looks up the other statuses of one operation.
CREATE INDEX outbox_operations ON outbox (target, id) WHERE kind = 'operation_status';

-- The final status (SUCCESSFUL or FAILED) the platform accepted for an operation, written in
-- the transaction that deletes the delivered record: an EXECUTING never goes after it.
CREATE TABLE operation_final (
    operation_id TEXT    PRIMARY KEY,
    status       TEXT    NOT NULL CHECK (status IN ('SUCCESSFUL', 'FAILED')),
    record_id    INTEGER NOT NULL,  -- the outbox id of the delivered record
    delivered_at INTEGER NOT NULL   -- ms since the Unix epoch, UTC
);

-- Operations `inbox exec --operations` took on: one row per operation, whichever inbox row
-- (notification, UPDATE, recovered copy) brought it. `executing` from the commit that
-- enqueued EXECUTING until the one that enqueued the final status.
CREATE TABLE operation_runs (
    operation_id TEXT    PRIMARY KEY,
    consumer     TEXT    NOT NULL,
    inbox_id     INTEGER NOT NULL,
    state        TEXT    NOT NULL CHECK (state IN ('executing', 'final')),
    final_status TEXT CHECK (final_status IN ('SUCCESSFUL', 'FAILED')),
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    CHECK ((state = 'final') = (final_status IS NOT NULL))
);

-- 1 for a notification stored by the REST recovery after a gap marker (not received over
-- Bayeux).
ALTER TABLE inbox ADD COLUMN recovered INTEGER NOT NULL DEFAULT 0;

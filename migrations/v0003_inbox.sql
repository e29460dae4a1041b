-- v0003: the inbox. Every downstream notification the downlink received, committed before the
-- next long poll is sent, for replay by local consumers and for audit.
CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so cursors stay valid
    kind            TEXT    NOT NULL CHECK (kind IN ('notification', 'gap')),
    channel         TEXT,            -- the Bayeux channel; NULL for a gap marker
    dedupe_key      TEXT UNIQUE,     -- NULL for a gap marker (NULLs never collide)
    realtime_action TEXT,            -- CREATE, UPDATE, DELETE when the platform sent one
    data            TEXT    NOT NULL, -- the notification's data as received (JSON); for a gap: {"reason":...,"session":N}
    received_at     INTEGER NOT NULL, -- ms since the Unix epoch, UTC, local clock at commit
    CHECK ((kind = 'gap') = (channel IS NULL)),
    CHECK ((kind = 'gap') = (dedupe_key IS NULL))
);
CREATE INDEX inbox_received_at ON inbox (received_at);

-- Where each named consumer (`inbox follow`, `inbox exec`) stands: the id of the last
-- notification it has handled. Advanced only after the consumer got it.
CREATE TABLE inbox_consumers (
    name       TEXT    PRIMARY KEY,
    position   INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- The highest id retention has removed (one row): a consumer behind it is told what it missed.
CREATE TABLE inbox_retention (
    singleton      INTEGER PRIMARY KEY CHECK (singleton = 1),
    purged_through INTEGER NOT NULL
);
INSERT INTO inbox_retention (singleton, purged_through) VALUES (1, 0);

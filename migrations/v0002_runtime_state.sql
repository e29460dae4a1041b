-- v0002: what the running daemon is doing, for `edgebuf status` in another process.
-- One row per component ('uplink', later 'downlink'); state is a JSON object without secrets.
CREATE TABLE runtime_state (
    component  TEXT PRIMARY KEY,
    updated_at INTEGER NOT NULL,  -- ms since the Unix epoch, UTC
    state      TEXT    NOT NULL
);

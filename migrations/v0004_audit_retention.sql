-- v0004: the audit's retention. The oldest rows may be removed (by `[audit] max_rows` /
-- `max_age`), and only those: the anchor holds the seq and hash of the last removed row, the
-- first kept row chains from that hash, and the delete trigger refuses any row above it. Each
-- removal appends an `audit_purged` row naming the anchor, so the anchor itself is vouched for
-- by the chain. The anchor only moves forward.
CREATE TABLE audit_anchor (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,  -- the last removed row
    hash BLOB    NOT NULL   -- its hash
);
CREATE TRIGGER audit_anchor_moves_forward BEFORE UPDATE ON audit_anchor
WHEN NEW.seq <= OLD.seq
BEGIN SELECT RAISE(ABORT, 'the audit anchor only moves forward'); END;
CREATE TRIGGER audit_anchor_is_kept BEFORE DELETE ON audit_anchor
BEGIN SELECT RAISE(ABORT, 'the audit anchor is kept'); END;

DROP TRIGGER audit_is_append_only_delete;
CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit
WHEN OLD.seq > coalesce((SELECT seq FROM audit_anchor WHERE id = 1), 0)
BEGIN SELECT RAISE(ABORT, 'the audit is append-only: only rows up to the retention anchor may be removed'); END;

-- Step 2: sessions by state for /metrics, kept by triggers instead of a scan of
-- every live session per scrape (~100 ms at 1M sessions). Healthy and
-- unhealthy split the live enabled ones by `unhealthy_until`, counted
-- through `sessions_cooling` (only sessions with a cooldown set).
CREATE TABLE session_counts (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    live_enabled  INTEGER NOT NULL,
    live_disabled INTEGER NOT NULL
);
CREATE TRIGGER session_counts_insert AFTER INSERT ON sessions WHEN NEW.deleted_at IS NULL BEGIN
    UPDATE session_counts SET live_enabled = live_enabled + (NEW.enabled <> 0),
        live_disabled = live_disabled + (NEW.enabled = 0) WHERE id = 1;
END;
CREATE TRIGGER session_counts_delete AFTER DELETE ON sessions WHEN OLD.deleted_at IS NULL BEGIN
    UPDATE session_counts SET live_enabled = live_enabled - (OLD.enabled <> 0),
        live_disabled = live_disabled - (OLD.enabled = 0) WHERE id = 1;
END;
CREATE TRIGGER session_counts_update AFTER UPDATE OF enabled, deleted_at ON sessions
WHEN (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL) OR OLD.enabled <> NEW.enabled BEGIN
    UPDATE session_counts SET
        live_enabled = live_enabled - (OLD.deleted_at IS NULL AND OLD.enabled <> 0)
            + (NEW.deleted_at IS NULL AND NEW.enabled <> 0),
        live_disabled = live_disabled - (OLD.deleted_at IS NULL AND OLD.enabled = 0)
            + (NEW.deleted_at IS NULL AND NEW.enabled = 0)
    WHERE id = 1;
END;
CREATE INDEX sessions_cooling ON sessions(unhealthy_until)
    WHERE unhealthy_until IS NOT NULL AND deleted_at IS NULL AND enabled = 1;
-- The counters start from the sessions already there (none in a new
-- database, giving the row (1, 0, 0)).
INSERT INTO session_counts
    SELECT 1, coalesce(sum(enabled <> 0), 0), coalesce(sum(enabled = 0), 0)
    FROM sessions WHERE deleted_at IS NULL;

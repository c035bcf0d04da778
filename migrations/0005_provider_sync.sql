-- Provider sync (issue 11): the schedule and default pool of SyncProvider,
-- a per-provider vendor API base URL, and the last sync's result as JSON
-- (counts, times, error; never credentials).
ALTER TABLE providers ADD COLUMN sync_interval_seconds INTEGER NOT NULL DEFAULT 0;
ALTER TABLE providers ADD COLUMN sync_pool_id BLOB;
ALTER TABLE providers ADD COLUMN api_base_url TEXT;
ALTER TABLE providers ADD COLUMN last_sync TEXT;
-- Webshare's list mode for sync: NULL = direct, or 'backbone'.
ALTER TABLE providers ADD COLUMN sync_mode TEXT;
-- When a vendor's proxy expires (Proxyline's date_end), in ms: from then on
-- the session is not handed out, as if disabled, without waiting for a sync.
ALTER TABLE sessions ADD COLUMN expires_at INTEGER;

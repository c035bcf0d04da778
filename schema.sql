-- The whole proxyplane schema, for reading. Databases are built and upgraded
-- by the steps in migrations/ (src/store/migrate.rs); only tests execute this
-- file, and they check that it makes the same schema as those steps.
--
-- Ids are 16-byte UUIDv7 BLOBs (time-ordered, so `ORDER BY id` is creation
-- order and serves keyset pagination). Times are Unix milliseconds.
-- Secrets are only ever stored sealed (see src/crypto.rs).

CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value BLOB NOT NULL
) WITHOUT ROWID;

CREATE TABLE workspaces (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
) WITHOUT ROWID;

-- One data key per workspace and version, wrapped under the master key.
CREATE TABLE data_keys (
    workspace_id BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    key_version  INTEGER NOT NULL,
    wrapped      BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, key_version)
) WITHOUT ROWID;

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB REFERENCES workspaces(id) ON DELETE CASCADE, -- NULL: ADMIN key
    name         TEXT NOT NULL,
    role         INTEGER NOT NULL,
    prefix       TEXT NOT NULL,
    hash         BLOB NOT NULL UNIQUE, -- keyed BLAKE2b of the secret
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER,
    revoked_at   INTEGER
) WITHOUT ROWID;
CREATE INDEX api_keys_by_workspace ON api_keys(workspace_id, id);

CREATE TABLE providers (
    id                   BLOB PRIMARY KEY NOT NULL,
    workspace_id         BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    type                 INTEGER NOT NULL,
    name                 TEXT NOT NULL,
    gw_scheme            TEXT,
    gw_host              TEXT,
    gw_port              INTEGER,
    gw_username_template TEXT,
    gw_password_template TEXT,
    enabled              INTEGER NOT NULL,
    credentials          BLOB,      -- sealed JSON {apiKey, username, password}
    key_version          INTEGER NOT NULL,
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER    -- disconnected; credentials wiped
, sync_interval_seconds INTEGER NOT NULL DEFAULT 0, sync_pool_id BLOB, api_base_url TEXT, last_sync TEXT, sync_mode TEXT
) WITHOUT ROWID;
-- The last line of providers is 0005_provider_sync, spliced in as SQLite
-- adds columns; last_sync holds the last SyncResult as JSON.
CREATE UNIQUE INDEX providers_one_live_per_type ON providers(workspace_id, type) WHERE deleted_at IS NULL;
CREATE INDEX providers_by_workspace ON providers(workspace_id, id) WHERE deleted_at IS NULL;

CREATE TABLE pools (
    id                       BLOB PRIMARY KEY NOT NULL,
    workspace_id             BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    name                     TEXT NOT NULL,
    rotation_interval        INTEGER NOT NULL,
    rotate_on_unhealthy      INTEGER NOT NULL,
    max_accounts_per_session INTEGER NOT NULL,
    failure_threshold        INTEGER NOT NULL,
    cooldown_seconds         INTEGER NOT NULL,
    version                  INTEGER NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX pools_by_workspace ON pools(workspace_id, id);

CREATE TABLE sessions (
    id                   BLOB PRIMARY KEY NOT NULL,
    workspace_id         BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    pool_id              BLOB NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    provider_id          BLOB NOT NULL REFERENCES providers(id) ON DELETE CASCADE,
    token                TEXT NOT NULL,
    scheme               TEXT,      -- NULL for a rotation session
    host                 TEXT,
    port                 INTEGER,
    username             TEXT,
    password             BLOB,      -- sealed
    enabled              INTEGER NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    last_success_at      INTEGER,
    last_failure_at      INTEGER,
    unhealthy_until      INTEGER,
    assignment_count     INTEGER NOT NULL DEFAULT 0, -- kept by the triggers below
    version              INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    deleted_at           INTEGER    -- soft delete
, expires_at INTEGER
) WITHOUT ROWID;
-- expires_at (0005_provider_sync): the vendor's expiry in ms, spliced in as
-- SQLite adds columns; the session is not handed out from then on.
CREATE UNIQUE INDEX sessions_live_token ON sessions(pool_id, token) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_workspace ON sessions(workspace_id, id) WHERE deleted_at IS NULL;
CREATE INDEX sessions_live_by_pool ON sessions(pool_id, id) WHERE deleted_at IS NULL;
-- Session choice: the least-loaded enabled live sessions of a pool first.
CREATE INDEX sessions_choice ON sessions(pool_id, assignment_count) WHERE deleted_at IS NULL AND enabled = 1;

CREATE TABLE assignments (
    id           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB NOT NULL REFERENCES workspaces(id) ON DELETE CASCADE,
    pool_id      BLOB NOT NULL REFERENCES pools(id) ON DELETE CASCADE,
    session_id   BLOB NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    account_name TEXT NOT NULL,
    pinned       INTEGER NOT NULL,
    bound_at     INTEGER NOT NULL,
    rotations    INTEGER NOT NULL DEFAULT 0,
    version      INTEGER NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE UNIQUE INDEX assignments_account ON assignments(pool_id, account_name);
CREATE INDEX assignments_by_session ON assignments(session_id);
CREATE INDEX assignments_by_workspace ON assignments(workspace_id, id);

CREATE TRIGGER assignment_count_insert AFTER INSERT ON assignments BEGIN
    UPDATE sessions SET assignment_count = assignment_count + 1 WHERE id = NEW.session_id;
END;
CREATE TRIGGER assignment_count_delete AFTER DELETE ON assignments BEGIN
    UPDATE sessions SET assignment_count = assignment_count - 1 WHERE id = OLD.session_id;
END;
CREATE TRIGGER assignment_count_move AFTER UPDATE OF session_id ON assignments
WHEN OLD.session_id <> NEW.session_id BEGIN
    UPDATE sessions SET assignment_count = assignment_count - 1 WHERE id = OLD.session_id;
    UPDATE sessions SET assignment_count = assignment_count + 1 WHERE id = NEW.session_id;
END;

-- Sessions by state for /metrics, kept by triggers instead of a scan of
-- every live session per scrape (~100 ms at 1M sessions). Healthy and
-- unhealthy split the live enabled ones by `unhealthy_until`, counted
-- through `sessions_cooling` (only sessions with a cooldown set).
CREATE TABLE session_counts (
    id            INTEGER PRIMARY KEY CHECK (id = 1),
    live_enabled  INTEGER NOT NULL,
    live_disabled INTEGER NOT NULL
);
-- New sessions are counted once per call by the code that creates them
-- (store::sessions::count_created), not per row (migration 0004).
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
INSERT INTO session_counts VALUES (1, 0, 0);

-- An authentication epoch, bumped whenever a key is revoked or deleted (by
-- the API, the offline CLI, or a workspace delete's cascade): a server may
-- keep keys it found valid in memory, and confirms each with one read of
-- this row in the request's own transaction.
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
, data_epoch INTEGER NOT NULL DEFAULT 0
);
INSERT INTO auth_epoch VALUES (1, 0, 0);
CREATE TRIGGER auth_epoch_revoke AFTER UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER auth_epoch_delete AFTER DELETE ON api_keys BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

-- data_epoch (0006_data_epoch): bumped by every UPDATE and DELETE of the
-- tables a resolve reads, so a server may keep a sticky resolve's rows in
-- memory and use them only while it has not moved.
CREATE TRIGGER data_epoch_assignments_update AFTER UPDATE ON assignments BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_assignments_delete AFTER DELETE ON assignments BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_sessions_update AFTER UPDATE ON sessions BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_sessions_delete AFTER DELETE ON sessions BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_pools_update AFTER UPDATE ON pools BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_pools_delete AFTER DELETE ON pools BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_providers_update AFTER UPDATE ON providers BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER data_epoch_providers_delete AFTER DELETE ON providers BEGIN
    UPDATE auth_epoch SET data_epoch = data_epoch + 1 WHERE id = 1;
END;

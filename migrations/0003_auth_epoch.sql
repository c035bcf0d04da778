-- An authentication epoch, bumped whenever a key is revoked or deleted (by
-- the API, the offline CLI, or a workspace delete's cascade): a server may
-- keep keys it found valid in memory, and confirms each with one read of
-- this row in the request's own transaction.
CREATE TABLE auth_epoch (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    epoch INTEGER NOT NULL
);
INSERT INTO auth_epoch VALUES (1, 0);
CREATE TRIGGER auth_epoch_revoke AFTER UPDATE OF revoked_at ON api_keys
WHEN OLD.revoked_at IS NULL AND NEW.revoked_at IS NOT NULL BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;
CREATE TRIGGER auth_epoch_delete AFTER DELETE ON api_keys BEGIN
    UPDATE auth_epoch SET epoch = epoch + 1 WHERE id = 1;
END;

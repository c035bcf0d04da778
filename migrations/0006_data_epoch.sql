-- A data epoch beside the authentication epoch, bumped by every UPDATE and
-- DELETE of the four tables a resolve reads (assignments, sessions, pools,
-- providers), whoever writes: the API, the offline CLI, a sync, a key
-- rotation, a cascade. A server may keep the rows it read for a sticky
-- resolve in memory and use them only while this number, read in the
-- request's own snapshot, is the one they were read at. INSERTs need no
-- bump: a new row cannot change a row that was read (ids and
-- (pool, account) are unique), and an INSERT that changes one through a
-- trigger (assignment counts) fires that row's UPDATE trigger.
ALTER TABLE auth_epoch ADD COLUMN data_epoch INTEGER NOT NULL DEFAULT 0;
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

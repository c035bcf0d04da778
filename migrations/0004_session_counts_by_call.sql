-- New sessions are counted once per call (store::sessions::count_created)
-- instead of by a trigger per row: the trigger cut BulkCreateSessions from
-- ~92,000 to ~35,000 sessions/s. Updates and deletes keep their triggers.
DROP TRIGGER session_counts_insert;

-- A purge (session.deleted with purged: true, e.g. from DELETE /tenant) deletes a session's command
-- outcomes: without this index each purge scanned the whole of rm_commands. Created in the active
-- read-model schema (see 0003); a rebuild copies it (CREATE TABLE … LIKE … INCLUDING ALL).
DO $$
DECLARE active text;
BEGIN
    SELECT active_schema INTO active FROM projections WHERE name = 'main';
    EXECUTE format('CREATE INDEX IF NOT EXISTS rm_commands_session ON %I.rm_commands (session_id)', active);
END $$;

-- Read model of groups (session.groups.upsert / session.groups.participants), in the active
-- read-model schema with its view in public (see 0003). ``participants`` is the JSON list of
-- {id, admin}; ``left_at`` is set once this account left the group.
DO $$
DECLARE active text;
BEGIN
    SELECT active_schema INTO active FROM projections WHERE name = 'main';
    EXECUTE format($f$
        CREATE TABLE %I.rm_groups (
            session_id    uuid NOT NULL,
            jid           text NOT NULL,
            tenant_id     text NOT NULL,
            subject       text NOT NULL,
            owner         text,
            creation      bigint,
            description   text,
            announce      boolean NOT NULL DEFAULT false,
            restrict      boolean NOT NULL DEFAULT false,
            size          integer NOT NULL,
            participants  jsonb NOT NULL,
            left_at       bigint,
            updated_at    bigint NOT NULL,
            PRIMARY KEY (session_id, jid)
        )$f$, active);
    EXECUTE format('CREATE INDEX rm_groups_tenant ON %I.rm_groups (tenant_id, session_id)', active);
    EXECUTE format('CREATE VIEW public.rm_groups AS SELECT * FROM %I.rm_groups', active);
END $$;

-- Messages that are a location, contact card or poll keep it (``rich``), and a poll its running tally
-- (``poll_tally``: [{name, votes}], from session.polls.vote). The view is recreated to expose them.
DO $$
DECLARE active text;
BEGIN
    SELECT active_schema INTO active FROM projections WHERE name = 'main';
    EXECUTE format('ALTER TABLE %I.rm_messages ADD COLUMN rich jsonb, ADD COLUMN poll_tally jsonb', active);
    EXECUTE format('CREATE OR REPLACE VIEW public.rm_messages AS SELECT * FROM %I.rm_messages', active);
END $$;

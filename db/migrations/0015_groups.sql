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

-- Media: uploads the API accepted (POST /media, base64 sends), and each message's stored media.

-- Written by the command API only; a send names an upload by id and is checked against its tenant.
CREATE TABLE media_uploads (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    session_id  uuid,
    kind        text NOT NULL,
    mime        text NOT NULL,
    size        bigint NOT NULL,
    file_name   text NOT NULL,
    key         text NOT NULL UNIQUE,
    width       integer,
    height      integer,
    duration    integer,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX media_uploads_tenant ON media_uploads (tenant_id, created_at DESC);

-- Read model: the message's media (session.messages.media), in whichever schema is active,
-- then the view is recreated so it exposes the new column (see 0003).
DO $$
DECLARE active text;
BEGIN
    SELECT active_schema INTO active FROM projections WHERE name = 'main';
    EXECUTE format('ALTER TABLE %I.rm_messages ADD COLUMN media jsonb', active);
    EXECUTE format('CREATE OR REPLACE VIEW public.rm_messages AS SELECT * FROM %I.rm_messages', active);
END $$;

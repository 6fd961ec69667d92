-- Campaigns (seed 004): the address book, imports, suppressions and tenant settings are owned by the
-- command API; campaigns and campaign_recipients are the read model projected from the campaign event
-- topic by the campaign runner (rows + offsets in projector_offsets, projection 'campaigns').

CREATE TABLE campaign_tenant_settings (
    tenant_id        text PRIMARY KEY,
    default_country  integer NOT NULL DEFAULT 595,
    timezone         text NOT NULL DEFAULT 'America/Asuncion',
    optout_keywords  text[] NOT NULL DEFAULT '{}',
    updated_at       timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE address_book_contacts (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    phone       text NOT NULL,
    nombre      text,
    sustantivo  text,
    grupo       text,
    position    bigserial,                -- insertion order: campaigns send in the order of the file
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, phone)
);
CREATE INDEX address_book_contacts_group ON address_book_contacts (tenant_id, grupo, id);
CREATE INDEX address_book_contacts_list ON address_book_contacts (tenant_id, id);

CREATE TABLE address_book_imports (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    status       text NOT NULL,            -- running | done | failed
    rows_read    integer NOT NULL DEFAULT 0,
    imported     integer NOT NULL DEFAULT 0,
    rejected     integer NOT NULL DEFAULT 0,
    errors       jsonb NOT NULL DEFAULT '[]',  -- the first 1,000 bad rows: {line, reason}
    created_at   timestamptz NOT NULL DEFAULT now(),
    finished_at  timestamptz
);
CREATE INDEX address_book_imports_tenant ON address_book_imports (tenant_id, created_at DESC);

CREATE TABLE suppressions (
    tenant_id   text NOT NULL,
    phone       text NOT NULL,
    reason      text NOT NULL,
    source      text NOT NULL,             -- reply | manual
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, phone)
);

CREATE TABLE campaigns (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    name          text NOT NULL,
    status        text NOT NULL,
    message       jsonb NOT NULL,
    session_ids   text[] NOT NULL,
    pacing        jsonb NOT NULL,
    timezone      text NOT NULL,
    total         integer NOT NULL DEFAULT 0,
    pending       integer NOT NULL DEFAULT 0,
    sending       integer NOT NULL DEFAULT 0,
    sent          integer NOT NULL DEFAULT 0,
    delivered     integer NOT NULL DEFAULT 0,
    read          integer NOT NULL DEFAULT 0,
    failed        integer NOT NULL DEFAULT 0,
    skipped       integer NOT NULL DEFAULT 0,
    cancelled     integer NOT NULL DEFAULT 0,
    status_reason text,
    created_at    timestamptz NOT NULL,
    scheduled_at  timestamptz,
    started_at    timestamptz,
    finished_at   timestamptz,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX campaigns_tenant ON campaigns (tenant_id, created_at DESC, id);

CREATE TABLE campaign_recipients (
    campaign_id   uuid NOT NULL,
    recipient_id  text NOT NULL,
    seq           integer NOT NULL,
    tenant_id     text NOT NULL,
    phone         text NOT NULL,
    nombre        text,
    sustantivo    text,
    grupo         text,
    contact_id    text,
    session_id    text,
    status        text NOT NULL,
    code          text,
    reason        text,
    attempts      integer NOT NULL DEFAULT 0,
    message_id    text,
    sent_at       timestamptz,
    delivered_at  timestamptz,
    read_at       timestamptz,
    updated_at    timestamptz NOT NULL,
    PRIMARY KEY (campaign_id, recipient_id)
);
CREATE INDEX campaign_recipients_seq ON campaign_recipients (campaign_id, seq);
CREATE INDEX campaign_recipients_status ON campaign_recipients (campaign_id, status, seq);

-- Tenants and their API keys (the skeleton's credential; user auth comes later).
CREATE TABLE tenants (
    id          text PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    key_hash    bytea PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Read models, written only by the projector.
CREATE TABLE rm_sessions (
    id                   uuid PRIMARY KEY,
    tenant_id            text NOT NULL,
    name                 text,
    status               text NOT NULL,
    phone                text,
    qr                   text,
    qr_expires_at        text,
    connected_at         text,
    disconnected_at      text,
    disconnected_reason  text,
    created_at           text NOT NULL,
    updated_at           text NOT NULL,
    version              bigint NOT NULL
);
CREATE INDEX rm_sessions_tenant ON rm_sessions (tenant_id, created_at DESC);

CREATE TABLE rm_chats (
    session_id         uuid NOT NULL,
    jid                text NOT NULL,
    tenant_id          text NOT NULL,
    last_message_id    text,
    last_message_text  text,
    last_message_at    bigint NOT NULL DEFAULT 0,
    unread_count       integer NOT NULL DEFAULT 0,
    PRIMARY KEY (session_id, jid)
);
CREATE INDEX rm_chats_recent ON rm_chats (session_id, last_message_at DESC);

CREATE TABLE rm_messages (
    session_id     uuid NOT NULL,
    id             text NOT NULL,
    tenant_id      text NOT NULL,
    chat_jid       text NOT NULL,
    from_me        boolean NOT NULL,
    ts             bigint NOT NULL,
    type           text NOT NULL,
    text           text,
    participant    text,
    reply_to       text,
    status         text,
    status_rank    smallint NOT NULL DEFAULT -1,
    status_at      bigint,
    request_id     text,
    PRIMARY KEY (session_id, id)
);
-- Keyset pagination, newest first: (ts, id) is unique and stable as messages arrive.
CREATE INDEX rm_messages_chat ON rm_messages (session_id, chat_jid, ts DESC, id DESC);

CREATE TABLE rm_contacts (
    session_id  uuid NOT NULL,
    jid         text NOT NULL,
    tenant_id   text NOT NULL,
    name        text,
    notify      text,
    img_url     text,
    PRIMARY KEY (session_id, jid)
);

CREATE TABLE rm_commands (
    command_id    text PRIMARY KEY,
    tenant_id     text NOT NULL,
    session_id    uuid NOT NULL,
    command_type  text NOT NULL,
    status        text NOT NULL,
    code          text,
    reason        text,
    result        jsonb,
    finished_at   text NOT NULL
);

-- Where each projection has got to; written in the same transaction as its rows.
CREATE TABLE projector_offsets (
    projection  text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);

-- Written by the command API when it accepts POST /sessions, so later commands
-- can be checked for ownership without waiting for the projector.
CREATE TABLE session_registry (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants(id),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX session_registry_tenant ON session_registry (tenant_id, created_at DESC);

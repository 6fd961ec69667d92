-- Identity and access: users, refresh-token families, one-time codes, per-chat
-- permissions for agents, scoped API keys, the transactional outbox, rate limits.
ALTER TABLE tenants ADD COLUMN name text;

CREATE TABLE users (
    id                 uuid PRIMARY KEY,
    tenant_id          text NOT NULL REFERENCES tenants(id),
    email              text NOT NULL,
    name               text NOT NULL,
    password_hash      text NOT NULL,
    role               text NOT NULL CHECK (role IN ('owner', 'admin', 'agent')),
    email_verified_at  timestamptz,
    disabled_at        timestamptz,
    -- bumped by logout-all, password reset and disabling: older access tokens stop working
    token_version      integer NOT NULL DEFAULT 0,
    created_by         uuid REFERENCES users(id),
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (lower(email));
CREATE INDEX users_tenant ON users (tenant_id, created_at);

-- Refresh tokens rotate; each belongs to a family (one login). Presenting a
-- rotated token again revokes the whole family.
CREATE TABLE refresh_tokens (
    id          uuid PRIMARY KEY,
    family_id   uuid NOT NULL,
    user_id     uuid NOT NULL REFERENCES users(id),
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    revoked_at  timestamptz
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id) WHERE revoked_at IS NULL;

-- E-mail verification and password reset: one live code per (user, purpose), stored hashed.
CREATE TABLE one_time_codes (
    user_id     uuid NOT NULL REFERENCES users(id),
    purpose     text NOT NULL CHECK (purpose IN ('verify', 'reset')),
    code_hash   bytea NOT NULL,
    token_hash  bytea NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    expires_at  timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, purpose)
);

-- Which chats an agent may see and act on (any session of its tenant).
CREATE TABLE chat_assignments (
    tenant_id    text NOT NULL REFERENCES tenants(id),
    user_id      uuid NOT NULL REFERENCES users(id),
    chat_jid     text NOT NULL,
    assigned_by  uuid REFERENCES users(id),
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, chat_jid)
);

-- Commands issued by agents, so an agent reads only its own commands' outcomes.
CREATE TABLE command_issuers (
    command_id  text PRIMARY KEY,
    user_id     uuid NOT NULL REFERENCES users(id)
);

-- API keys: an id to manage them by, an optional session scope, who made them.
ALTER TABLE api_keys
    ADD COLUMN id           uuid NOT NULL DEFAULT gen_random_uuid(),
    ADD COLUMN session_ids  uuid[],
    ADD COLUMN created_by   uuid REFERENCES users(id),
    ADD COLUMN last4        text;
CREATE UNIQUE INDEX api_keys_id ON api_keys (id);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id, created_at);

-- Transactional outbox: written in the same transaction as the change it announces.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    event_id    uuid NOT NULL UNIQUE,
    event_type  text NOT NULL,
    tenant_id   text NOT NULL,
    payload     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_pending ON outbox (id) WHERE sent_at IS NULL;

-- Mail to send; the body is erased once the SMTP server accepted it.
CREATE TABLE mail_outbox (
    id          bigserial PRIMARY KEY,
    recipient   text NOT NULL,
    subject     text NOT NULL,
    body        text,
    attempts    integer NOT NULL DEFAULT 0,
    next_try_at timestamptz NOT NULL DEFAULT now(),
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    failed_at   timestamptz
);
CREATE INDEX mail_outbox_pending ON mail_outbox (next_try_at) WHERE sent_at IS NULL AND failed_at IS NULL;

-- Fixed-window counters for rate limits (per account, per IP), shared by every API instance.
CREATE TABLE rate_limits (
    bucket        text PRIMARY KEY,
    window_start  timestamptz NOT NULL,
    hits          integer NOT NULL
);

-- Sessions declared in the sessions file: name → session id, so boots are idempotent.
CREATE TABLE declared_sessions (
    tenant_id   text NOT NULL REFERENCES tenants(id),
    name        text NOT NULL,
    session_id  uuid NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

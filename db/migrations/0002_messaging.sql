-- Messaging parity: edits, deletes, forwards, reactions, unread tracking, idempotent POSTs.
ALTER TABLE rm_messages
    ADD COLUMN forwarded   boolean NOT NULL DEFAULT false,
    ADD COLUMN push_name   text,
    ADD COLUMN is_edited   boolean NOT NULL DEFAULT false,
    ADD COLUMN edited_at   bigint,
    ADD COLUMN is_deleted  boolean NOT NULL DEFAULT false,
    ADD COLUMN deleted_at  bigint,
    -- a live incoming message not read yet by this account
    ADD COLUMN unread      boolean NOT NULL DEFAULT false,
    -- order within a session: aggregate version of the recording event * 10000 + index in its batch
    ADD COLUMN seq         bigint NOT NULL DEFAULT 0;
-- Keyset pagination, newest first; seq breaks ties between messages of the same second.
DROP INDEX rm_messages_chat;
CREATE INDEX rm_messages_chat ON rm_messages (session_id, chat_jid, ts DESC, seq DESC);
CREATE INDEX rm_messages_unread ON rm_messages (session_id, chat_jid) WHERE unread;

CREATE TABLE rm_reactions (
    session_id  uuid NOT NULL,
    message_id  text NOT NULL,
    actor_jid   text NOT NULL,
    tenant_id   text NOT NULL,
    emoji       text NOT NULL,
    reacted_at  bigint NOT NULL,
    PRIMARY KEY (session_id, message_id, actor_jid)
);

-- Chat clears: messages older than this are gone for the chat.
ALTER TABLE rm_chats ADD COLUMN cleared_at bigint;

-- Idempotency-Key: the first answer to a (tenant, key) is the answer to every retry.
CREATE TABLE idempotency_keys (
    tenant_id    text NOT NULL,
    key          text NOT NULL,
    fingerprint  bytea NOT NULL,
    status_code  integer,
    body         jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, key)
);

-- Crypto-shredding: one AES-256 data key per data subject (a user today; contacts and tenants later).
-- Personal data written to kept-forever topics is encrypted with its subject's key; erasing the subject
-- deletes the row, and every copy in the log becomes unreadable. Nothing else may hold these keys.
CREATE TABLE pii_keys (
    subject_id  text PRIMARY KEY,
    tenant_id   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('user', 'contact', 'tenant')),
    data_key    bytea NOT NULL CHECK (length(data_key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pii_keys_tenant ON pii_keys (tenant_id);

-- Which subjects were erased, when and by whom (no personal data): readers tell "erased" from "never had a key".
CREATE TABLE pii_erasures (
    subject_id  text PRIMARY KEY,
    tenant_id   text NOT NULL,
    kind        text NOT NULL,
    erased_by   text,
    erased_at   timestamptz NOT NULL DEFAULT now()
);

-- Tenant deletion's second half: what the DELETE /tenant transaction cannot remove itself. Its stored media
-- files (S3 is not in the transaction) and the rows other services write for the tenant (campaigns and
-- their recipients, analytics buckets, projector dead letters, webhook deliveries) are purged after the
-- commit and again by the command API's sweep until the purge has run once after ``settle_at`` (events of
-- the tenant already in flight when it was deleted may re-create rows until then). A purge that fails
-- (S3 down) stays here, not done, and the sweep retries it; every step is idempotent.
CREATE TABLE tenant_purges (
    tenant_id     text PRIMARY KEY,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    settle_at     timestamptz NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text,
    last_run_at   timestamptz,
    done_at       timestamptz
);
CREATE INDEX tenant_purges_pending ON tenant_purges (requested_at) WHERE done_at IS NULL;

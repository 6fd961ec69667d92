-- Campaign analytics (seed 004's dashboards), written by services/analytics (faust-streaming):
-- tumbling hour and day windows of recipient outcomes, for the whole tenant, per group and per contact.
-- Each row holds the window's absolute counts (not increments), so replaying the topics rewrites the
-- same numbers. Faust keeps a table shard per source partition (the campaign event topic's), so each row
-- is one partition's count (``source_partition``) and the API sums them. ``bucket`` is the window's start (UTC); day windows are UTC days, the API regroups hour
-- windows into the tenant's local days and months.
CREATE TABLE analytics_buckets (
    tenant_id  text NOT NULL,
    grain      text NOT NULL,          -- hour | day
    bucket     timestamptz NOT NULL,
    dim        text NOT NULL,          -- all | group | contact
    key        text NOT NULL,          -- '' for all; the group (or '' for none); the phone
    source_partition integer NOT NULL,
    sent       integer NOT NULL DEFAULT 0,
    delivered  integer NOT NULL DEFAULT 0,
    read       integer NOT NULL DEFAULT 0,
    failed     integer NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, grain, dim, bucket, key, source_partition)
);
CREATE INDEX analytics_buckets_key ON analytics_buckets (tenant_id, grain, dim, key);

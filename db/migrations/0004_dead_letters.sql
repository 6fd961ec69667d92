-- Events the projector could not apply after bounded retries. Written in the
-- same transaction that moves the projection's offset past them, so the
-- partition moves on and nothing is lost. Re-driven on request.
CREATE TABLE projector_dead_letters (
    id                     bigserial PRIMARY KEY,
    projection             text NOT NULL,
    topic                  text NOT NULL,
    partition              integer NOT NULL,
    "offset"               bigint NOT NULL,
    event_type             text,
    session_id             text,
    tenant_id              text,
    value                  bytea NOT NULL,
    headers                jsonb NOT NULL,
    reason                 text NOT NULL,
    failed_at              timestamptz NOT NULL DEFAULT now(),
    redrive_requested_at   timestamptz,
    redriven_at            timestamptz,
    UNIQUE (projection, topic, partition, "offset")
);

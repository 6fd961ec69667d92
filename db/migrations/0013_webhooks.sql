-- Webhooks: each tenant's endpoints, one delivery row per (endpoint, event), the attempt log and the
-- webhooks consumer's offsets. Enqueuing deliveries and moving the offset happen in one transaction,
-- so a crash never loses or doubles an enqueue; a delivery is retried until it succeeds or is dead.

CREATE TABLE webhook_endpoints (
    id                    uuid PRIMARY KEY,
    tenant_id             text NOT NULL,
    url                   text NOT NULL,
    description           text,
    -- Empty: every event type. Entries are exact types or prefixes ending in '.*' (session.messages.*).
    event_types           text[] NOT NULL DEFAULT '{}',
    -- Empty: every session of the tenant.
    session_ids           text[] NOT NULL DEFAULT '{}',
    status                text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused', 'disabled')),
    -- Standard Webhooks secrets ("whsec_" + base64). During a rotation both sign until the old expires.
    secret                text NOT NULL,
    previous_secret       text,
    previous_expires_at   timestamptz,
    -- Dead letters in a row; reaching the service's limit disables the endpoint.
    consecutive_dead      int NOT NULL DEFAULT 0,
    disabled_reason       text,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id);

CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    session_id       text NOT NULL,
    -- The exact bytes that are signed and sent (the event's client envelope as JSON).
    body             bytea NOT NULL,
    traceparent      text,
    -- pending: to send (again); delivered: the endpoint answered 2xx; dead: gave up (the dead-letter list).
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code int,
    last_error       text,
    last_attempt_at  timestamptz,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    UNIQUE (endpoint_id, event_id)
);
-- The head of a queue (its oldest pending delivery) is found through this index.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (endpoint_id, session_id, id) WHERE status = 'pending';

-- One queue per (endpoint, session): deliveries of a queue go out one at a time, in order. next_attempt_at
-- is when its head may be tried ('infinity' when empty), so a dispatch round reads only due queues and
-- never scans a failing endpoint's backlog. Rows are locked before they change, and the head is read
-- after the lock, so an enqueue and an outcome can never leave pending deliveries behind an empty queue.
CREATE TABLE webhook_queues (
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    session_id       text NOT NULL,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (endpoint_id, session_id)
);
CREATE INDEX webhook_queues_due ON webhook_queues (next_attempt_at);
CREATE INDEX webhook_deliveries_dead ON webhook_deliveries (endpoint_id, id) WHERE status = 'dead';

-- The dead-letter list: deliveries that exhausted their attempts (re-driven by setting them pending again).
CREATE VIEW webhook_dead_letters AS
    SELECT id, endpoint_id, tenant_id, event_id, event_type, session_id, attempts, last_status_code,
           last_error, last_attempt_at, dead_at
    FROM webhook_deliveries WHERE status = 'dead';

-- Every attempt: the per-endpoint delivery log shown by the API.
CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  bigint NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    endpoint_id  uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    attempt      int NOT NULL,
    status_code  int,
    error        text,
    latency_ms   int NOT NULL,
    attempted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, id DESC);

-- "Replay from time T": the webhooks service re-reads the event topic from T for the endpoint.
CREATE TABLE webhook_replays (
    id            bigserial PRIMARY KEY,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints(id) ON DELETE CASCADE,
    from_time     timestamptz NOT NULL,
    requested_at  timestamptz NOT NULL DEFAULT now(),
    done_at       timestamptz,
    enqueued      int
);
CREATE INDEX webhook_replays_todo ON webhook_replays (id) WHERE done_at IS NULL;

CREATE TABLE webhook_offsets (
    topic        text NOT NULL,
    partition    int NOT NULL,
    next_offset  bigint NOT NULL,
    PRIMARY KEY (topic, partition)
);

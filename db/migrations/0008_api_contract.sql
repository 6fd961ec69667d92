-- The HTTP API as a contract (issue 14).

-- A DELETE is final for the API at once: the session answers 404 from the moment the
-- delete is accepted, before the projector has seen the event (so no QR is ever shown again).
ALTER TABLE session_registry ADD COLUMN deleted_at timestamptz;

-- Rate limits are per plan; every tenant starts on the default plan.
ALTER TABLE tenants ADD COLUMN plan text NOT NULL DEFAULT 'default';

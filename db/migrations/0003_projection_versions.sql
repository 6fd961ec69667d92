-- Versioned read models: each projection version lives in its own schema and
-- the API reads stable views in public. A rebuild fills a new schema while the
-- old one serves, then one transaction repoints the views (zero downtime).
-- Migrations that change read-model tables must alter the active schema and
-- recreate the views (see projector/replay.py: clone_schema, point_views).
CREATE SCHEMA rm_v1;
ALTER TABLE rm_sessions SET SCHEMA rm_v1;
ALTER TABLE rm_chats SET SCHEMA rm_v1;
ALTER TABLE rm_messages SET SCHEMA rm_v1;
ALTER TABLE rm_contacts SET SCHEMA rm_v1;
ALTER TABLE rm_commands SET SCHEMA rm_v1;
ALTER TABLE rm_reactions SET SCHEMA rm_v1;

CREATE VIEW rm_sessions AS SELECT * FROM rm_v1.rm_sessions;
CREATE VIEW rm_chats AS SELECT * FROM rm_v1.rm_chats;
CREATE VIEW rm_messages AS SELECT * FROM rm_v1.rm_messages;
CREATE VIEW rm_contacts AS SELECT * FROM rm_v1.rm_contacts;
CREATE VIEW rm_commands AS SELECT * FROM rm_v1.rm_commands;
CREATE VIEW rm_reactions AS SELECT * FROM rm_v1.rm_reactions;

-- Which schema a projection writes to. The live projector reads this row
-- FOR SHARE in every batch, so a swap (FOR UPDATE) waits for in-flight batches.
CREATE TABLE projections (
    name           text PRIMARY KEY,
    active_schema  text NOT NULL,
    swapped_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projections (name, active_schema) VALUES ('main', 'rm_v1');

-- Domain events (PostgreSQL). Keep in step with ../sqlite/0003_events.sql.
-- A sequence-numbered log that later features (deployments, alerts) read in id order:
-- `kind` is dotted (`group.member_added`), `subject` the device, `object` the group, `data`
-- JSON text with kind-specific details.
CREATE TABLE events (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    object  TEXT,
    data    TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX events_kind ON events(kind, id);
CREATE INDEX group_members_source ON group_members(device_id, source);

-- Foundation schema (PostgreSQL). Times are Unix milliseconds (BIGINT); ids are UUID text;
-- JSON documents are TEXT. Keep in step with ../sqlite/0001_foundation.sql.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role          TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    disabled      BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions(user_id);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX api_tokens_user ON api_tokens(user_id);

CREATE TABLE enrollment_tokens (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    expires_at   BIGINT NOT NULL,
    max_uses     BIGINT,
    uses         BIGINT NOT NULL DEFAULT 0,
    default_tags TEXT NOT NULL DEFAULT '[]',
    revoked_at   BIGINT
);

CREATE TABLE devices (
    id                     TEXT PRIMARY KEY,
    secret_hash            TEXT NOT NULL,
    identity_key           TEXT NOT NULL,
    identity_source        TEXT NOT NULL,
    hostname               TEXT NOT NULL,
    os_family              TEXT NOT NULL,
    os_name                TEXT,
    os_version             TEXT,
    agent_version          TEXT,
    boot_id                TEXT,
    tags                   TEXT NOT NULL DEFAULT '[]',
    enrollment_token_id    TEXT,
    enrolled_at            BIGINT NOT NULL,
    last_seen_at           BIGINT,
    revoked_at             BIGINT,
    refresh_requested_at   BIGINT,
    performance            TEXT
);
-- One live device per identity: re-enrolling the same machine reuses its row.
CREATE UNIQUE INDEX devices_identity ON devices(identity_key);
CREATE INDEX devices_hostname ON devices(LOWER(hostname), id);
CREATE INDEX devices_last_seen ON devices(last_seen_at);

CREATE TABLE device_inventory (
    device_id  TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    digest     TEXT NOT NULL,
    document   TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE device_timeline (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    category   TEXT,
    field      TEXT,
    change     TEXT,
    old_value  TEXT,
    new_value  TEXT,
    summary    TEXT NOT NULL
);
CREATE INDEX device_timeline_device ON device_timeline(device_id, id);

CREATE TABLE audit_log (
    id      BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      BIGINT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    target  TEXT,
    details TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_log_at ON audit_log(at);

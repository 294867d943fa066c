-- Depot sources (postgres): more places agents download artifacts from (an HTTP mirror, a file
-- share), scoped to groups, ordered by priority, and what has been copied to each.
-- Keep in step with ../sqlite/0007_depot_sources.sql.
CREATE TABLE depot_sources (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    kind       TEXT NOT NULL,
    location   TEXT NOT NULL,
    sync_path  TEXT,
    priority   BIGINT NOT NULL,
    exclusive  BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- A source with rows here serves only devices in these groups (and their descendants);
-- without rows it serves every device.
CREATE TABLE depot_source_groups (
    source_id TEXT NOT NULL REFERENCES depot_sources (id) ON DELETE CASCADE,
    group_id  TEXT NOT NULL REFERENCES device_groups (id) ON DELETE CASCADE,
    PRIMARY KEY (source_id, group_id)
);
CREATE INDEX depot_source_groups_group ON depot_source_groups (group_id);

-- What was copied to a source: pending, synced or failed (with the reason), or missing when
-- a check found it gone.
CREATE TABLE depot_source_blobs (
    source_id  TEXT NOT NULL REFERENCES depot_sources (id) ON DELETE CASCADE,
    sha256     TEXT NOT NULL,
    state      TEXT NOT NULL,
    error      TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (source_id, sha256)
);

-- The software depot's blob records (PostgreSQL). Keep in step with ../sqlite/0005_depot.sql.
-- The bytes live in the blob store (files under the data dir); a row says a blob is part of
-- the depot. Garbage collection removes stored files that no row names.
CREATE TABLE depot_blobs (
    sha256     TEXT PRIMARY KEY,
    size       BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX depot_blobs_created ON depot_blobs (created_at DESC, sha256);

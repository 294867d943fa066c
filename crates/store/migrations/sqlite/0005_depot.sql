-- The software depot's blob records (SQLite). Keep in step with ../postgres/0005_depot.sql.
-- The bytes live in the blob store (files under the data dir); a row says a blob is part of
-- the depot. Garbage collection removes stored files that no row names.
CREATE TABLE depot_blobs (
    sha256     TEXT PRIMARY KEY,
    size       INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL
);
CREATE INDEX depot_blobs_created ON depot_blobs (created_at DESC, sha256);

-- Software packages, their versions and artifacts (sqlite). Keep in step with
-- ../postgres/0006_packages.sql.
-- A version's spec (install/uninstall commands, exit codes, requirements, hooks, dependencies,
-- supersedence, detection) is one JSON document validated by the server; artifacts are rows so
-- that a blob cannot be deleted while a version names it.
CREATE TABLE packages (
    id           TEXT PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    publisher    TEXT,
    description  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX packages_display ON packages (LOWER(display_name), id);

CREATE TABLE package_versions (
    id         TEXT PRIMARY KEY,
    package_id TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    version    TEXT NOT NULL,
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    created_by TEXT NOT NULL,
    UNIQUE (package_id, version)
);
CREATE INDEX package_versions_created ON package_versions (package_id, created_at DESC, id);

CREATE TABLE package_artifacts (
    version_id TEXT NOT NULL REFERENCES package_versions (id) ON DELETE CASCADE,
    platform   TEXT NOT NULL,
    arch       TEXT NOT NULL,
    sha256     TEXT NOT NULL,
    size       INTEGER NOT NULL,
    file_name  TEXT NOT NULL,
    PRIMARY KEY (version_id, platform, arch)
);
CREATE INDEX package_artifacts_blob ON package_artifacts (sha256);

-- Desired software state (sqlite): assignments (a package to a device or group with an
-- intent; a deployment is an assignment with a name, schedule and policies), maintenance
-- windows scoped to groups, each device's compiled manifest, and where each package stands on
-- each device with its history. Keep in step with ../postgres/0008_assignments.sql.
CREATE TABLE assignments (
    id              TEXT PRIMARY KEY,
    package_id      TEXT NOT NULL REFERENCES packages (id),
    -- NULL: "latest", the highest version at any time.
    version_id      TEXT REFERENCES package_versions (id),
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    device_id       TEXT REFERENCES devices (id) ON DELETE CASCADE,
    group_id        TEXT REFERENCES device_groups (id),
    intent          TEXT NOT NULL,
    leave_installed BOOLEAN NOT NULL,
    -- Deployment settings; name is NULL for a plain assignment.
    name            TEXT,
    description     TEXT,
    available_from  INTEGER,
    deadline        INTEGER,
    window_policy   TEXT NOT NULL,
    network         TEXT NOT NULL,
    rollout         TEXT NOT NULL,
    paused          BOOLEAN NOT NULL,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- One assignment per package and target: a second one is a conflict the operator resolves.
CREATE UNIQUE INDEX assignments_target ON assignments (package_id, target_kind, target_id);
CREATE UNIQUE INDEX assignments_name ON assignments (LOWER(name));
CREATE INDEX assignments_group ON assignments (group_id);
CREATE INDEX assignments_device ON assignments (device_id);
CREATE INDEX assignments_version ON assignments (version_id);

CREATE TABLE maintenance_windows (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    schedule    TEXT NOT NULL,
    timezone    TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX maintenance_windows_name ON maintenance_windows (LOWER(name));

CREATE TABLE maintenance_window_groups (
    window_id TEXT NOT NULL REFERENCES maintenance_windows (id) ON DELETE CASCADE,
    group_id  TEXT NOT NULL REFERENCES device_groups (id),
    PRIMARY KEY (window_id, group_id)
);
CREATE INDEX maintenance_window_groups_group ON maintenance_window_groups (group_id);

-- The latest compiled manifest of each device (payload is the exact JSON that is signed).
CREATE TABLE device_manifests (
    device_id      TEXT PRIMARY KEY REFERENCES devices (id) ON DELETE CASCADE,
    revision       INTEGER NOT NULL,
    digest         TEXT NOT NULL,
    payload        TEXT NOT NULL,
    compiled_at    INTEGER NOT NULL,
    -- When the compiled result may change by itself (a window opens or closes, a deadline).
    next_eval_at   INTEGER,
    acked_revision INTEGER,
    acked_at       INTEGER
);
CREATE INDEX device_manifests_next_eval ON device_manifests (next_eval_at);

-- Where one package stands on one device.
CREATE TABLE device_software (
    device_id        TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    package_id       TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    version          TEXT,
    -- present / absent / available; NULL once the package left the manifest.
    desired          TEXT,
    status           TEXT NOT NULL,
    detail           TEXT,
    exit_code        INTEGER,
    progress_received INTEGER,
    progress_total   INTEGER,
    assignment_id    TEXT,
    -- Capstan installed it (or found it installed while required): removing the assignment
    -- uninstalls it unless leave_installed.
    managed          BOOLEAN NOT NULL,
    leave_installed  BOOLEAN NOT NULL,
    -- Someone asked to install an available package (operator or node).
    requested_at     INTEGER,
    drift_repairs    INTEGER NOT NULL,
    log              TEXT,
    updated_at       INTEGER NOT NULL,
    PRIMARY KEY (device_id, package_id)
);
CREATE INDEX device_software_assignment ON device_software (assignment_id, status);
CREATE INDEX device_software_package ON device_software (package_id);

CREATE TABLE device_software_history (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    device_id  TEXT NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
    package_id TEXT NOT NULL REFERENCES packages (id) ON DELETE CASCADE,
    at         INTEGER NOT NULL,
    status     TEXT NOT NULL,
    version    TEXT,
    detail     TEXT,
    exit_code  INTEGER,
    log        TEXT,
    drift      BOOLEAN NOT NULL
);
CREATE INDEX device_software_history_item ON device_software_history (device_id, package_id, id);

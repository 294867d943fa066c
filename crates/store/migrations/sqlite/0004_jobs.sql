-- Jobs, runs, attempts, output, run history, circuit breakers and the script library (SQLite).
-- Keep in step with ../postgres/0004_jobs.sql.

-- The script library: a script is a name; each edit is a new immutable version.
CREATE TABLE scripts (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    latest_version INTEGER NOT NULL,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL
);
CREATE TABLE script_versions (
    script_id   TEXT NOT NULL REFERENCES scripts(id) ON DELETE CASCADE,
    version     INTEGER NOT NULL,
    name        TEXT NOT NULL,
    description TEXT NOT NULL,
    interpreter TEXT NOT NULL,
    body        TEXT NOT NULL,
    parameters  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    PRIMARY KEY (script_id, version)
);

-- A job keeps its own copy of the spec: editing or deleting a library script never changes
-- what a job ran (script_id/script_version only say where it came from).
CREATE TABLE jobs (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    spec           TEXT NOT NULL,
    targets        TEXT NOT NULL,
    retry          TEXT NOT NULL,
    script_id      TEXT,
    script_version INTEGER,
    created_by     TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    timeout_secs   INTEGER NOT NULL,
    cancelled_at   INTEGER
);
CREATE INDEX jobs_created ON jobs(created_at);

-- Groups of jobs that follow group joins (only those), for the join follower.
CREATE TABLE job_follow_groups (
    job_id   TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    group_id TEXT NOT NULL,
    PRIMARY KEY (job_id, group_id)
);

-- One run per (job, device). `attempt` is the current attempt; `not_before` delays a retry;
-- `expires_at` is the job's (or a retry's extended) expiry; `held` marks a retry held by the
-- device's open circuit breaker.
CREATE TABLE job_runs (
    id         TEXT PRIMARY KEY,
    job_id     TEXT NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    state      TEXT NOT NULL,
    attempt    INTEGER NOT NULL,
    exit_code  INTEGER,
    reason     TEXT,
    not_before INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    held       BOOLEAN NOT NULL DEFAULT FALSE,
    updated_at INTEGER NOT NULL,
    UNIQUE (job_id, device_id)
);
CREATE INDEX job_runs_device_state ON job_runs(device_id, state);
CREATE INDEX job_runs_state ON job_runs(state, not_before);
CREATE INDEX job_runs_job_state ON job_runs(job_id, state);

CREATE TABLE job_attempts (
    run_id           TEXT NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    attempt          INTEGER NOT NULL,
    outcome          TEXT,
    exit_code        INTEGER,
    error            TEXT,
    delivered_at     INTEGER,
    started_at       INTEGER,
    finished_at      INTEGER,
    boot_id          TEXT,
    stdout_bytes     INTEGER NOT NULL DEFAULT 0,
    stderr_bytes     INTEGER NOT NULL DEFAULT 0,
    stdout_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    stderr_truncated BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (run_id, attempt)
);

-- Output chunks by byte offset; a re-sent chunk hits the unique key and is ignored.
CREATE TABLE job_output (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    run_id  TEXT NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    stream  TEXT NOT NULL,
    off     INTEGER NOT NULL,
    len     INTEGER NOT NULL,
    data    TEXT NOT NULL,
    UNIQUE (run_id, attempt, stream, off)
);
CREATE INDEX job_output_job ON job_output(job_id, id);

-- Every state change of every run, in order (the run's history and the live stream's feed).
CREATE TABLE job_run_history (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id  TEXT NOT NULL,
    run_id  TEXT NOT NULL REFERENCES job_runs(id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    state   TEXT NOT NULL,
    at      INTEGER NOT NULL,
    reason  TEXT
);
CREATE INDEX job_run_history_job ON job_run_history(job_id, id);
CREATE INDEX job_run_history_run ON job_run_history(run_id, id);

-- Consecutive failed attempts per device (any job); open while opened_at is set.
CREATE TABLE device_breakers (
    device_id            TEXT PRIMARY KEY REFERENCES devices(id) ON DELETE CASCADE,
    consecutive_failures INTEGER NOT NULL,
    opened_at            INTEGER
);

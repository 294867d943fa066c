-- Device groups, group membership and custom fields (SQLite). Keep in step with
-- ../postgres/0002_groups.sql. Tags stay in devices.tags (a JSON array).

-- Groups form a tree through parent_id; a parent cannot be deleted while it has children
-- (the foreign key has no ON DELETE action). `kind` is `static` or `dynamic`; `rule` holds a
-- dynamic group's rule as JSON text.
CREATE TABLE device_groups (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    parent_id   TEXT REFERENCES device_groups(id),
    kind        TEXT NOT NULL DEFAULT 'static',
    rule        TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE UNIQUE INDEX device_groups_name ON device_groups(LOWER(name));
CREATE INDEX device_groups_parent ON device_groups(parent_id);

-- `source` says who put the device there: an operator (`static`) or a rule (`dynamic`).
CREATE TABLE group_members (
    group_id  TEXT NOT NULL REFERENCES device_groups(id) ON DELETE CASCADE,
    device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    source    TEXT NOT NULL DEFAULT 'static',
    added_at  INTEGER NOT NULL,
    PRIMARY KEY (group_id, device_id)
);
CREATE INDEX group_members_device ON group_members(device_id);

-- Values and defaults are canonical JSON text (dates as Unix milliseconds), so an exact
-- filter is a text comparison.
CREATE TABLE custom_fields (
    name          TEXT PRIMARY KEY,
    field_type    TEXT NOT NULL,
    enum_values   TEXT NOT NULL DEFAULT '[]',
    default_value TEXT,
    required      BOOLEAN NOT NULL DEFAULT FALSE,
    description   TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);

CREATE TABLE device_field_values (
    device_id  TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
    field_name TEXT NOT NULL REFERENCES custom_fields(name) ON DELETE CASCADE,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, field_name)
);
CREATE INDEX device_field_values_lookup ON device_field_values(field_name, value);

//! Migrations for both backends, embedded in the binary. Each version has one SQLite and one
//! PostgreSQL script under `migrations/{sqlite,postgres}/NNNN_name.sql`; a test checks that the
//! two directories and this table list exactly the same versions, so the backends cannot drift.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

use crate::Backend;

/// One schema version, written for both backends.
#[derive(Debug, Clone, Copy)]
pub struct MigrationPair {
    pub version: i64,
    pub name: &'static str,
    pub sqlite: &'static str,
    pub postgres: &'static str,
}

pub const MIGRATIONS: &[MigrationPair] = &[
    MigrationPair {
        version: 1,
        name: "foundation",
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    MigrationPair {
        version: 2,
        name: "groups",
        sqlite: include_str!("../migrations/sqlite/0002_groups.sql"),
        postgres: include_str!("../migrations/postgres/0002_groups.sql"),
    },
    MigrationPair {
        version: 3,
        name: "events",
        sqlite: include_str!("../migrations/sqlite/0003_events.sql"),
        postgres: include_str!("../migrations/postgres/0003_events.sql"),
    },
    MigrationPair {
        version: 4,
        name: "jobs",
        sqlite: include_str!("../migrations/sqlite/0004_jobs.sql"),
        postgres: include_str!("../migrations/postgres/0004_jobs.sql"),
    },
    MigrationPair {
        version: 5,
        name: "depot",
        sqlite: include_str!("../migrations/sqlite/0005_depot.sql"),
        postgres: include_str!("../migrations/postgres/0005_depot.sql"),
    },
    MigrationPair {
        version: 6,
        name: "packages",
        sqlite: include_str!("../migrations/sqlite/0006_packages.sql"),
        postgres: include_str!("../migrations/postgres/0006_packages.sql"),
    },
    MigrationPair {
        version: 7,
        name: "depot_sources",
        sqlite: include_str!("../migrations/sqlite/0007_depot_sources.sql"),
        postgres: include_str!("../migrations/postgres/0007_depot_sources.sql"),
    },
    MigrationPair {
        version: 8,
        name: "assignments",
        sqlite: include_str!("../migrations/sqlite/0008_assignments.sql"),
        postgres: include_str!("../migrations/postgres/0008_assignments.sql"),
    },
    MigrationPair {
        version: 9,
        name: "device_presence",
        sqlite: include_str!("../migrations/sqlite/0009_device_presence.sql"),
        postgres: include_str!("../migrations/postgres/0009_device_presence.sql"),
    },
    MigrationPair {
        version: 10,
        name: "job_runs_device_index",
        sqlite: include_str!("../migrations/sqlite/0010_job_runs_device_index.sql"),
        postgres: include_str!("../migrations/postgres/0010_job_runs_device_index.sql"),
    },
];

pub(crate) fn migrator(backend: Backend) -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|m| {
            let sql = match backend {
                Backend::Sqlite => m.sqlite,
                Backend::Postgres => m.postgres,
            };
            Migration::new(
                m.version,
                Cow::Borrowed(m.name),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn versions_in(dir: &str) -> BTreeSet<i64> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("migrations")
            .join(dir);
        std::fs::read_dir(&path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let (num, _) = name
                    .split_once('_')
                    .unwrap_or_else(|| panic!("bad name {name}"));
                num.parse::<i64>()
                    .unwrap_or_else(|_| panic!("bad version in {name}"))
            })
            .collect()
    }

    #[test]
    fn both_backends_have_identical_migration_versions() {
        let sqlite = versions_in("sqlite");
        let postgres = versions_in("postgres");
        let table: BTreeSet<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
        assert_eq!(
            sqlite, postgres,
            "migration versions differ between backends"
        );
        assert_eq!(sqlite, table, "migrations/ and the MIGRATIONS table differ");
        assert_eq!(
            table.len(),
            MIGRATIONS.len(),
            "duplicate version in MIGRATIONS"
        );
    }
}

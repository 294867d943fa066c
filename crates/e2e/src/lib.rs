//! This crate only holds end-to-end tests (`tests/`); see ARCHITECTURE.md. They run the real
//! `capstan-server`, `capstan-agent` and `capstan` binaries, which must be built first
//! (`cargo build --workspace --bins`; the README's test command does it).

/// The machine-wide lock the tests hold while they (or the agents they start) use a package
/// database: dpkg, apt, rpm and pacman fail at once instead of waiting when another process
/// holds their lock, and the tests run in parallel — across test binaries too under nextest, so
/// the lock is a file lock, not a mutex. Held until the returned file is dropped.
pub fn package_db_lock() -> std::fs::File {
    let path = std::env::temp_dir().join("capstan-e2e-package-db.lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    file.lock()
        .unwrap_or_else(|e| panic!("locking {}: {e}", path.display()));
    file
}

//! Finding the workspace binaries (`capstan-server`, `capstan-agent`, `capstan`,
//! `capstan-loadgen`) from another crate's test. Cargo only exposes `CARGO_BIN_EXE_*` to tests
//! of the package that owns the binary, so the harness looks next to the running test
//! executable instead: tests live in `<target>/<profile>/deps/`, binaries in
//! `<target>/<profile>/`.

use std::path::PathBuf;

/// Environment variable naming a directory that holds prebuilt binaries; it takes precedence
/// over the target directory (useful when testing binaries built elsewhere).
pub const BIN_DIR_ENV: &str = "CAPSTAN_TEST_BIN_DIR";

/// Path of the workspace binary `name`.
///
/// # Panics
/// When the binary has not been built: the message tells to run
/// `cargo build --workspace --bins` first.
pub fn bin_path(name: &str) -> PathBuf {
    let candidates = candidates(name);
    if let Some(found) = candidates.iter().find(|p| p.is_file()) {
        return found.clone();
    }
    let looked: Vec<String> = candidates.iter().map(|p| p.display().to_string()).collect();
    panic!(
        "binary `{name}` not found (looked at {}): run `cargo build --workspace --bins` first",
        looked.join(", ")
    );
}

fn candidates(name: &str) -> Vec<PathBuf> {
    let file = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut out = Vec::new();
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        out.push(PathBuf::from(dir).join(&file));
    }
    if let Ok(exe) = std::env::current_exe()
        && let Some(dir) = exe.parent()
    {
        if dir.ends_with("deps")
            && let Some(profile_dir) = dir.parent()
        {
            out.push(profile_dir.join(&file));
        }
        out.push(dir.join(&file));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn looks_in_the_profile_dir_above_deps() {
        // This test binary itself lives in <target>/<profile>/deps.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().unwrap().parent().unwrap();
        let c = candidates("capstan-server");
        assert!(c.contains(&profile_dir.join("capstan-server")), "{c:?}");
    }

    #[test]
    #[should_panic(expected = "run `cargo build --workspace --bins` first")]
    fn missing_binary_says_how_to_build_it() {
        bin_path("capstan-no-such-binary");
    }
}

//! Data-driven check of the committed fixture packages: every package in `fixtures/` (.deb,
//! .rpm, pacman .pkg.tar.zst, .msi, .exe, script archives .zip and .tar.gz) must parse to the
//! JSON in the file of the same name plus `.json`. These run without any packaging tool
//! installed. How each was made: the .deb with dpkg-deb, the .rpm with rpmbuild, the pacman
//! package with `bsdtar -cf - .BUILDINFO .PKGINFO usr | zstd -19`, the .msi with `wixl -a x64`,
//! the .exe by the builder in `tests/pe.rs`, the .tar.gz with GNU tar and gzip, the .zip with
//! Python's zipfile (Unix modes set). `UPDATE_FIXTURES=1 cargo test -p capstan-pkgmeta`
//! rewrites the expectations (review the diff before committing).

use std::path::Path;

#[test]
fn fixtures_parse_to_their_expected_json() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let update = std::env::var_os("UPDATE_FIXTURES").is_some();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("dir entry").path();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let is_package = [
            ".deb",
            ".rpm",
            ".pkg.tar.zst",
            ".msi",
            ".exe",
            ".zip",
            ".tar.gz",
        ]
        .iter()
        .any(|ext| file_name.ends_with(ext));
        if !is_package {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read fixture");
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name");
        let meta = capstan_pkgmeta::parse(&bytes, name).unwrap_or_else(|e| panic!("{e}"));
        let file = std::fs::File::open(&path).expect("open fixture");
        let from_file = capstan_pkgmeta::parse_reader(file, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(meta, from_file, "{name}: parse and parse_reader agree");
        let actual = serde_json::to_string_pretty(&meta).expect("serialise") + "\n";
        let expected_path = dir.join(format!("{name}.json"));
        if update {
            std::fs::write(&expected_path, &actual).expect("write expectation");
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        assert_eq!(actual, expected, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 7, "every fixture was checked");
}

//! Every committed fixture of every format, cut short at each length and with single bytes
//! flipped, and random bytes behind each format's magic number: the parser returns (a result
//! or an error) and never panics, hangs or allocates without bound.

use std::path::Path;

use capstan_pkgmeta::{parse, parse_reader};

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("fixtures dir") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_owned();
        if name.ends_with(".json") {
            continue;
        }
        out.push((name, std::fs::read(&path).expect("read fixture")));
    }
    assert!(out.len() >= 7, "fixtures found: {out:?}");
    out
}

#[test]
fn every_fixture_survives_truncation_and_bit_flips() {
    for (name, bytes) in fixtures() {
        // Small files are cut at every length; the larger .msi at a stride plus its ends.
        let stride = if bytes.len() > 4096 { 17 } else { 1 };
        for len in (0..bytes.len()).step_by(stride).chain([bytes.len() - 1]) {
            let _ = parse(&bytes[..len], &name);
            let _ = parse_reader(std::io::Cursor::new(&bytes[..len]), &name);
        }
        for at in (0..bytes.len()).step_by(stride) {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut copy = bytes.clone();
                copy[at] ^= flip;
                let _ = parse(&copy, &name);
            }
        }
    }
}

mod random {
    use super::{fixtures, parse};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Random bytes behind each magic number the parser dispatches on.
        #[test]
        fn random_bytes_behind_each_magic_never_panic(
            magic in prop::sample::select(vec![
                b"PK\x03\x04".to_vec(),
                vec![0x1f, 0x8b, 0x08, 0x00],
                vec![0x28, 0xb5, 0x2f, 0xfd],
                vec![0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1],
                b"MZ".to_vec(),
            ]),
            tail in prop::collection::vec(any::<u8>(), 0..4096),
        ) {
            let mut bytes = magic;
            bytes.extend_from_slice(&tail);
            let _ = parse(&bytes, "random.bin");
        }

        /// Several random overwrites of a real file of any format.
        #[test]
        fn mutated_fixtures_never_panic(
            which in any::<prop::sample::Index>(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let all = fixtures();
            let (name, mut bytes) = all[which.index(all.len())].clone();
            for (at, value) in edits {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let _ = parse(&bytes, &name);
        }
    }
}

//! PE executables: minimal but valid PE32 and PE32+ images with a hand-built resource section
//! (the layout linkers write: type → name → language → data, VS_VERSIONINFO with its fixed
//! info, StringFileInfo and VarFileInfo) must read back exactly what was put in; broken and
//! looping resource trees are refused; nothing panics on damaged copies. The committed fixture
//! `fixtures/hello-capstan-setup.exe` is this builder's output.

use std::path::Path;

use capstan_pkgmeta::{ErrorKind, Format, PackageFormat, Platform, parse, parse_reader};

fn utf16z(s: &str) -> Vec<u8> {
    s.encode_utf16()
        .chain([0])
        .flat_map(u16::to_le_bytes)
        .collect()
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// One version-info block: length, value length, type, key, value, children.
fn block(key: &str, value: &[u8], value_len: u16, kind: u16, children: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![0, 0];
    out.extend_from_slice(&value_len.to_le_bytes());
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&utf16z(key));
    pad4(&mut out);
    out.extend_from_slice(value);
    for child in children {
        pad4(&mut out);
        out.extend_from_slice(child);
    }
    let len = u16::try_from(out.len()).expect("small block");
    out[..2].copy_from_slice(&len.to_le_bytes());
    out
}

struct Version<'a> {
    file: Option<[u16; 4]>,
    product: [u16; 4],
    strings: &'a [(&'a str, &'a str)],
}

fn version_resource(v: &Version<'_>) -> Vec<u8> {
    let fixed: Vec<u8> = match v.file {
        None => Vec::new(),
        Some(file) => {
            let ms = |q: [u16; 4]| (u32::from(q[0]) << 16) | u32::from(q[1]);
            let ls = |q: [u16; 4]| (u32::from(q[2]) << 16) | u32::from(q[3]);
            [
                0xfeef_04bd,
                0x0001_0000,
                ms(file),
                ls(file),
                ms(v.product),
                ls(v.product),
                0x3f,
                0,
                0x0004_0004,
                1,
                0,
                0,
                0,
            ]
            .iter()
            .flat_map(|w: &u32| w.to_le_bytes())
            .collect()
        }
    };
    let strings: Vec<Vec<u8>> = v
        .strings
        .iter()
        .map(|(k, val)| {
            let units = u16::try_from(val.encode_utf16().count() + 1).expect("short");
            block(k, &utf16z(val), units, 1, &[])
        })
        .collect();
    let table = block("040904b0", &[], 0, 1, &strings);
    let sfi = block("StringFileInfo", &[], 0, 1, &[table]);
    let translation = [0x09, 0x04, 0xb0, 0x04];
    let var = block("Translation", &translation, 4, 0, &[]);
    let vfi = block("VarFileInfo", &[], 0, 1, &[var]);
    let fixed_len = u16::try_from(fixed.len()).expect("52");
    block("VS_VERSION_INFO", &fixed, fixed_len, 0, &[sfi, vfi])
}

const SECTION_RVA: u32 = 0x1000;

/// A resource section: an RT_ICON and an RT_VERSION type entry (sorted by id, as linkers
/// write them), one name, one language, one data entry.
fn resource_section(version: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let dir = |out: &mut Vec<u8>, entries: &[(u32, u32)]| {
        out.extend_from_slice(&[0u8; 12]);
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(&u16::try_from(entries.len()).expect("few").to_le_bytes());
        for (id, target) in entries {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&target.to_le_bytes());
        }
    };
    dir(&mut out, &[(3, 0x8000_0020), (16, 0x8000_0020)]);
    assert_eq!(out.len(), 0x20);
    dir(&mut out, &[(1, 0x8000_0038)]);
    assert_eq!(out.len(), 0x38);
    dir(&mut out, &[(0x409, 0x50)]);
    assert_eq!(out.len(), 0x50);
    out.extend_from_slice(&(SECTION_RVA + 0x60).to_le_bytes());
    out.extend_from_slice(&u32::try_from(version.len()).expect("small").to_le_bytes());
    out.extend_from_slice(&[0u8; 8]);
    assert_eq!(out.len(), 0x60);
    out.extend_from_slice(version);
    out
}

/// A PE image: DOS header, PE header, optional header (PE32 or PE32+), one `.rsrc` section.
fn pe(machine: u16, pe32_plus: bool, resources: Option<&[u8]>) -> Vec<u8> {
    let mut out = vec![0u8; 0x80];
    out[..2].copy_from_slice(b"MZ");
    out[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    out.extend_from_slice(b"PE\0\0");
    let optional_size: u16 = if pe32_plus { 240 } else { 224 };
    out.extend_from_slice(&machine.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&[0u8; 12]);
    out.extend_from_slice(&optional_size.to_le_bytes());
    out.extend_from_slice(&0x0102u16.to_le_bytes());
    let mut optional = vec![0u8; usize::from(optional_size)];
    optional[..2].copy_from_slice(&(if pe32_plus { 0x20bu16 } else { 0x10b }).to_le_bytes());
    let dirs = if pe32_plus { 112 } else { 96 };
    optional[dirs - 4..dirs].copy_from_slice(&16u32.to_le_bytes());
    let rsrc_len = resources.map_or(0, <[u8]>::len);
    if resources.is_some() {
        optional[dirs + 16..dirs + 20].copy_from_slice(&SECTION_RVA.to_le_bytes());
        optional[dirs + 20..dirs + 24]
            .copy_from_slice(&u32::try_from(rsrc_len).expect("small").to_le_bytes());
    }
    out.extend_from_slice(&optional);
    let raw_size = rsrc_len.div_ceil(0x200) * 0x200;
    let mut section = vec![0u8; 40];
    section[..8].copy_from_slice(b".rsrc\0\0\0");
    section[8..12].copy_from_slice(&u32::try_from(rsrc_len).expect("small").to_le_bytes());
    section[12..16].copy_from_slice(&SECTION_RVA.to_le_bytes());
    section[16..20].copy_from_slice(&u32::try_from(raw_size).expect("small").to_le_bytes());
    section[20..24].copy_from_slice(&0x400u32.to_le_bytes());
    section[36..40].copy_from_slice(&0x4000_0040u32.to_le_bytes());
    out.extend_from_slice(&section);
    out.resize(0x400, 0);
    if let Some(r) = resources {
        out.extend_from_slice(r);
        out.resize(0x400 + raw_size, 0);
    }
    out
}

const STRINGS: &[(&str, &str)] = &[
    ("CompanyName", "Capstan Tests Ltd."),
    ("FileDescription", "Hello Capstan installer"),
    ("FileVersion", "2.4.1.17"),
    ("ProductName", "Hello Capstan Setup"),
    ("ProductVersion", "2.4.1"),
];

fn full_exe() -> Vec<u8> {
    let version = version_resource(&Version {
        file: Some([2, 4, 1, 17]),
        product: [2, 4, 1, 0],
        strings: STRINGS,
    });
    pe(0x8664, true, Some(&resource_section(&version)))
}

#[test]
fn version_resources_read_back() {
    let bytes = full_exe();
    let meta = parse(&bytes, "setup.exe").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(meta.format, PackageFormat::Exe);
    assert_eq!(meta.platform, Platform::Windows);
    assert_eq!(meta.name, "hello-capstan-setup");
    assert_eq!(meta.version, "2.4.1.0", "the fixed product version wins");
    assert_eq!(meta.file_version.as_deref(), Some("2.4.1.17"));
    assert_eq!(meta.product_version.as_deref(), Some("2.4.1.0"));
    assert_eq!(meta.company.as_deref(), Some("Capstan Tests Ltd."));
    assert_eq!(meta.vendor.as_deref(), Some("Capstan Tests Ltd."));
    assert_eq!(meta.product_name.as_deref(), Some("Hello Capstan Setup"));
    assert_eq!(meta.architecture, "x64");
    assert_eq!(
        meta.suggested_detection, None,
        "an installer says not where it installs"
    );
    let json = serde_json::to_value(&meta).expect("json");
    assert_eq!(json["suggested_detection"], serde_json::Value::Null);
    assert_eq!(
        parse_reader(std::io::Cursor::new(&bytes), "setup.exe").expect("reader"),
        meta
    );
}

#[test]
fn pe32_with_strings_only_uses_the_string_version() {
    let version = version_resource(&Version {
        file: None,
        product: [0; 4],
        strings: &[("ProductVersion", "3, 1, 0, 7 beta"), ("CompanyName", "X")],
    });
    let bytes = pe(0x014c, false, Some(&resource_section(&version)));
    let meta = parse(&bytes, "C:\\Downloads\\Tool_Setup v3.EXE").expect("parses");
    assert_eq!(
        meta.version, "3.1.0.7",
        "old-style commas become dots, words are dropped"
    );
    assert_eq!(meta.architecture, "x86");
    assert_eq!(
        meta.name, "tool_setup-v3",
        "named after the file without ProductName"
    );
    assert_eq!(meta.file_version, None);
}

#[test]
fn executables_without_a_version_are_refused_clearly() {
    let bytes = pe(0x8664, true, None);
    let err = parse(&bytes, "tool.exe").expect_err("no version");
    assert_eq!(
        err.kind(),
        &ErrorKind::MissingField {
            format: Format::Exe,
            field: "version"
        }
    );
    assert_eq!(
        err.to_string(),
        "tool.exe: .exe metadata lacks the required field version"
    );
}

type Case = (&'static str, Vec<u8>, fn(&ErrorKind) -> bool);

#[test]
fn broken_headers_and_resource_trees_are_refused() {
    let good = full_exe();
    let rsrc = 0x400;
    let set = |bytes: &mut Vec<u8>, at: usize, value: u32| {
        bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
    };
    let mut dos_only = good[..0x80].to_vec();
    dos_only[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    let mut far_header = good.clone();
    set(&mut far_header, 0x3c, 0x7fff_fff0);
    // The RT_VERSION entry points back at the root: the walk would go round for ever.
    let mut looping = good.clone();
    set(&mut looping, rsrc + 0x1c, 0x8000_0000);
    set(&mut looping, rsrc + 0x34, 0x8000_0000);
    set(&mut looping, rsrc + 0x4c, 0x8000_0000);
    let mut outside = good.clone();
    set(&mut outside, rsrc + 0x50, 0x9000);
    let mut huge_dir = good.clone();
    huge_dir[rsrc + 14..rsrc + 16].copy_from_slice(&0xffffu16.to_le_bytes());
    let mut huge_data = good.clone();
    set(&mut huge_data, rsrc + 0x54, 0x7fff_ffff);

    let cases: Vec<Case> = vec![
        ("only MZ", b"MZ".to_vec(), |k| {
            matches!(
                k,
                ErrorKind::Truncated {
                    format: Format::Exe,
                    ..
                }
            )
        }),
        (
            "DOS program",
            dos_only,
            |k| matches!(k, ErrorKind::Malformed { message, .. } if message.contains("no PE signature")),
        ),
        ("header beyond the end", far_header, |k| {
            matches!(
                k,
                ErrorKind::Truncated {
                    what: "PE header",
                    ..
                }
            )
        }),
        (
            "resource loop",
            looping,
            |k| matches!(k, ErrorKind::Malformed { message, .. } if message.contains("deeper than three levels")),
        ),
        (
            "data outside the section",
            outside,
            |k| matches!(k, ErrorKind::Malformed { message, .. } if message.contains("no section holds")),
        ),
        ("huge directory", huge_dir, |k| {
            matches!(k, ErrorKind::TooLarge { .. } | ErrorKind::Truncated { .. })
        }),
        ("huge version data", huge_data, |k| {
            matches!(
                k,
                ErrorKind::TooLarge {
                    what: "version resource",
                    ..
                }
            )
        }),
    ];
    for (label, bytes, expected) in cases {
        let err = parse(&bytes, "bad.exe").expect_err(label);
        assert!(expected(err.kind()), "{label}: {err}");
    }
}

#[test]
fn truncated_and_flipped_executables_never_panic() {
    let bytes = full_exe();
    for len in 0..bytes.len() {
        let _ = parse(&bytes[..len], "cut.exe");
    }
    for at in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut copy = bytes.clone();
            copy[at] ^= flip;
            let _ = parse(&copy, "flipped.exe");
        }
    }
}

/// The fixture is this builder's output, so the data-driven fixture test covers .exe too.
/// `UPDATE_FIXTURES=1` rewrites it.
#[test]
fn the_exe_fixture_is_the_builders_output() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hello-capstan-setup.exe");
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, full_exe()).expect("write fixture");
    }
    assert_eq!(std::fs::read(&path).expect("fixture"), full_exe());
}

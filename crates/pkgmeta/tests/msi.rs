//! Parses real .msi files built by `wixl` (Debian package `wixl`) from small WiX sources and
//! checks every field against what the source says; damaged and incomplete databases are
//! refused with a clear error.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use capstan_pkgmeta::{
    ErrorKind, Format, PackageFormat, Platform, SuggestedDetection, VersionCheck, VersionOp, parse,
    parse_reader,
};
use common::run;

/// What goes into a .wxs, and so what the parser must find.
struct Product {
    name: &'static str,
    version: &'static str,
    manufacturer: &'static str,
    product_code: &'static str,
    upgrade_code: &'static str,
    /// wixl's `--arch`.
    arch: &'static str,
}

const PRODUCTS: &[Product] = &[
    Product {
        name: "Hello Capstan Tool",
        version: "2.4.1",
        manufacturer: "Capstan Tests Ltd.",
        product_code: "{12345678-ABCD-4EF0-9123-456789ABCDEF}",
        upgrade_code: "{87654321-DCBA-4FE0-A321-FEDCBA987654}",
        arch: "x86",
    },
    Product {
        name: "Widget Pro 2024 (x64)",
        version: "10.0.19045.3",
        manufacturer: "Contoso &amp; Sons",
        product_code: "{0F0E0D0C-0B0A-4908-8706-050403020100}",
        upgrade_code: "{A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D}",
        arch: "x64",
    },
];

fn wxs(p: &Product) -> String {
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="{code}" Name="{name}" Language="1033" Version="{version}"
           Manufacturer="{manufacturer}" UpgradeCode="{upgrade}">
    <Package InstallerVersion="200" Compressed="yes"/>
    <Media Id="1" Cabinet="data.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFilesFolder">
        <Directory Id="INSTALLDIR" Name="CapstanTest">
          <Component Id="Main" Guid="{{11111111-2222-4333-8444-555555555555}}">
            <File Id="readme" Source="readme.txt"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="Complete" Level="1"><ComponentRef Id="Main"/></Feature>
  </Product>
</Wix>
"#,
        code = p.product_code,
        name = p.name,
        version = p.version,
        manufacturer = p.manufacturer,
        upgrade = p.upgrade_code,
    )
}

fn build_msi(dir: &Path, p: &Product) -> PathBuf {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(dir.join("readme.txt"), "hello\n").expect("payload");
    let source = dir.join("product.wxs");
    std::fs::write(&source, wxs(p)).expect("wxs");
    let out = dir.join("product.msi");
    run(Command::new("wixl")
        .current_dir(dir)
        .arg("--arch")
        .arg(p.arch)
        .arg("-o")
        .arg(&out)
        .arg(&source));
    out
}

#[test]
fn wixl_packages_read_as_their_source_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, p) in PRODUCTS.iter().enumerate() {
        let path = build_msi(&dir.path().join(i.to_string()), p);
        let bytes = std::fs::read(&path).expect("read");
        let meta = parse(&bytes, "product.msi").unwrap_or_else(|e| panic!("{e}"));
        let manufacturer = p.manufacturer.replace("&amp;", "&");
        assert_eq!(meta.format, PackageFormat::Msi);
        assert_eq!(meta.platform, Platform::Windows);
        assert_eq!(meta.version, p.version, "{}", p.name);
        assert_eq!(meta.architecture, p.arch, "{}", p.name);
        assert_eq!(meta.product_name.as_deref(), Some(p.name));
        assert_eq!(meta.manufacturer.as_deref(), Some(manufacturer.as_str()));
        assert_eq!(meta.vendor.as_deref(), Some(manufacturer.as_str()));
        assert_eq!(meta.product_code.as_deref(), Some(p.product_code));
        assert_eq!(meta.upgrade_code.as_deref(), Some(p.upgrade_code));
        assert_eq!(
            meta.suggested_detection,
            Some(SuggestedDetection::MsiProduct {
                product_code: p.product_code.to_owned(),
                version: VersionCheck {
                    op: VersionOp::Gte,
                    version: p.version.to_owned(),
                },
            })
        );
        let file = std::fs::File::open(&path).expect("open");
        assert_eq!(parse_reader(file, "product.msi").expect("reader"), meta);
    }
}

#[test]
fn names_are_slugs_and_detection_has_the_wire_shape() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_msi(dir.path(), &PRODUCTS[1]);
    let meta = parse(&std::fs::read(&path).expect("read"), "widget.msi").expect("parses");
    assert_eq!(meta.name, "widget-pro-2024-x64");
    let json = serde_json::to_value(&meta).expect("serialises");
    assert_eq!(
        json["suggested_detection"],
        serde_json::json!({
            "type": "msi_product",
            "product_code": "{0F0E0D0C-0B0A-4908-8706-050403020100}",
            "version": {"op": "gte", "version": "10.0.19045.3"}
        })
    );
    assert_eq!(json["platform"], "windows");
    assert_eq!(
        json["upgrade_code"],
        "{A1B2C3D4-E5F6-4A7B-8C9D-0E1F2A3B4C5D}"
    );
}

/// wixl cannot target Arm64, so its Template is rewritten with the msi crate's writer.
#[test]
fn arm64_template_reads_as_arm64() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_msi(dir.path(), &PRODUCTS[0]);
    {
        let mut package = msi::open_rw(&path).expect("open for writing");
        package.summary_info_mut().set_arch("Arm64");
        package.flush().expect("write");
    }
    let meta = parse(&std::fs::read(&path).expect("read"), "arm.msi").expect("parses");
    assert_eq!(meta.architecture, "arm64");
}

#[test]
fn incomplete_databases_name_what_is_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = build_msi(dir.path(), &PRODUCTS[0]);
    {
        let mut package = msi::open_rw(&path).expect("open for writing");
        package
            .delete_rows(
                msi::Delete::from("Property")
                    .with(msi::Expr::col("Property").eq(msi::Expr::string("ProductCode"))),
            )
            .expect("delete");
        package.flush().expect("write");
    }
    let err = parse(&std::fs::read(&path).expect("read"), "nocode.msi").expect_err("no code");
    assert_eq!(
        err.kind(),
        &ErrorKind::MissingField {
            format: Format::Msi,
            field: "ProductCode"
        }
    );
    assert_eq!(
        err.to_string(),
        "nocode.msi: .msi metadata lacks the required field ProductCode"
    );

    // A compound file that is an installer database without a Property table.
    let mut empty = std::io::Cursor::new(Vec::new());
    msi::Package::create(msi::PackageType::Installer, &mut empty).expect("create");
    let err = parse(empty.get_ref(), "empty.msi").expect_err("no properties");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Missing {
                format: Format::Msi,
                what: "Property table"
            }
        ),
        "{err}"
    );
}

#[test]
fn garbage_and_truncated_msi_files_are_refused_without_panicking() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bytes = std::fs::read(build_msi(dir.path(), &PRODUCTS[0])).expect("read");
    let mut garbage = bytes[..8].to_vec();
    garbage.extend(std::iter::repeat_n(0xa5, 4096));
    let err = parse(&garbage, "garbage.msi").expect_err("garbage");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Malformed {
                format: Format::Msi,
                ..
            }
        ),
        "{err}"
    );
    for len in (0..bytes.len()).step_by(61).chain([bytes.len() - 1]) {
        let result = parse(&bytes[..len], "cut.msi");
        assert!(
            result.is_err() || len > bytes.len() - 512,
            "a {len}-byte prefix parsed"
        );
    }
    for at in (0..bytes.len()).step_by(3) {
        let mut copy = bytes.clone();
        copy[at] ^= 0xff;
        let _ = parse(&copy, "flipped.msi");
    }
}

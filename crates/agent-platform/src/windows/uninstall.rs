//! Installed software from the registry's Uninstall keys (what "Apps & features" lists):
//! `HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\*`, its `WOW6432Node` twin for
//! 32-bit programs, and the per-user `HKCU` one.

use capstan_proto::inventory::SoftwarePackage;

use super::regquery::RegKey;

/// One Uninstall subkey and the registry view it was read from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct UninstallKey {
    pub key: RegKey,
    /// `x64` for the native view, `x86` for WOW6432Node, `None` for per-user keys.
    pub architecture: Option<String>,
}

/// Turns Uninstall keys into packages. Skipped: keys without a DisplayName, components
/// (`SystemComponent=1`: parts of a bundle the user never installed separately) and updates
/// of another entry (`ParentKeyName`). A key named by a GUID with `WindowsInstaller=1` is an
/// MSI product (source `msi`, its ProductCode is the key name); the rest are
/// `windows_uninstall`. The same product seen in both registry views is listed once.
pub(crate) fn packages(keys: &[UninstallKey]) -> Vec<SoftwarePackage> {
    let mut out: Vec<SoftwarePackage> = Vec::new();
    for UninstallKey { key, architecture } in keys {
        let Some(name) = key.str("DisplayName") else {
            continue;
        };
        if key.int("SystemComponent") == Some(1) || key.str("ParentKeyName").is_some() {
            continue;
        }
        let msi = is_guid(key.name()) && key.int("WindowsInstaller") == Some(1);
        let p = SoftwarePackage {
            name: name.to_string(),
            version: key.str("DisplayVersion").unwrap_or("").to_string(),
            architecture: architecture.clone(),
            source: if msi { "msi" } else { "windows_uninstall" }.into(),
            publisher: key.str("Publisher").map(str::to_string),
            install_date: key.str("InstallDate").and_then(parse_install_date),
            product_code: msi.then(|| key.name().to_ascii_uppercase()),
        };
        let duplicate = out.iter().any(|o| {
            o.source == p.source
                && o.version == p.version
                && match (&o.product_code, &p.product_code) {
                    (Some(a), Some(b)) => a == b,
                    _ => o.name.eq_ignore_ascii_case(&p.name),
                }
        });
        if !duplicate {
            out.push(p);
        }
    }
    out
}

/// `{8-4-4-4-12}` hexadecimal.
pub(crate) fn is_guid(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('{').and_then(|r| r.strip_suffix('}')) else {
        return false;
    };
    let parts: Vec<&str> = inner.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// `InstallDate` is `YYYYMMDD` (local date; taken as UTC midnight).
pub(crate) fn parse_install_date(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() != 8 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y: i64 = s[0..4].parse().ok()?;
    let m: i64 = s[4..6].parse().ok()?;
    let d: i64 = s[6..8].parse().ok()?;
    if !(1970..=2999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::regquery::RegValue;

    fn key(name: &str, values: &[(&str, RegValue)], arch: Option<&str>) -> UninstallKey {
        UninstallKey {
            key: RegKey {
                path: format!(
                    "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\{name}"
                ),
                values: values
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.clone()))
                    .collect(),
            },
            architecture: arch.map(str::to_string),
        }
    }

    fn s(v: &str) -> RegValue {
        RegValue::Str(v.into())
    }

    #[test]
    fn uninstall_entries_become_packages() {
        let guid = "{23170F69-40C1-2702-2301-000001000000}";
        let keys = vec![
            key(
                guid,
                &[
                    ("DisplayName", s("7-Zip 23.01 (x64 edition)")),
                    ("DisplayVersion", s("23.01.00.0")),
                    ("Publisher", s("Igor Pavlov")),
                    ("InstallDate", s("20240115")),
                    ("WindowsInstaller", RegValue::Int(1)),
                ],
                Some("x64"),
            ),
            key(
                "Mozilla Firefox 121.0 (x64 en-US)",
                &[
                    ("DisplayName", s("Mozilla Firefox (x64 en-US)")),
                    ("DisplayVersion", s("121.0")),
                ],
                Some("x64"),
            ),
            key(
                "{11111111-2222-3333-4444-555555555555}",
                &[
                    ("DisplayName", s("Hidden runtime part")),
                    ("SystemComponent", RegValue::Int(1)),
                ],
                Some("x64"),
            ),
            key(
                "KB5034441",
                &[
                    ("DisplayName", s("Security Update for Office")),
                    ("ParentKeyName", s("Office16.PROPLUS")),
                ],
                Some("x86"),
            ),
            key("NoName", &[("DisplayVersion", s("1.0"))], Some("x64")),
            // A GUID key that is not an MSI product.
            key(
                "{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}",
                &[
                    ("DisplayName", s("Inno app")),
                    ("WindowsInstaller", s("0")),
                    ("InstallDate", s("2024-01-15")),
                ],
                Some("x86"),
            ),
            // The same MSI product seen again through the 32-bit view.
            key(
                &guid.to_ascii_lowercase(),
                &[
                    ("DisplayName", s("7-Zip 23.01 (x64 edition)")),
                    ("DisplayVersion", s("23.01.00.0")),
                    ("WindowsInstaller", s("1")),
                ],
                Some("x86"),
            ),
        ];
        let p = packages(&keys);
        assert_eq!(p.len(), 3, "{p:#?}");
        assert_eq!(p[0].source, "msi");
        assert_eq!(p[0].product_code.as_deref(), Some(guid));
        assert_eq!(p[0].install_date, Some(1_705_276_800));
        assert_eq!(p[0].publisher.as_deref(), Some("Igor Pavlov"));
        assert_eq!(p[0].architecture.as_deref(), Some("x64"));
        assert_eq!(
            (p[1].source.as_str(), p[1].version.as_str()),
            ("windows_uninstall", "121.0")
        );
        assert_eq!(
            (p[2].name.as_str(), p[2].source.as_str(), p[2].install_date),
            ("Inno app", "windows_uninstall", None)
        );
    }

    #[test]
    fn guids_and_dates() {
        assert!(is_guid("{23170F69-40C1-2702-2301-000001000000}"));
        assert!(!is_guid("23170F69-40C1-2702-2301-000001000000"));
        assert!(!is_guid("{23170F69-40C1-2702-2301-00000100000}"));
        assert_eq!(parse_install_date("19700101"), Some(0));
        assert_eq!(parse_install_date("20000301"), Some(951_868_800));
        assert_eq!(parse_install_date("20241301"), None);
    }
}

//! Parser for the output of `reg query <key> [/v name] [/s]`: key lines (`HKEY_…\path`)
//! followed by indented value lines `    Name    REG_TYPE    data`. This is the registry
//! interface of the Windows collectors: a key path and a map of value name → [`RegValue`].

use std::collections::BTreeMap;

/// A registry value as far as inventory needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RegValue {
    /// REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ (as printed).
    Str(String),
    /// REG_DWORD, REG_QWORD.
    Int(u64),
    /// Anything else (REG_BINARY, …), kept as printed.
    Other(String),
}

impl RegValue {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            RegValue::Str(s) => Some(s.as_str()),
            _ => None,
        }
    }

    /// A DWORD, or a string holding a number (some installers write flags as REG_SZ).
    pub(crate) fn as_int(&self) -> Option<u64> {
        match self {
            RegValue::Int(n) => Some(*n),
            RegValue::Str(s) => s.trim().parse().ok(),
            RegValue::Other(_) => None,
        }
    }
}

/// One key with its values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegKey {
    /// Full path as reg.exe prints it (`HKEY_LOCAL_MACHINE\SOFTWARE\…`).
    pub path: String,
    pub values: BTreeMap<String, RegValue>,
}

impl RegKey {
    /// The last path component.
    pub(crate) fn name(&self) -> &str {
        self.path.rsplit('\\').next().unwrap_or(&self.path)
    }

    pub(crate) fn str(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .and_then(RegValue::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    }

    pub(crate) fn int(&self, name: &str) -> Option<u64> {
        self.values.get(name).and_then(RegValue::as_int)
    }
}

pub(crate) fn parse(out: &str) -> Vec<RegKey> {
    let mut keys: Vec<RegKey> = Vec::new();
    for line in out.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with("HKEY_") {
            keys.push(RegKey {
                path: line.trim().to_string(),
                values: BTreeMap::new(),
            });
            continue;
        }
        let Some(body) = line.strip_prefix("    ") else {
            continue;
        };
        let Some(type_at) = body.find("    REG_") else {
            continue;
        };
        let name = body[..type_at].trim().to_string();
        let rest = &body[type_at + 4..];
        let (ty, data) = match rest.find("    ") {
            Some(i) => (&rest[..i], &rest[i + 4..]),
            None => (rest.trim_end(), ""),
        };
        let value = match ty {
            "REG_SZ" | "REG_EXPAND_SZ" | "REG_MULTI_SZ" => RegValue::Str(data.to_string()),
            "REG_DWORD" | "REG_QWORD" => {
                match u64::from_str_radix(data.trim().trim_start_matches("0x"), 16) {
                    Ok(n) => RegValue::Int(n),
                    Err(_) => RegValue::Other(data.to_string()),
                }
            }
            _ => RegValue::Other(data.to_string()),
        };
        if let Some(key) = keys.last_mut() {
            key.values.insert(name, value);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_values_and_types() {
        let out = "\r\nHKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\7-Zip\r\n\
                   \x20   DisplayName    REG_SZ    7-Zip 23.01 (x64)\r\n\
                   \x20   NoModify    REG_DWORD    0x1\r\n\
                   \x20   InstallLocation    REG_SZ    \r\n\
                   \x20   Blob    REG_BINARY    0A0B\r\n\
                   \r\n\
                   HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows\\CurrentVersion\\Uninstall\\Empty\r\n";
        let keys = parse(out);
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].name(), "7-Zip");
        assert_eq!(keys[0].str("DisplayName"), Some("7-Zip 23.01 (x64)"));
        assert_eq!(keys[0].int("NoModify"), Some(1));
        assert_eq!(keys[0].str("InstallLocation"), None);
        assert_eq!(
            keys[0].values.get("Blob"),
            Some(&RegValue::Other("0A0B".into()))
        );
        assert!(keys[1].values.is_empty());
    }
}

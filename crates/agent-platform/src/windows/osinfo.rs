//! Windows version facts from `HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion`.

use capstan_proto::inventory::OperatingSystem;

use super::regquery::RegKey;

/// Windows 11 keeps "Windows 10" in ProductName; build 22000 is the first Windows 11.
const FIRST_WINDOWS_11_BUILD: u64 = 22_000;

pub(crate) fn from_current_version(key: &RegKey, hostname: String) -> OperatingSystem {
    let build: Option<u64> = key
        .str("CurrentBuildNumber")
        .or_else(|| key.str("CurrentBuild"))
        .and_then(|b| b.parse().ok());
    let ubr = key.int("UBR");
    let major = key.int("CurrentMajorVersionNumber").unwrap_or(10);
    let minor = key.int("CurrentMinorVersionNumber").unwrap_or(0);
    let mut name = key.str("ProductName").map(str::to_string);
    if let (Some(n), Some(b)) = (&name, build)
        && b >= FIRST_WINDOWS_11_BUILD
        && n.starts_with("Windows 10")
    {
        name = Some(n.replacen("Windows 10", "Windows 11", 1));
    }
    let kernel = build.map(|b| match ubr {
        Some(u) => format!("{major}.{minor}.{b}.{u}"),
        None => format!("{major}.{minor}.{b}"),
    });
    OperatingSystem {
        family: "windows".into(),
        name,
        id: Some("windows".into()),
        id_like: Vec::new(),
        version: key
            .str("DisplayVersion")
            .or_else(|| key.str("ReleaseId"))
            .map(str::to_string),
        version_id: build.map(|b| format!("{major}.{minor}.{b}")),
        codename: None,
        build: build.map(|b| match ubr {
            Some(u) => format!("{b}.{u}"),
            None => b.to_string(),
        }),
        kernel,
        architecture: None,
        hostname,
        fqdn: None,
        timezone: None,
        boot_time: None,
        domain: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::regquery;

    #[test]
    fn windows_11_is_named_correctly() {
        let out = "HKEY_LOCAL_MACHINE\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion\r\n\
                   \x20   ProductName    REG_SZ    Windows 10 Pro\r\n\
                   \x20   DisplayVersion    REG_SZ    23H2\r\n\
                   \x20   CurrentBuildNumber    REG_SZ    22631\r\n\
                   \x20   UBR    REG_DWORD    0xb2d\r\n\
                   \x20   CurrentMajorVersionNumber    REG_DWORD    0xa\r\n";
        let key = &regquery::parse(out)[0];
        let os = from_current_version(key, "PC01".into());
        assert_eq!(os.name.as_deref(), Some("Windows 11 Pro"));
        assert_eq!(os.version.as_deref(), Some("23H2"));
        assert_eq!(os.version_id.as_deref(), Some("10.0.22631"));
        assert_eq!(os.build.as_deref(), Some("22631.2861"));
        assert_eq!(os.kernel.as_deref(), Some("10.0.22631.2861"));
    }
}

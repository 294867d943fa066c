//! Windows Defender Firewall state from the registry: per-profile `EnableFirewall` under
//! `HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy`, where a
//! Group Policy value under `HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall` wins.

use capstan_proto::inventory::Firewall;

use super::regquery::RegKey;

pub(crate) const LOCAL_KEY: &str =
    r"HKLM\SYSTEM\CurrentControlSet\Services\SharedAccess\Parameters\FirewallPolicy";
pub(crate) const POLICY_KEY: &str = r"HKLM\SOFTWARE\Policies\Microsoft\WindowsFirewall";

/// Profiles as (label, local key name, policy key name).
const PROFILES: &[(&str, &str, &str)] = &[
    ("domain", "DomainProfile", "DomainProfile"),
    ("private", "StandardProfile", "PrivateProfile"),
    ("public", "PublicProfile", "PublicProfile"),
];

/// The firewall counts as enabled when any profile is on; the detail says which.
pub(crate) fn from_registry(local: &[RegKey], policy: &[RegKey]) -> Firewall {
    let flag = |keys: &[RegKey], name: &str| {
        keys.iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
            .and_then(|k| k.int("EnableFirewall"))
    };
    let mut states = Vec::new();
    let mut any_on = false;
    for (label, local_name, policy_name) in PROFILES {
        let state = flag(policy, policy_name).or_else(|| flag(local, local_name));
        any_on |= state == Some(1);
        let word = match state {
            Some(1) => "on",
            Some(_) => "off",
            None => "unknown",
        };
        states.push(format!("{label}: {word}"));
    }
    Firewall {
        backend: Some("windows".into()),
        enabled: any_on,
        rule_count: None,
        detail: Some(states.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::windows::regquery;

    #[test]
    fn policy_overrides_local_profile_state() {
        let local = regquery::parse(
            "HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\DomainProfile\r\n\
             \x20   EnableFirewall    REG_DWORD    0x1\r\n\
             HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\StandardProfile\r\n\
             \x20   EnableFirewall    REG_DWORD    0x1\r\n\
             HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\SharedAccess\\Parameters\\FirewallPolicy\\PublicProfile\r\n\
             \x20   EnableFirewall    REG_DWORD    0x1\r\n",
        );
        let policy = regquery::parse(
            "HKEY_LOCAL_MACHINE\\SOFTWARE\\Policies\\Microsoft\\WindowsFirewall\\DomainProfile\r\n\
             \x20   EnableFirewall    REG_DWORD    0x0\r\n",
        );
        let fw = from_registry(&local, &policy);
        assert!(fw.enabled);
        assert_eq!(
            fw.detail.as_deref(),
            Some("domain: off, private: on, public: on")
        );
        let off = from_registry(&[], &policy);
        assert!(!off.enabled);
        assert_eq!(
            off.detail.as_deref(),
            Some("domain: off, private: unknown, public: unknown")
        );
    }
}

//! Remote Desktop state of a Windows node: `fDenyTSConnections` (0 = connections allowed),
//! where a Group Policy value overrides the local setting, and whether the TermService
//! service runs.

use capstan_proto::inventory::RemoteDesktop;

/// Registry key of the local setting.
pub(crate) const LOCAL_KEY: &str = r"HKLM\SYSTEM\CurrentControlSet\Control\Terminal Server";
/// Registry key of the policy setting, which wins when present.
pub(crate) const POLICY_KEY: &str =
    r"HKLM\SOFTWARE\Policies\Microsoft\Windows NT\Terminal Services";

/// Whether RDP connections are allowed, from the policy and local `fDenyTSConnections`.
pub(crate) fn rdp_enabled(policy_deny: Option<u64>, local_deny: Option<u64>) -> Option<bool> {
    policy_deny.or(local_deny).map(|deny| deny == 0)
}

pub(crate) fn remote_desktop(
    policy_deny: Option<u64>,
    local_deny: Option<u64>,
    service_running: Option<bool>,
) -> RemoteDesktop {
    RemoteDesktop {
        kind: "rdp".into(),
        // Every Windows edition has the RDP server component (Home only lacks the licence to
        // accept connections, which fDenyTSConnections then reflects).
        installed: true,
        enabled: rdp_enabled(policy_deny, local_deny),
        running: service_running,
    }
}

/// `sc query TermService` prints `STATE : 4  RUNNING`.
pub(crate) fn service_running(sc_query: &str) -> Option<bool> {
    let state = sc_query
        .lines()
        .find(|l| l.trim_start().starts_with("STATE"))?;
    let code = state.split(':').nth(1)?.split_whitespace().next()?;
    Some(code == "4")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_flag_and_policy_override() {
        assert_eq!(rdp_enabled(None, Some(0)), Some(true));
        assert_eq!(rdp_enabled(None, Some(1)), Some(false));
        assert_eq!(rdp_enabled(Some(1), Some(0)), Some(false));
        assert_eq!(rdp_enabled(None, None), None);
        let rd = remote_desktop(None, Some(0), Some(true));
        assert_eq!(
            (rd.kind.as_str(), rd.enabled, rd.running),
            ("rdp", Some(true), Some(true))
        );
    }

    #[test]
    fn sc_query_state() {
        let out = "\r\nSERVICE_NAME: TermService\r\n        TYPE               : 30  WIN32\r\n        STATE              : 4  RUNNING\r\n";
        assert_eq!(service_running(out), Some(true));
        assert_eq!(
            service_running("        STATE              : 1  STOPPED\r\n"),
            Some(false)
        );
        assert_eq!(service_running("[SC] OpenService FAILED 1060"), None);
    }
}

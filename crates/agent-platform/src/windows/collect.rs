//! The Windows OS calls behind the portable parsers of this module. It runs only on
//! Windows (other platforms compile it in tests, to keep it type-checked). Every call is an
//! external program run through [`crate::command`] (timeout, capped output): `reg.exe query`
//! for the registry, `net.exe localgroup`, `sc.exe query`, `tzutil.exe`, and PowerShell's
//! `Get-CimInstance` for the WMI computer-system record. Hardware, virtualization and network
//! collectors are not implemented on Windows yet and report so in `collectors`.

use std::time::Duration;

use capstan_proto::inventory::{
    CollectorStatus, InventoryDocument, OperatingSystem, Security, SoftwarePackage,
};

use super::regquery::{self, RegKey};
use super::{domain, firewall, localgroup, osinfo, rdp, uninstall};
use crate::{CollectOptions, IdentityMaterial, command, command_timeout, run_collector};

const UNINSTALL_64: &str = r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall";
const UNINSTALL_32: &str = r"HKLM\SOFTWARE\WOW6432Node\Microsoft\Windows\CurrentVersion\Uninstall";
const CURRENT_VERSION: &str = r"HKLM\SOFTWARE\Microsoft\Windows NT\CurrentVersion";
const GP_MACHINE_STATE: &str =
    r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Group Policy\State\Machine";
/// The built-in Administrators group, whose name is localised.
const ADMINISTRATORS_SID: &str = "S-1-5-32-544";

pub(crate) async fn collect(opts: &CollectOptions, doc: &mut InventoryDocument) {
    let t = opts.collector_timeout;
    let ct = command_timeout(opts);
    let (os, sw, sec) = tokio::join!(
        run_collector("os", t, async move { os(ct).await }),
        run_collector("software", t, async move { software(ct).await }),
        run_collector("security", t, async move { Ok(security(ct).await) }),
    );
    doc.os = os.0;
    doc.software = sw.0;
    doc.security = sec.0;
    doc.collectors = vec![os.1, sw.1, sec.1];
    for name in ["hardware", "virtualization", "network"] {
        doc.collectors.push(CollectorStatus {
            name: name.into(),
            ok: false,
            duration_ms: 0,
            error: Some("not implemented on windows".into()),
        });
    }
}

/// `reg query <key> [args]`; a missing key is an error (reg.exe exits 1).
async fn reg_query(key: &str, args: &[&str], timeout: Duration) -> Result<Vec<RegKey>, String> {
    let mut all = vec!["query", key];
    all.extend_from_slice(args);
    let out = command::run_named("reg.exe", &all, timeout)
        .await
        .ok_or_else(|| "reg.exe not found".to_string())?
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!("reg query {key}: exit code {:?}", out.code));
    }
    Ok(regquery::parse(&out.stdout))
}

async fn reg_value(key: &str, value: &str, timeout: Duration) -> Option<regquery::RegValue> {
    let keys = reg_query(key, &["/v", value, "/reg:64"], timeout)
        .await
        .ok()?;
    keys.into_iter().find_map(|mut k| k.values.remove(value))
}

async fn powershell(script: &str, timeout: Duration) -> Option<String> {
    let out = command::run_named(
        "powershell.exe",
        &["-NoProfile", "-NonInteractive", "-Command", script],
        timeout,
    )
    .await?
    .ok()?;
    out.success().then_some(out.stdout)
}

async fn os(timeout: Duration) -> Result<OperatingSystem, String> {
    let keys = reg_query(CURRENT_VERSION, &["/reg:64"], timeout).await?;
    let key = keys
        .first()
        .ok_or_else(|| format!("{CURRENT_VERSION}: no values"))?;
    let mut os = osinfo::from_current_version(key, crate::hostname());
    let arch = std::env::var("PROCESSOR_ARCHITEW6432")
        .or_else(|_| std::env::var("PROCESSOR_ARCHITECTURE"))
        .ok();
    os.architecture = arch.map(|a| match a.as_str() {
        "AMD64" => "x86_64".to_string(),
        "ARM64" => "aarch64".to_string(),
        "x86" => "x86".to_string(),
        other => other.to_ascii_lowercase(),
    });
    let cs = powershell(
        "[Console]::OutputEncoding=[Text.Encoding]::UTF8; Get-CimInstance Win32_ComputerSystem | \
         Select-Object PartOfDomain,Domain,Workgroup | ConvertTo-Json",
        timeout,
    )
    .await
    .and_then(|j| domain::parse_computer_system(&j));
    if let Some(cs) = cs {
        let dn = reg_value(GP_MACHINE_STATE, "Distinguished-Name", timeout).await;
        os.domain = Some(domain::membership(
            &cs,
            dn.as_ref().and_then(|v| v.as_str()),
        ));
    }
    if let Some(Ok(out)) = command::run_named("tzutil.exe", &["/g"], timeout).await {
        os.timezone = Some(out.stdout.trim().to_string()).filter(|t| !t.is_empty());
    }
    Ok(os)
}

fn direct_children(
    keys: Vec<RegKey>,
    parent: &str,
    arch: Option<&str>,
) -> Vec<uninstall::UninstallKey> {
    // reg.exe prints the full hive name; compare only the part after the hive.
    let suffix = parent
        .split_once('\\')
        .map(|(_, p)| p)
        .unwrap_or(parent)
        .to_ascii_lowercase();
    keys.into_iter()
        .filter(|k| {
            let lower = k.path.to_ascii_lowercase();
            lower
                .split_once(&format!("{suffix}\\"))
                .is_some_and(|(_, child)| !child.is_empty() && !child.contains('\\'))
        })
        .map(|key| uninstall::UninstallKey {
            key,
            architecture: arch.map(str::to_string),
        })
        .collect()
}

/// Machine-wide Uninstall entries of both registry views. Per-user installations (HKU\<sid>)
/// are not enumerated.
async fn software(timeout: Duration) -> Result<Vec<SoftwarePackage>, String> {
    let native = reg_query(UNINSTALL_64, &["/s", "/reg:64"], timeout).await?;
    let mut keys = direct_children(native, UNINSTALL_64, Some("x64"));
    if let Ok(wow) = reg_query(UNINSTALL_32, &["/s"], timeout).await {
        keys.extend(direct_children(wow, UNINSTALL_32, Some("x86")));
    }
    Ok(uninstall::packages(&keys))
}

async fn security(timeout: Duration) -> Security {
    let group = powershell(
        &format!(
            "(New-Object System.Security.Principal.SecurityIdentifier('{ADMINISTRATORS_SID}'))\
             .Translate([System.Security.Principal.NTAccount]).Value"
        ),
        timeout,
    )
    .await
    .map(|v| v.trim().rsplit('\\').next().unwrap_or("").to_string())
    .filter(|v| !v.is_empty())
    .unwrap_or_else(|| "Administrators".to_string());
    let local_admins = match command::run_named("net.exe", &["localgroup", &group], timeout).await {
        Some(Ok(out)) if out.success() => localgroup::local_admins(&out.stdout, &group),
        _ => Vec::new(),
    };
    let policy_deny = reg_value(rdp::POLICY_KEY, "fDenyTSConnections", timeout)
        .await
        .and_then(|v| v.as_int());
    let local_deny = reg_value(rdp::LOCAL_KEY, "fDenyTSConnections", timeout)
        .await
        .and_then(|v| v.as_int());
    let running = match command::run_named("sc.exe", &["query", "TermService"], timeout).await {
        Some(Ok(out)) => rdp::service_running(&out.stdout),
        _ => None,
    };
    let fw_local = reg_query(firewall::LOCAL_KEY, &["/s", "/reg:64"], timeout)
        .await
        .unwrap_or_default();
    let fw_policy = reg_query(firewall::POLICY_KEY, &["/s", "/reg:64"], timeout)
        .await
        .unwrap_or_default();
    let mut reasons = Vec::new();
    for (key, reason) in [
        (
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Component Based Servicing\RebootPending",
            "component based servicing",
        ),
        (
            r"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\WindowsUpdate\Auto Update\RebootRequired",
            "windows update",
        ),
    ] {
        if reg_query(key, &["/reg:64"], timeout).await.is_ok() {
            reasons.push(reason.to_string());
        }
    }
    Security {
        local_admins,
        ssh: None,
        remote_desktop: Some(rdp::remote_desktop(policy_deny, local_deny, running)),
        firewall: Some(firewall::from_registry(&fw_local, &fw_policy)),
        pending_reboot: Some(!reasons.is_empty()),
        pending_reboot_reasons: reasons,
        encrypted_volumes: Vec::new(),
    }
}

/// MachineGuid (set at installation) and the SMBIOS UUID Windows records in
/// `HKLM\SYSTEM\HardwareConfig\LastConfig`. Synchronous: uses the blocking runner.
pub(crate) fn identity_material() -> IdentityMaterial {
    let value = |key: &str, name: &str| -> Option<String> {
        let out = command::run_blocking(
            "reg.exe",
            &["query", key, "/v", name, "/reg:64"],
            Duration::from_secs(5),
        )?;
        regquery::parse(&out)
            .into_iter()
            .find_map(|k| k.str(name).map(str::to_string))
    };
    IdentityMaterial {
        machine_id: value(r"HKLM\SOFTWARE\Microsoft\Cryptography", "MachineGuid")
            .map(|g| g.to_ascii_lowercase()),
        hardware_uuid: value(r"HKLM\SYSTEM\HardwareConfig", "LastConfig")
            .map(|u| u.trim_matches(['{', '}']).to_ascii_lowercase())
            .filter(|u| u.chars().any(|c| c != '0' && c != '-' && c != 'f')),
    }
}

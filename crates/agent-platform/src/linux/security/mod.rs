//! Security posture of a Linux node (E1-07/E1-08): local administrators, the SSH server and
//! its root/password settings, xrdp, the firewall, a pending reboot, LUKS volumes.

pub(crate) mod admins;
pub(crate) mod firewall;
pub(crate) mod luks;
pub(crate) mod sshd;

use std::collections::BTreeSet;
use std::time::Duration;

use capstan_proto::inventory::{RemoteDesktop, Security, SshServer};

use crate::command;
use crate::linux::procfs;
use crate::root::Root;

pub(crate) async fn collect(root: &Root, timeout: Duration) -> Security {
    let processes = procfs::process_names(root);
    let local_admins = match (root.read("/etc/passwd"), root.read("/etc/group")) {
        (Ok(p), Ok(g)) => admins::local_admins(&p, &g),
        (Ok(p), Err(_)) => admins::local_admins(&p, ""),
        _ => Vec::new(),
    };
    // The parts that run programs go concurrently, so one slow program costs one timeout.
    let ((pending_reboot, pending_reboot_reasons), firewall, encrypted_volumes) = tokio::join!(
        pending_reboot(root, timeout),
        firewall::detect(root, &processes, timeout),
        luks::detect(root, timeout),
    );
    Security {
        local_admins,
        ssh: Some(ssh(root, &processes)),
        remote_desktop: Some(xrdp(root, &processes)),
        firewall: Some(firewall),
        pending_reboot,
        pending_reboot_reasons,
        encrypted_volumes,
    }
}

fn ssh(root: &Root, processes: &BTreeSet<String>) -> SshServer {
    let installed = ["/usr/sbin/sshd", "/usr/bin/sshd", "/usr/local/sbin/sshd"]
        .iter()
        .any(|p| root.exists(p));
    let settings = if installed {
        sshd::read_config(root)
    } else {
        None
    };
    let effective = settings.map(|s| s.effective());
    SshServer {
        installed,
        enabled: Some(unit_enabled(
            root,
            &["ssh.service", "sshd.service", "ssh.socket", "sshd.socket"],
            &["ssh", "sshd"],
        )),
        running: Some(processes.contains("sshd")),
        permit_root_login: effective.as_ref().map(|(p, _)| p.clone()),
        password_authentication: effective.map(|(_, p)| p),
    }
}

fn xrdp(root: &Root, processes: &BTreeSet<String>) -> RemoteDesktop {
    RemoteDesktop {
        kind: "xrdp".into(),
        installed: root.exists("/usr/sbin/xrdp") || root.exists("/usr/bin/xrdp"),
        enabled: Some(unit_enabled(root, &["xrdp.service"], &["xrdp"])),
        running: Some(processes.contains("xrdp")),
    }
}

/// A unit is enabled when a `*.wants/` directory under /etc/systemd/system links it, or (on
/// SysV-init systems) a start link `/etc/rcN.d/S??name` exists.
pub(crate) fn unit_enabled(root: &Root, units: &[&str], sysv_names: &[&str]) -> bool {
    let systemd = root
        .list("/etc/systemd/system")
        .iter()
        .filter(|d| d.ends_with(".wants"))
        .any(|wants| {
            units
                .iter()
                .any(|u| root.exists(&format!("/etc/systemd/system/{wants}/{u}")))
        });
    systemd
        || (0..=6).any(|level| {
            root.list(&format!("/etc/rc{level}.d")).iter().any(|link| {
                link.strip_prefix('S')
                    .map(|rest| rest.trim_start_matches(|c: char| c.is_ascii_digit()))
                    .is_some_and(|name| sysv_names.contains(&name))
            })
        })
}

/// Debian/Ubuntu packages touch /run/reboot-required (and list themselves in
/// /run/reboot-required.pkgs); RHEL's `needs-restarting -r` exits 1 when a reboot is needed.
/// On other systems with no such mechanism the answer is unknown.
async fn pending_reboot(root: &Root, timeout: Duration) -> (Option<bool>, Vec<String>) {
    if root.exists("/run/reboot-required") {
        let mut reasons: Vec<String> = Vec::new();
        for line in root
            .read("/run/reboot-required.pkgs")
            .unwrap_or_default()
            .lines()
            .map(str::trim)
        {
            if !line.is_empty() && !reasons.iter().any(|r| r == line) {
                reasons.push(line.to_string());
            }
        }
        return (Some(true), reasons);
    }
    if root.is_live()
        && let Some(Ok(out)) = command::run_named("needs-restarting", &["-r"], timeout).await
    {
        return match out.code {
            Some(1) => (Some(true), parse_needs_restarting(&out.stdout)),
            Some(0) => (Some(false), Vec::new()),
            _ => (None, Vec::new()),
        };
    }
    if root.is_dir("/var/lib/dpkg") {
        return (Some(false), Vec::new());
    }
    (None, Vec::new())
}

/// `needs-restarting -r` lists the updated components as `  * kernel` lines.
pub(crate) fn parse_needs_restarting(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("* "))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    #[tokio::test]
    async fn security_section_from_a_debian_server_tree() {
        let tree = Tree::new()
            .file(
                "/etc/passwd",
                "root:x:0:0:root:/root:/bin/bash\nadmin1:x:1000:1000::/home/admin1:/bin/bash\n",
            )
            .file("/etc/group", "root:x:0:\nsudo:x:27:admin1\n")
            .file("/usr/sbin/sshd", "")
            .file("/etc/ssh/sshd_config", "PermitRootLogin no\n")
            .symlink(
                "/etc/systemd/system/multi-user.target.wants/ssh.service",
                "/lib/systemd/system/ssh.service",
            )
            .file("/proc/412/comm", "sshd\n")
            .file("/proc/1/comm", "systemd\n")
            .file("/proc/self/comm", "ignored\n")
            .file("/run/reboot-required", "*** System restart required ***\n")
            .file(
                "/run/reboot-required.pkgs",
                "linux-image-6.1.0-18-amd64\nlibc6\nlibc6\n",
            );
        let s = collect(&tree.root(), Duration::from_secs(1)).await;
        let admins: Vec<_> = s
            .local_admins
            .iter()
            .map(|a| (a.name.as_str(), a.via.as_str()))
            .collect();
        assert_eq!(admins, vec![("root", "uid0"), ("admin1", "group:sudo")]);
        let ssh = s.ssh.unwrap();
        assert_eq!(
            ssh,
            SshServer {
                installed: true,
                enabled: Some(true),
                running: Some(true),
                permit_root_login: Some("no".into()),
                password_authentication: Some(true),
            }
        );
        let rdp = s.remote_desktop.unwrap();
        assert_eq!(
            (rdp.kind.as_str(), rdp.installed, rdp.running),
            ("xrdp", false, Some(false))
        );
        assert_eq!(s.pending_reboot, Some(true));
        assert_eq!(
            s.pending_reboot_reasons,
            vec!["linux-image-6.1.0-18-amd64", "libc6"]
        );
        let fw = s.firewall.unwrap();
        assert_eq!((fw.backend, fw.enabled), (None, false));
    }

    #[test]
    fn sysv_start_links_count_as_enabled() {
        let tree = Tree::new()
            .symlink("/etc/rc2.d/S02ssh", "../init.d/ssh")
            .symlink("/etc/rc2.d/K01xrdp", "../init.d/xrdp");
        assert!(unit_enabled(&tree.root(), &["ssh.service"], &["ssh"]));
        assert!(!unit_enabled(&tree.root(), &["xrdp.service"], &["xrdp"]));
    }

    #[test]
    fn needs_restarting_output() {
        let out = "Core libraries or services have been updated since boot-up:\n  * kernel\n  * systemd\n\n\
                   Reboot is required to fully utilize these updates.\nMore information: https://access.redhat.com/solutions/27943\n";
        assert_eq!(parse_needs_restarting(out), vec!["kernel", "systemd"]);
    }
}

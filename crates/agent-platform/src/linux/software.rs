//! Installed software on Linux (E1-05): dpkg and pacman databases are parsed directly; rpm,
//! snap and flatpak are asked through their command-line tools (bounded by a timeout). A
//! package source that is present but cannot be read fails the whole collector: a partial
//! list would look like mass uninstallation to the server, a missing section does not.

use std::time::Duration;

use capstan_proto::inventory::SoftwarePackage;

use crate::command::{self, CommandOutput};
use crate::root::{Root, unix_seconds};

pub(crate) async fn collect(
    root: &Root,
    timeout: Duration,
) -> Result<Vec<SoftwarePackage>, String> {
    let mut out = Vec::new();
    if root.exists("/var/lib/dpkg/status") {
        out.extend(dpkg(root)?);
    }
    if root.is_dir("/var/lib/pacman/local") {
        out.extend(pacman(root)?);
    }
    // The package tools run concurrently, so one slow tool costs one timeout.
    let use_rpm =
        root.is_live() && rpm_database_present(root) && command::find_program("rpm").is_some();
    let use_flatpak = root.is_live() && command::find_program("flatpak").is_some();
    let (rpm_pkgs, snap_pkgs, flatpak_pkgs) = tokio::join!(
        async move {
            if use_rpm {
                rpm(timeout).await
            } else {
                Ok(Vec::new())
            }
        },
        snap(root, timeout),
        async move {
            if use_flatpak {
                flatpak(timeout).await
            } else {
                Ok(Vec::new())
            }
        },
    );
    out.extend(rpm_pkgs?);
    out.extend(snap_pkgs);
    out.extend(flatpak_pkgs?);
    out.sort_by(|a, b| {
        (&a.source, &a.name, &a.architecture, &a.version).cmp(&(
            &b.source,
            &b.name,
            &b.architecture,
            &b.version,
        ))
    });
    out.dedup();
    Ok(out)
}

/// One `installed` stanza of /var/lib/dpkg/status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DpkgEntry {
    pub name: String,
    pub version: String,
    pub architecture: Option<String>,
    pub maintainer: Option<String>,
}

/// Parses the dpkg status database, keeping the stanzas whose `Status` ends in `installed`
/// (`install ok installed`, `hold ok installed`) — the same set
/// `dpkg-query -W -f='${db:Status-Status}'` reports as installed.
pub(crate) fn parse_dpkg_status(text: &str) -> Vec<DpkgEntry> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut name = None;
        let mut version = None;
        let mut arch = None;
        let mut maintainer = None;
        let mut installed = false;
        for line in stanza.lines() {
            if line.starts_with([' ', '\t']) {
                continue; // continuation of a multi-line field (Description, Conffiles)
            }
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k {
                "Package" => name = Some(v.to_string()),
                "Version" => version = Some(v.to_string()),
                "Architecture" => arch = Some(v.to_string()),
                "Maintainer" => maintainer = Some(strip_email(v)),
                "Status" => installed = v.split_whitespace().nth(2) == Some("installed"),
                _ => {}
            }
        }
        if let (true, Some(name)) = (installed, name)
            && !name.is_empty()
        {
            out.push(DpkgEntry {
                name,
                version: version.unwrap_or_default(),
                architecture: arch,
                maintainer,
            });
        }
    }
    out
}

/// `Jane Doe <jane@example.org>` → `Jane Doe`.
fn strip_email(v: &str) -> String {
    match v.split_once('<') {
        Some((name, _)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => v.trim().to_string(),
    }
}

fn dpkg(root: &Root) -> Result<Vec<SoftwarePackage>, String> {
    let text = root
        .read("/var/lib/dpkg/status")
        .map_err(|e| format!("/var/lib/dpkg/status: {e}"))?;
    Ok(parse_dpkg_status(&text)
        .into_iter()
        .map(|e| {
            // dpkg names the file list `name:arch.list` for Multi-Arch: same packages and
            // `name.list` otherwise; its modification time is the last install/upgrade.
            let install_date = e
                .architecture
                .as_ref()
                .and_then(|a| root.mtime(&format!("/var/lib/dpkg/info/{}:{a}.list", e.name)))
                .or_else(|| root.mtime(&format!("/var/lib/dpkg/info/{}.list", e.name)))
                .and_then(unix_seconds);
            SoftwarePackage {
                name: e.name,
                version: e.version,
                architecture: e.architecture,
                source: "dpkg".into(),
                publisher: e.maintainer,
                install_date,
                product_code: None,
            }
        })
        .collect())
}

/// The rpm tool is installable on Debian without any rpm database; only a database makes
/// the system an rpm system.
fn rpm_database_present(root: &Root) -> bool {
    [
        "/var/lib/rpm/rpmdb.sqlite",
        "/var/lib/rpm/Packages",
        "/var/lib/rpm/Packages.db",
        "/usr/lib/sysimage/rpm/rpmdb.sqlite",
    ]
    .iter()
    .any(|p| root.exists(p))
}

pub(crate) const RPM_QUERYFORMAT: &str =
    "%{NAME}\\t%{EPOCH}\\t%{VERSION}\\t%{RELEASE}\\t%{ARCH}\\t%{INSTALLTIME}\\t%{VENDOR}\\n";

async fn rpm(timeout: Duration) -> Result<Vec<SoftwarePackage>, String> {
    let out = run_checked("rpm", &["-qa", "--queryformat", RPM_QUERYFORMAT], timeout).await?;
    Ok(parse_rpm_query(&out.stdout))
}

/// Parses `rpm -qa --queryformat` output in [`RPM_QUERYFORMAT`]. Version is
/// `[epoch:]version-release`; `(none)` marks absent tags. `gpg-pubkey` entries are imported
/// signing keys, not software, and are skipped.
pub(crate) fn parse_rpm_query(out: &str) -> Vec<SoftwarePackage> {
    let none =
        |v: &str| -> Option<String> { (!v.is_empty() && v != "(none)").then(|| v.to_string()) };
    out.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let [name, epoch, version, release, arch, installtime, vendor] = f.as_slice() else {
                return None;
            };
            if name.is_empty() || *name == "gpg-pubkey" {
                return None;
            }
            let mut v = String::new();
            if let Some(e) = none(epoch) {
                v.push_str(&e);
                v.push(':');
            }
            v.push_str(version);
            if let Some(r) = none(release) {
                v.push('-');
                v.push_str(&r);
            }
            Some(SoftwarePackage {
                name: name.to_string(),
                version: v,
                architecture: none(arch),
                source: "rpm".into(),
                publisher: none(vendor),
                install_date: installtime.parse().ok(),
                product_code: None,
            })
        })
        .collect()
}

fn pacman(root: &Root) -> Result<Vec<SoftwarePackage>, String> {
    let mut out = Vec::new();
    for dir in root.list("/var/lib/pacman/local") {
        if dir == "ALPM_DB_VERSION" {
            continue;
        }
        let path = format!("/var/lib/pacman/local/{dir}/desc");
        if !root.exists(&path) {
            continue;
        }
        let text = root.read(&path).map_err(|e| format!("{path}: {e}"))?;
        out.extend(parse_pacman_desc(&text));
    }
    Ok(out)
}

/// A pacman `desc` file: `%SECTION%` headers each followed by value lines.
pub(crate) fn parse_pacman_desc(text: &str) -> Option<SoftwarePackage> {
    let mut section = "";
    let mut p = SoftwarePackage {
        source: "pacman".into(),
        ..Default::default()
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('%') && line.ends_with('%') && line.len() > 2 {
            section = line;
            continue;
        }
        if line.is_empty() {
            continue;
        }
        match section {
            "%NAME%" if p.name.is_empty() => p.name = line.to_string(),
            "%VERSION%" if p.version.is_empty() => p.version = line.to_string(),
            "%ARCH%" => p.architecture = Some(line.to_string()),
            "%INSTALLDATE%" => p.install_date = line.parse().ok(),
            "%PACKAGER%" => p.publisher = Some(strip_email(line)),
            _ => {}
        }
    }
    (!p.name.is_empty()).then_some(p)
}

/// Snaps from `snap list`; when snapd does not answer, from the mounted snaps' metadata.
async fn snap(root: &Root, timeout: Duration) -> Vec<SoftwarePackage> {
    if root.is_live()
        && let Some(Ok(out)) = command::run_named("snap", &["list"], timeout).await
        && out.success()
    {
        return parse_snap_list(&out.stdout);
    }
    let mut out = Vec::new();
    for name in root.list("/snap") {
        let meta = format!("/snap/{name}/current/meta/snap.yaml");
        let Ok(yaml) = root.read(&meta) else { continue };
        let version = yaml
            .lines()
            .find_map(|l| l.strip_prefix("version:"))
            .map(|v| v.trim().trim_matches(['\'', '"']).to_string())
            .unwrap_or_default();
        out.push(SoftwarePackage {
            name,
            version,
            source: "snap".into(),
            ..Default::default()
        });
    }
    out
}

/// `snap list`: `Name Version Rev Tracking Publisher Notes` columns separated by spaces.
/// Publishers carry a verification mark (`canonical✓`, `starred*`) that is not part of the name.
pub(crate) fn parse_snap_list(out: &str) -> Vec<SoftwarePackage> {
    out.lines()
        .filter(|l| !l.starts_with("Name "))
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 3 {
                return None;
            }
            let publisher = f
                .get(4)
                .map(|p| {
                    p.trim_end_matches(|c: char| !c.is_alphanumeric() && c != '-' && c != '_')
                        .to_string()
                })
                .filter(|p| !p.is_empty() && p != "-");
            Some(SoftwarePackage {
                name: f[0].to_string(),
                version: f[1].to_string(),
                source: "snap".into(),
                publisher,
                ..Default::default()
            })
        })
        .collect()
}

async fn flatpak(timeout: Duration) -> Result<Vec<SoftwarePackage>, String> {
    let out = run_checked(
        "flatpak",
        &["list", "--columns=application,version,branch,arch,origin"],
        timeout,
    )
    .await?;
    Ok(parse_flatpak_list(&out.stdout))
}

/// `flatpak list --columns=application,version,branch,arch,origin` (tab-separated when not on
/// a terminal). Runtimes have no version; their branch (`23.08`) stands in for it. The
/// publisher is the remote the ref came from (`flathub`).
pub(crate) fn parse_flatpak_list(out: &str) -> Vec<SoftwarePackage> {
    out.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').map(str::trim).collect();
            let app = *f.first()?;
            if app.is_empty() || app == "Application ID" || f.len() < 4 {
                return None;
            }
            let version = match (f[1], f[2]) {
                ("", branch) => branch,
                (v, _) => v,
            };
            let opt = |i: usize| f.get(i).filter(|v| !v.is_empty()).map(|v| v.to_string());
            Some(SoftwarePackage {
                name: app.to_string(),
                version: version.to_string(),
                architecture: opt(3),
                source: "flatpak".into(),
                publisher: opt(4),
                ..Default::default()
            })
        })
        .collect()
}

async fn run_checked(
    program: &str,
    args: &[&str],
    timeout: Duration,
) -> Result<CommandOutput, String> {
    let out = command::run_named(program, args, timeout)
        .await
        .ok_or_else(|| format!("{program}: not found"))?
        .map_err(|e| e.to_string())?;
    if !out.success() {
        let err = out.stderr.lines().next().unwrap_or("").trim();
        return Err(format!("{program} exited with {:?}: {err}", out.code));
    }
    Ok(out)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::{Tree, fixture};

    #[test]
    fn dpkg_status_keeps_installed_and_held_packages_only() {
        let text = std::fs::read_to_string(fixture("dpkg/status")).unwrap();
        let names: Vec<_> = parse_dpkg_status(&text)
            .into_iter()
            .map(|e| (e.name, e.version, e.architecture))
            .collect();
        assert_eq!(
            names,
            vec![
                ("bash".into(), "5.2.15-2+b2".into(), Some("amd64".into())),
                (
                    "libc6".into(),
                    "2.36-9+deb12u4".into(),
                    Some("amd64".into())
                ),
                ("libc6".into(), "2.36-9+deb12u4".into(), Some("i386".into())),
                ("vim".into(), "2:9.0.1378-2".into(), Some("amd64".into())),
            ]
        );
    }

    #[test]
    fn dpkg_install_dates_come_from_list_files() {
        let status = std::fs::read_to_string(fixture("dpkg/status")).unwrap();
        let tree = Tree::new()
            .file("/var/lib/dpkg/status", &status)
            .file("/var/lib/dpkg/info/bash.list", "/bin/bash\n")
            .file("/var/lib/dpkg/info/libc6:i386.list", "/lib/i386\n");
        let pkgs = dpkg(&tree.root()).unwrap();
        let date = |n: &str, a: &str| {
            pkgs.iter()
                .find(|p| p.name == n && p.architecture.as_deref() == Some(a))
                .unwrap()
                .install_date
        };
        assert!(date("bash", "amd64").is_some_and(|d| d > 1_600_000_000));
        assert!(date("libc6", "i386").is_some());
        assert_eq!(date("libc6", "amd64"), None);
        assert_eq!(pkgs[0].publisher.as_deref(), Some("Matthias Klose"));
    }

    #[test]
    fn rpm_versions_with_epoch_and_release() {
        let out = "bash\t(none)\t5.1.8\t6.el9_1\tx86_64\t1700000000\tRocky Enterprise Software Foundation\n\
                   openssl-libs\t1\t3.0.7\t24.el9\tx86_64\t1700000100\t(none)\n\
                   gpg-pubkey\t(none)\t350d275d\t6279464b\t(none)\t1700000200\t(none)\n\
                   broken line\n";
        let p = parse_rpm_query(out);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].name.as_str(), p[0].version.as_str()),
            ("bash", "5.1.8-6.el9_1")
        );
        assert_eq!(
            p[0].publisher.as_deref(),
            Some("Rocky Enterprise Software Foundation")
        );
        assert_eq!(p[0].install_date, Some(1_700_000_000));
        assert_eq!(
            (p[1].version.as_str(), p[1].publisher.as_deref()),
            ("1:3.0.7-24.el9", None)
        );
    }

    #[test]
    fn pacman_desc() {
        let desc = "%NAME%\nlinux\n\n%VERSION%\n6.6.1.arch1-1\n\n%BASE%\nlinux\n\n%DESC%\nThe Linux kernel\n\n\
                    %ARCH%\nx86_64\n\n%INSTALLDATE%\n1699900000\n\n%PACKAGER%\nJan Alexander Steffens (heftig) <heftig@archlinux.org>\n";
        let p = parse_pacman_desc(desc).unwrap();
        assert_eq!(
            (
                p.name.as_str(),
                p.version.as_str(),
                p.architecture.as_deref()
            ),
            ("linux", "6.6.1.arch1-1", Some("x86_64"))
        );
        assert_eq!(p.install_date, Some(1_699_900_000));
        assert_eq!(
            p.publisher.as_deref(),
            Some("Jan Alexander Steffens (heftig)")
        );
        assert_eq!(parse_pacman_desc("%DESC%\nnothing\n"), None);
    }

    #[test]
    fn snap_list_output() {
        let out = "Name      Version        Rev    Tracking       Publisher   Notes\n\
                   core22    20231123       1033   latest/stable  canonical✓  base\n\
                   firefox   120.0.1-1      3504   latest/stable  mozilla✓    -\n\
                   hello     2.10           42     latest/edge    -           devmode\n";
        let p = parse_snap_list(out);
        let got: Vec<_> = p
            .iter()
            .map(|p| (p.name.as_str(), p.version.as_str(), p.publisher.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                ("core22", "20231123", Some("canonical")),
                ("firefox", "120.0.1-1", Some("mozilla")),
                ("hello", "2.10", None)
            ]
        );
    }

    #[tokio::test]
    async fn snaps_from_mounted_metadata_when_snapd_is_silent() {
        let tree = Tree::new()
            .file(
                "/snap/lxd/current/meta/snap.yaml",
                "name: lxd\nversion: '5.19'\nsummary: LXD\n",
            )
            .dir("/snap/bin");
        let p = snap(&tree.root(), Duration::from_secs(1)).await;
        assert_eq!(p.len(), 1);
        assert_eq!((p[0].name.as_str(), p[0].version.as_str()), ("lxd", "5.19"));
    }

    #[test]
    fn flatpak_list_output() {
        let out = "org.mozilla.firefox\t121.0\tstable\tx86_64\tflathub\n\
                   org.freedesktop.Platform\t\t23.08\tx86_64\tflathub\n\
                   junk\n";
        let p = parse_flatpak_list(out);
        assert_eq!(p.len(), 2);
        assert_eq!(
            (p[0].version.as_str(), p[0].publisher.as_deref()),
            ("121.0", Some("flathub"))
        );
        assert_eq!(
            (p[1].name.as_str(), p[1].version.as_str()),
            ("org.freedesktop.Platform", "23.08")
        );
    }

    #[test]
    fn unreadable_dpkg_database_fails_instead_of_returning_a_partial_list() {
        let tree = Tree::new().dir("/var/lib/dpkg/status");
        assert!(dpkg(&tree.root()).is_err());
    }
}

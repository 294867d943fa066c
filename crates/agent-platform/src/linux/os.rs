//! Operating-system facts (E1-03): os-release, kernel, architecture, host name and FQDN,
//! time zone and boot time. Domain membership (E1-04) lives in [`super::domain`].

use std::collections::BTreeMap;
use std::time::Duration;

use capstan_proto::inventory::OperatingSystem;

use crate::root::Root;

/// Collects the OS section; `command_timeout` bounds `hostname -f` and `realm list`.
pub(crate) async fn collect(root: &Root, command_timeout: Duration) -> OperatingSystem {
    let release = root
        .read("/etc/os-release")
        .or_else(|_| root.read("/usr/lib/os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let get = |k: &str| release.get(k).filter(|v| !v.is_empty()).cloned();
    let hostname = hostname_at(root);
    let fqdn = fqdn(root, &hostname, command_timeout).await;
    OperatingSystem {
        family: "linux".into(),
        name: get("NAME"),
        id: get("ID"),
        id_like: get("ID_LIKE")
            .map(|v| v.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        version: get("VERSION"),
        version_id: get("VERSION_ID"),
        codename: get("VERSION_CODENAME").or_else(|| get("UBUNTU_CODENAME")),
        build: get("BUILD_ID"),
        kernel: root.read_trimmed("/proc/sys/kernel/osrelease"),
        architecture: architecture(root),
        hostname,
        fqdn,
        timezone: timezone(root),
        boot_time: root
            .read("/proc/stat")
            .ok()
            .and_then(|s| super::procfs::parse_btime(&s)),
        domain: Some(super::domain::detect(root, command_timeout).await),
    }
}

/// Parses os-release(5): `KEY=value` lines whose values follow shell quoting rules.
pub(crate) fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        out.insert(key.to_string(), shell_unquote(value));
    }
    out
}

/// Undoes the shell quoting os-release allows: double quotes with `\"` `\\` `\$` `` \` ``
/// escapes, literal single quotes, and backslash escapes outside quotes. Stops at unquoted
/// whitespace (what follows is not part of the value).
fn shell_unquote(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.trim().chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (None, '"' | '\'') => quote = Some(c),
            (None, '\\') => out.extend(chars.next()),
            (None, c) if c.is_whitespace() => break,
            (Some('\''), '\'') | (Some('"'), '"') => quote = None,
            (Some('"'), '\\') => match chars.next() {
                Some(n @ ('"' | '\\' | '$' | '`')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            (_, c) => out.push(c),
        }
    }
    out
}

/// Machine architecture in the kernel's naming (`x86_64`, `aarch64`, …).
pub(crate) fn architecture(root: &Root) -> Option<String> {
    let raw = if root.is_live() { live_machine() } else { None }
        .or_else(|| root.read_trimmed("/proc/sys/kernel/arch"))?;
    Some(normalise_arch(&raw))
}

#[cfg(unix)]
fn live_machine() -> Option<String> {
    nix::sys::utsname::uname()
        .ok()
        .map(|u| u.machine().to_string_lossy().into_owned())
}

#[cfg(not(unix))]
fn live_machine() -> Option<String> {
    Some(std::env::consts::ARCH.to_string())
}

pub(crate) fn normalise_arch(raw: &str) -> String {
    match raw {
        "amd64" | "x64" => "x86_64".into(),
        "arm64" => "aarch64".into(),
        other => other.to_string(),
    }
}

/// The host name as `hostname` prints it (the kernel's nodename).
pub(crate) fn hostname_at(root: &Root) -> String {
    let live = if root.is_live() {
        live_hostname()
    } else {
        None
    };
    live.or_else(|| root.read_trimmed("/proc/sys/kernel/hostname"))
        .or_else(|| root.read_trimmed("/etc/hostname"))
        .unwrap_or_else(|| "localhost".into())
}

#[cfg(unix)]
fn live_hostname() -> Option<String> {
    let h = nix::unistd::gethostname()
        .ok()?
        .to_string_lossy()
        .trim()
        .to_string();
    (!h.is_empty()).then_some(h)
}

#[cfg(not(unix))]
fn live_hostname() -> Option<String> {
    None
}

/// FQDN: the canonical name /etc/hosts gives the host name, or what `hostname -f` answers
/// (which also asks DNS; bounded by the timeout). A dotted answer is preferred; without one
/// the resolver's undotted canonical name is reported, as `hostname -f` would print it.
async fn fqdn(root: &Root, hostname: &str, timeout: Duration) -> Option<String> {
    if hostname.contains('.') {
        return Some(hostname.to_string());
    }
    let from_hosts = root
        .read("/etc/hosts")
        .ok()
        .and_then(|h| canonical_from_hosts(&h, hostname));
    if from_hosts.as_deref().is_some_and(|n| n.contains('.')) {
        return from_hosts;
    }
    if root.is_live() {
        let timeout = timeout.min(Duration::from_secs(3));
        if let Some(Ok(out)) = crate::command::run_named("hostname", &["-f"], timeout).await
            && out.success()
        {
            let name = out.stdout.trim();
            if is_dns_name(name) {
                return Some(name.to_string());
            }
        }
    }
    from_hosts
}

/// The first name of the first /etc/hosts line that lists `hostname`: that is what the
/// resolver returns as the canonical name.
pub(crate) fn canonical_from_hosts(hosts: &str, hostname: &str) -> Option<String> {
    hosts.lines().find_map(|line| {
        let line = line.split('#').next().unwrap_or("");
        let mut fields = line.split_whitespace();
        let _addr = fields.next()?;
        let names: Vec<&str> = fields.collect();
        names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(hostname))
            .then(|| names.first().map(|n| n.to_string()))
            .flatten()
    })
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

/// Time zone name: /etc/timezone (Debian), else the zoneinfo link of /etc/localtime, else $TZ.
pub(crate) fn timezone(root: &Root) -> Option<String> {
    if let Some(tz) = root.read_trimmed("/etc/timezone") {
        return Some(tz);
    }
    if let Some(target) = root.read_link("/etc/localtime")
        && let Some(tz) = zone_from_link(&target)
    {
        return Some(tz);
    }
    if root.is_live() {
        return std::env::var("TZ")
            .ok()
            .map(|t| t.trim_start_matches(':').to_string())
            .filter(|t| !t.is_empty());
    }
    None
}

/// `/usr/share/zoneinfo/Europe/Berlin` → `Europe/Berlin` (also `zoneinfo/posix/…`).
pub(crate) fn zone_from_link(target: &str) -> Option<String> {
    let (_, zone) = target.rsplit_once("zoneinfo/")?;
    let zone = zone
        .strip_prefix("posix/")
        .or_else(|| zone.strip_prefix("right/"))
        .unwrap_or(zone);
    (!zone.is_empty()).then(|| zone.to_string())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    #[test]
    fn os_release_quoting() {
        let r = parse_os_release(
            "# comment\nNAME=\"Debian GNU/Linux\"\nID=debian\nVERSION='12 (bookworm)'\n\
             PRETTY_NAME=\"A \\\"quoted\\\" \\$name\\\\\"\nID_LIKE=\"rhel centos fedora\"\nBAD LINE\n\
             UNQUOTED=a\\ b\nEMPTY=\n",
        );
        assert_eq!(r["NAME"], "Debian GNU/Linux");
        assert_eq!(r["ID"], "debian");
        assert_eq!(r["VERSION"], "12 (bookworm)");
        assert_eq!(r["PRETTY_NAME"], "A \"quoted\" $name\\");
        assert_eq!(r["ID_LIKE"], "rhel centos fedora");
        assert_eq!(r["UNQUOTED"], "a b");
        assert_eq!(r["EMPTY"], "");
        assert!(!r.contains_key("BAD LINE"));
    }

    #[tokio::test]
    async fn os_section_from_a_rocky_tree() {
        let tree = Tree::new()
            .file(
                "/usr/lib/os-release",
                "NAME=\"Rocky Linux\"\nVERSION=\"9.3 (Blue Onyx)\"\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n\
                 VERSION_ID=\"9.3\"\nBUILD_ID=\"\"\n",
            )
            .file("/proc/sys/kernel/osrelease", "5.14.0-362.8.1.el9_3.x86_64\n")
            .file("/proc/sys/kernel/hostname", "db01\n")
            .file("/proc/sys/kernel/arch", "x86_64\n")
            .file("/proc/stat", "cpu 1 2 3\nbtime 1700000000\n")
            .file("/etc/hosts", "127.0.0.1 localhost\n10.0.0.5 db01.corp.example.com db01 # primary\n")
            .symlink("/etc/localtime", "../usr/share/zoneinfo/Europe/Berlin");
        let os = collect(&tree.root(), Duration::from_secs(1)).await;
        assert_eq!(os.name.as_deref(), Some("Rocky Linux"));
        assert_eq!(os.id.as_deref(), Some("rocky"));
        assert_eq!(os.id_like, vec!["rhel", "centos", "fedora"]);
        assert_eq!(os.version_id.as_deref(), Some("9.3"));
        assert_eq!(os.build, None);
        assert_eq!(os.codename, None);
        assert_eq!(os.kernel.as_deref(), Some("5.14.0-362.8.1.el9_3.x86_64"));
        assert_eq!(os.architecture.as_deref(), Some("x86_64"));
        assert_eq!(os.hostname, "db01");
        assert_eq!(os.fqdn.as_deref(), Some("db01.corp.example.com"));
        assert_eq!(os.timezone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(os.boot_time, Some(1_700_000_000));
        assert_eq!(os.domain.map(|d| d.kind), Some("none".to_string()));
    }

    #[test]
    fn hosts_canonical_name() {
        let hosts = "127.0.0.1 localhost\n127.0.1.1 web1.example.org web1\n";
        assert_eq!(
            canonical_from_hosts(hosts, "web1").as_deref(),
            Some("web1.example.org")
        );
        assert_eq!(
            canonical_from_hosts(hosts, "WEB1.example.org").as_deref(),
            Some("web1.example.org")
        );
        assert_eq!(canonical_from_hosts(hosts, "other"), None);
    }

    #[test]
    fn zone_links() {
        assert_eq!(
            zone_from_link("/usr/share/zoneinfo/Etc/UTC").as_deref(),
            Some("Etc/UTC")
        );
        assert_eq!(
            zone_from_link("../usr/share/zoneinfo/posix/America/New_York").as_deref(),
            Some("America/New_York")
        );
        assert_eq!(zone_from_link("/etc/other"), None);
    }

    #[test]
    fn arch_names() {
        assert_eq!(normalise_arch("arm64"), "aarch64");
        assert_eq!(normalise_arch("x86_64"), "x86_64");
    }
}

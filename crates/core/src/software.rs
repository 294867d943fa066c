//! Pure rules of software packages: what makes a package name and a version spec acceptable,
//! the defaults per installer type (unattended command templates, exit-code meanings), and the
//! checks on a resolved plan carried by a software job. The server validates with these before
//! storing; the agent reads the same defaults, so a version saved without explicit commands
//! installs the same way everywhere.

use capstan_proto::jobs::JobAction;
use capstan_proto::software::{SoftwarePlan, limits};

use crate::jobs::{Problem, problem};

/// A package name: `[a-z0-9][a-z0-9._+-]*`, at most 128 bytes (the shape dpkg, rpm and pacman
/// names share, so a name is safe in any argument position and in a URL path segment).
pub fn is_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= limits::MAX_NAME_BYTES
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'+' | b'-')
        })
}

/// A plain file name for an artifact: no path, no leading dot, nothing Windows forbids, at
/// most 255 bytes. The agent saves downloads under this name, so it must never be a path.
pub fn is_plain_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && !s.chars().any(|c| {
            c.is_control() || matches!(c, '/' | '\\' | ':' | '*' | '?' | '"' | '<' | '>' | '|')
        })
}

/// Problems of a software job action as an operator sent it: a known-good package name, and
/// no plan (the server resolves plans; one sent by a client is refused).
pub fn validate_action(action: &JobAction) -> Vec<Problem> {
    let mut out = Vec::new();
    let (package, version, plan) = match action {
        JobAction::SoftwareInstall {
            package,
            version,
            plan,
            ..
        }
        | JobAction::SoftwareUninstall {
            package,
            version,
            plan,
        } => (package, version, plan),
        _ => return out,
    };
    if !is_package_name(package) {
        out.push(problem(
            "/action/package",
            "a package name is lowercase letters, digits and . _ + - (at most 128 bytes)",
        ));
    }
    if let Some(v) = version
        && (v.is_empty() || v.len() > limits::MAX_VERSION_BYTES || v.chars().any(char::is_control))
    {
        out.push(problem(
            "/action/version",
            "a version is 1 to 128 bytes without control characters",
        ));
    }
    if plan.is_some() {
        out.push(problem(
            "/action/plan",
            "the plan is resolved by the server; send the package and version only",
        ));
    }
    out
}

/// Problems of a resolved plan (checked again by the agent before it acts).
pub fn validate_plan(plan: &SoftwarePlan) -> Vec<Problem> {
    let mut out = Vec::new();
    if plan.steps.is_empty() || plan.steps.len() > limits::MAX_PLAN_STEPS {
        out.push(problem(
            "/action/plan/steps",
            format!("a plan has 1 to {} steps", limits::MAX_PLAN_STEPS),
        ));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Version specs: validation and defaults
// ---------------------------------------------------------------------------------------------

use capstan_proto::jobs::ScriptBody;
use capstan_proto::software::{
    Detection, InstallerType, ManagerPackage, PackageManagerKind, VersionCheck, VersionOp,
    VersionSpec,
};

/// Placeholders a command template may use.
pub const PLACEHOLDERS: [&str; 6] = ["file", "dir", "log", "package", "version", "product_code"];

/// Values for a template's placeholders; absent ones make rendering fail with a clear error.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateValues {
    pub file: Option<String>,
    pub dir: Option<String>,
    pub log: Option<String>,
    pub package: Option<String>,
    pub version: Option<String>,
    pub product_code: Option<String>,
}

impl TemplateValues {
    fn get(&self, name: &str) -> Option<&str> {
        match name {
            "file" => self.file.as_deref(),
            "dir" => self.dir.as_deref(),
            "log" => self.log.as_deref(),
            "package" => self.package.as_deref(),
            "version" => self.version.as_deref(),
            "product_code" => self.product_code.as_deref(),
            _ => None,
        }
    }
}

/// The pieces of one template argument: literal text and placeholder names. `{{` and `}}` are
/// literal braces. Errors name the problem (an unknown placeholder, an unclosed brace).
fn parse_arg(arg: &str) -> Result<Vec<(bool, String)>, String> {
    let mut out: Vec<(bool, String)> = Vec::new();
    let mut lit = String::new();
    let mut chars = arg.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(ch) if name.len() < 32 => name.push(ch),
                        _ => return Err(format!("unclosed placeholder in {arg:?}")),
                    }
                }
                if !PLACEHOLDERS.contains(&name.as_str()) {
                    return Err(format!(
                        "unknown placeholder {{{name}}} (known: {})",
                        PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(" ")
                    ));
                }
                if !lit.is_empty() {
                    out.push((false, std::mem::take(&mut lit)));
                }
                out.push((true, name));
            }
            '}' => return Err(format!("a lone }} in {arg:?} (write }}}} for a brace)")),
            other => lit.push(other),
        }
    }
    if !lit.is_empty() || out.is_empty() {
        out.push((false, lit));
    }
    Ok(out)
}

/// Renders a command template into an argv. Each argument stays one argument whatever the
/// values contain: values are data, never split or interpreted.
pub fn render_template(
    template: &[String],
    values: &TemplateValues,
) -> Result<Vec<String>, String> {
    let mut argv = Vec::with_capacity(template.len());
    for arg in template {
        let mut s = String::new();
        for (is_placeholder, text) in parse_arg(arg)? {
            if is_placeholder {
                let v = values
                    .get(&text)
                    .ok_or_else(|| format!("{{{text}}} has no value for this package"))?;
                s.push_str(v);
            } else {
                s.push_str(&text);
            }
        }
        argv.push(s);
    }
    if argv.first().is_none_or(|p| p.is_empty()) {
        return Err("the command is empty".into());
    }
    Ok(argv)
}

fn check_template(path: &str, t: &[String], out: &mut Vec<Problem>) {
    if t.len() > limits::MAX_COMMAND_ARGS {
        out.push(problem(
            path,
            format!("at most {} arguments", limits::MAX_COMMAND_ARGS),
        ));
    }
    for (i, a) in t.iter().enumerate() {
        if a.len() > limits::MAX_COMMAND_ARG_BYTES || a.contains('\0') {
            out.push(problem(
                format!("{path}/{i}"),
                format!(
                    "an argument is at most {} bytes without NUL",
                    limits::MAX_COMMAND_ARG_BYTES
                ),
            ));
        } else if let Err(e) = parse_arg(a) {
            out.push(problem(format!("{path}/{i}"), e));
        }
    }
    if t.first().is_some_and(|p| p.trim().is_empty()) {
        out.push(problem(format!("{path}/0"), "the program name is empty"));
    }
}

/// A name in a package manager's repositories or database: no leading `-` (it would be read
/// as an option), no whitespace or control characters, bounded.
pub fn is_manager_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= limits::MAX_NAME_BYTES
        && !s.starts_with('-')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn is_version_text(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= limits::MAX_VERSION_BYTES
        && !s.starts_with('-')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `s` is an MSI product code: `{8-4-4-4-12 hex}` (either case).
pub fn is_product_code(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 38 || b[0] != b'{' || b[37] != b'}' {
        return false;
    }
    b[1..37].iter().enumerate().all(|(i, c)| match i {
        8 | 13 | 18 | 23 => *c == b'-',
        _ => c.is_ascii_hexdigit(),
    })
}

fn check_hook(path: &str, s: &ScriptBody, out: &mut Vec<Problem>) {
    if s.body.trim().is_empty() {
        out.push(problem(path, "the script is empty"));
    } else if s.body.len() > capstan_proto::jobs::limits::MAX_SCRIPT_BYTES || s.body.contains('\0')
    {
        out.push(problem(
            path,
            format!(
                "a script is at most {} bytes without NUL",
                capstan_proto::jobs::limits::MAX_SCRIPT_BYTES
            ),
        ));
    }
}

fn check_codes(path: &str, codes: &[i32], out: &mut Vec<Problem>) {
    if codes.len() > limits::MAX_EXIT_CODES {
        out.push(problem(
            path,
            format!("at most {} exit codes", limits::MAX_EXIT_CODES),
        ));
    }
}

/// The default unattended install and uninstall commands of an installer type (empty where
/// there is no sensible default: `.exe` installers differ by vendor).
pub fn default_commands(spec: &VersionSpec) -> (Vec<String>, Vec<String>) {
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match spec.installer_type {
        InstallerType::Deb => (
            v(&["dpkg", "--install", "{file}"]),
            v(&["dpkg", "--remove", "{package}"]),
        ),
        InstallerType::Rpm => (
            v(&["rpm", "--upgrade", "--replacepkgs", "{file}"]),
            v(&["rpm", "--erase", "{package}"]),
        ),
        InstallerType::Pacman => (
            v(&["pacman", "--upgrade", "--noconfirm", "{file}"]),
            v(&["pacman", "--remove", "--noconfirm", "{package}"]),
        ),
        InstallerType::Msi => (
            v(&[
                "msiexec",
                "/i",
                "{file}",
                "/qn",
                "/norestart",
                "/l*v",
                "{log}",
            ]),
            v(&[
                "msiexec",
                "/x",
                "{product_code}",
                "/qn",
                "/norestart",
                "/l*v",
                "{log}",
            ]),
        ),
        InstallerType::Exe | InstallerType::ScriptArchive => (Vec::new(), Vec::new()),
        InstallerType::PackageManager => match &spec.manager_package {
            Some(m) => manager_commands(m),
            None => (Vec::new(), Vec::new()),
        },
    }
}

/// Install and uninstall argv of a package-manager reference. Names and versions were checked
/// by [`is_manager_name`]; each is one argument.
pub fn manager_commands(m: &ManagerPackage) -> (Vec<String>, Vec<String>) {
    let n = m.name.clone();
    let s = |x: &str| x.to_string();
    let pinned = |sep: &str| match &m.version {
        Some(v) => format!("{n}{sep}{v}"),
        None => n.clone(),
    };
    match m.manager {
        PackageManagerKind::Apt => (
            vec![
                s("apt-get"),
                s("install"),
                s("--yes"),
                s("--allow-downgrades"),
                pinned("="),
            ],
            vec![s("apt-get"), s("remove"), s("--yes"), n.clone()],
        ),
        PackageManagerKind::Dnf => (
            vec![s("dnf"), s("install"), s("--assumeyes"), pinned("-")],
            vec![s("dnf"), s("remove"), s("--assumeyes"), n.clone()],
        ),
        PackageManagerKind::Zypper => (
            vec![
                s("zypper"),
                s("--non-interactive"),
                s("install"),
                pinned("="),
            ],
            vec![s("zypper"), s("--non-interactive"), s("remove"), n.clone()],
        ),
        PackageManagerKind::Pacman => (
            vec![
                s("pacman"),
                s("--sync"),
                s("--noconfirm"),
                s("--needed"),
                n.clone(),
            ],
            vec![s("pacman"), s("--remove"), s("--noconfirm"), n.clone()],
        ),
        PackageManagerKind::Winget => {
            let mut i = vec![
                s("winget"),
                s("install"),
                s("--exact"),
                s("--id"),
                n.clone(),
            ];
            if let Some(v) = &m.version {
                i.extend([s("--version"), v.clone()]);
            }
            i.extend([
                s("--silent"),
                s("--accept-package-agreements"),
                s("--accept-source-agreements"),
            ]);
            (
                i,
                vec![
                    s("winget"),
                    s("uninstall"),
                    s("--exact"),
                    s("--id"),
                    n.clone(),
                    s("--silent"),
                ],
            )
        }
        PackageManagerKind::Choco => {
            let mut i = vec![s("choco"), s("install"), n.clone(), s("--yes")];
            if let Some(v) = &m.version {
                i.extend([s("--version"), v.clone()]);
            }
            (i, vec![s("choco"), s("uninstall"), n.clone(), s("--yes")])
        }
    }
}

/// The detection rule a package-manager reference gets when none is given: the node's
/// package database has the package (at exactly the pinned version for dnf/winget/choco
/// pins; apt and zypper pins may be patterns, so only presence is checked).
pub fn manager_detection(m: &ManagerPackage) -> Detection {
    use capstan_proto::software::DetectionManager as D;
    let (manager, exact) = match m.manager {
        PackageManagerKind::Apt => (D::Dpkg, false),
        PackageManagerKind::Dnf => (D::Rpm, false),
        PackageManagerKind::Zypper => (D::Rpm, false),
        PackageManagerKind::Pacman => (D::Pacman, false),
        PackageManagerKind::Winget => (D::Winget, true),
        PackageManagerKind::Choco => (D::Choco, true),
    };
    let version = match (&m.version, exact) {
        (Some(v), true) => Some(VersionCheck {
            op: VersionOp::Eq,
            version: v.clone(),
        }),
        _ => None,
    };
    Detection::Package {
        manager,
        name: m.name.clone(),
        version,
    }
}

/// The exit codes that mean success when a version names none (MSI's 1707: "installation
/// completed successfully").
pub fn default_success_codes(t: InstallerType) -> Vec<i32> {
    if t == InstallerType::Msi {
        vec![0, 1707]
    } else {
        vec![0]
    }
}

/// Fills what a spec leaves to defaults (commands, exit codes), so the stored version shows
/// exactly what runs.
pub fn fill_defaults(spec: &mut VersionSpec) {
    let (install, uninstall) = default_commands(spec);
    if spec.install_command.is_empty() {
        spec.install_command = install;
    }
    if spec.uninstall_command.is_empty() {
        spec.uninstall_command = uninstall;
    }
    let msi = spec.installer_type == InstallerType::Msi;
    if spec.success_exit_codes.is_empty() {
        spec.success_exit_codes = default_success_codes(spec.installer_type);
    }
    if spec.soft_reboot_exit_codes.is_none() {
        spec.soft_reboot_exit_codes = Some(if msi { vec![3010] } else { Vec::new() });
    }
    if spec.hard_reboot_exit_codes.is_none() {
        spec.hard_reboot_exit_codes = Some(if msi { vec![1641] } else { Vec::new() });
    }
}

/// Every problem of a version spec (paths relative to the spec). `detection_problems` checks
/// the detection rule (the detection module's validator).
pub fn validate_version_spec(
    spec: &VersionSpec,
    detection_problems: impl Fn(&Detection) -> Vec<Problem>,
) -> Vec<Problem> {
    let mut out = Vec::new();
    let t = spec.installer_type;
    match (&spec.manager_package, t) {
        (None, InstallerType::PackageManager) => out.push(problem(
            "/manager_package",
            "a package-manager version names the manager and the package",
        )),
        (Some(_), other) if other != InstallerType::PackageManager => out.push(problem(
            "/manager_package",
            "only package-manager versions name a manager package",
        )),
        (Some(m), _) => {
            if !is_manager_name(&m.name) {
                out.push(problem(
                    "/manager_package/name",
                    "a package name without spaces or control characters, not starting with -",
                ));
            }
            if let Some(v) = &m.version
                && !is_version_text(v)
            {
                out.push(problem(
                    "/manager_package/version",
                    "a version without spaces or control characters, not starting with -",
                ));
            }
            if m.manager == PackageManagerKind::Pacman && m.version.is_some() {
                out.push(problem(
                    "/manager_package/version",
                    "pacman installs the repository's version; a pin is not possible (upload the package file instead)",
                ));
            }
        }
        (None, _) => {}
    }
    if let Some(p) = &spec.package_id
        && !is_manager_name(p)
    {
        out.push(problem(
            "/package_id",
            "a package name without spaces or control characters, not starting with -",
        ));
    }
    if let Some(p) = &spec.product_code
        && !is_product_code(p)
    {
        out.push(problem(
            "/product_code",
            "an MSI product code looks like {12345678-ABCD-ABCD-ABCD-1234567890AB}",
        ));
    }
    if matches!(
        t,
        InstallerType::Deb | InstallerType::Rpm | InstallerType::Pacman
    ) && spec.package_id.is_none()
    {
        out.push(problem(
            "/package_id",
            "the name the package database knows is needed to uninstall",
        ));
    }
    check_template("/install_command", &spec.install_command, &mut out);
    check_template("/uninstall_command", &spec.uninstall_command, &mut out);
    let (default_install, _) = default_commands(spec);
    let no_manager = t == InstallerType::PackageManager && spec.manager_package.is_none();
    if spec.install_command.is_empty() && default_install.is_empty() && !no_manager {
        out.push(problem(
            "/install_command",
            format!(
                "{} installers have no default command; give one (e.g. [\"{{file}}\", \"/S\"])",
                t.as_str()
            ),
        ));
    }
    check_codes("/success_exit_codes", &spec.success_exit_codes, &mut out);
    let default_success = default_success_codes(t);
    let success = if spec.success_exit_codes.is_empty() {
        &default_success
    } else {
        &spec.success_exit_codes
    };
    for (path, codes) in [
        ("/soft_reboot_exit_codes", &spec.soft_reboot_exit_codes),
        ("/hard_reboot_exit_codes", &spec.hard_reboot_exit_codes),
    ] {
        if let Some(codes) = codes {
            check_codes(path, codes, &mut out);
            if codes.iter().any(|c| success.contains(c)) {
                out.push(problem(
                    path,
                    "a code cannot mean both plain success and reboot",
                ));
            }
        }
    }
    if spec.timeout_secs == 0 || spec.timeout_secs > 24 * 3600 {
        out.push(problem("/timeout_secs", "between 1 second and 24 hours"));
    }
    if let Some(v) = &spec.requirements.min_os_version
        && !is_version_text(v)
    {
        out.push(problem(
            "/requirements/min_os_version",
            "a dotted version like 12 or 10.0.19045",
        ));
    }
    if spec.requirements.min_free_disk_mb == Some(0) {
        out.push(problem(
            "/requirements/min_free_disk_mb",
            "leave it out instead of 0",
        ));
    }
    if let Some(h) = &spec.pre_install {
        check_hook("/pre_install", h, &mut out);
    }
    if let Some(h) = &spec.post_install {
        check_hook("/post_install", h, &mut out);
    }
    if spec.dependencies.len() > limits::MAX_DEPENDENCIES {
        out.push(problem(
            "/dependencies",
            format!("at most {}", limits::MAX_DEPENDENCIES),
        ));
    }
    for (i, d) in spec.dependencies.iter().enumerate() {
        if !is_package_name(&d.package) {
            out.push(problem(
                format!("/dependencies/{i}/package"),
                "not a package name",
            ));
        }
        if let Some(v) = &d.version
            && !is_version_text(v)
        {
            out.push(problem(
                format!("/dependencies/{i}/version"),
                "not a version",
            ));
        }
    }
    if spec.supersedes.len() > limits::MAX_SUPERSEDES {
        out.push(problem(
            "/supersedes",
            format!("at most {}", limits::MAX_SUPERSEDES),
        ));
    }
    for (i, s) in spec.supersedes.iter().enumerate() {
        if !is_package_name(&s.package) {
            out.push(problem(
                format!("/supersedes/{i}/package"),
                "not a package name",
            ));
        }
        if !is_version_text(&s.version) {
            out.push(problem(format!("/supersedes/{i}/version"), "not a version"));
        }
    }
    out.extend(
        detection_problems(&spec.detection)
            .into_iter()
            .map(|mut p| {
                p.path = format!("/detection{}", p.path);
                p
            }),
    );
    out
}

/// The scheme a version string is compared by: its installer's (or package manager's) own.
pub fn version_scheme(spec: &VersionSpec) -> crate::version::Scheme {
    use crate::version::Scheme;
    let manager = spec.manager_package.as_ref().map(|m| m.manager);
    match (spec.installer_type, manager) {
        (InstallerType::Deb, _)
        | (InstallerType::PackageManager, Some(PackageManagerKind::Apt)) => Scheme::Dpkg,
        (InstallerType::Rpm, _)
        | (
            InstallerType::PackageManager,
            Some(PackageManagerKind::Dnf | PackageManagerKind::Zypper),
        ) => Scheme::Rpm,
        (InstallerType::Pacman, _)
        | (InstallerType::PackageManager, Some(PackageManagerKind::Pacman)) => Scheme::Pacman,
        (InstallerType::Msi | InstallerType::Exe, _)
        | (
            InstallerType::PackageManager,
            Some(PackageManagerKind::Winget | PackageManagerKind::Choco),
        ) => Scheme::Windows,
        _ => Scheme::Semver,
    }
}

/// "Latest": the index of the highest of a package's versions, compared by the scheme of the
/// first (the most recently created) — not simply the newest upload, so re-uploading an old
/// version never downgrades anyone. Ties keep the earlier entry.
pub fn latest_index(versions: &[(&str, &VersionSpec)]) -> Option<usize> {
    let scheme = version_scheme(versions.first()?.1);
    let mut best = 0;
    for (i, (v, _)) in versions.iter().enumerate().skip(1) {
        if crate::version::compare(scheme, v, versions[best].0) == std::cmp::Ordering::Greater {
            best = i;
        }
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::software::{ManagerPackage, PackageManagerKind as M};

    fn s(xs: &[&str]) -> Vec<String> {
        xs.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn templates_replace_placeholders_inside_arguments_and_never_split_values() {
        let v = TemplateValues {
            file: Some("/tmp/a b/$(reboot);x.msi".into()),
            log: Some("/tmp/l.log".into()),
            product_code: Some("{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}".into()),
            ..Default::default()
        };
        type Case<'a> = (&'a [&'a str], Result<&'a [&'a str], &'a str>);
        let cases: &[Case] = &[
            (
                &["msiexec", "/i", "{file}", "/l*v", "{log}"],
                Ok(&[
                    "msiexec",
                    "/i",
                    "/tmp/a b/$(reboot);x.msi",
                    "/l*v",
                    "/tmp/l.log",
                ]),
            ),
            (&["x", "--log={log}"], Ok(&["x", "--log=/tmp/l.log"])),
            (&["x", "{{literal}}", "}}"], Ok(&["x", "{literal}", "}"])),
            (
                &["x", "{product_code}"],
                Ok(&["x", "{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}"]),
            ),
            (&["x", "{dir}"], Err("{dir} has no value")),
            (&["x", "{nope}"], Err("unknown placeholder {nope}")),
            (&["x", "{file"], Err("unclosed placeholder")),
            (&["x", "a}b"], Err("a lone }")),
            (&[""], Err("the command is empty")),
            (&[], Err("the command is empty")),
        ];
        for (t, want) in cases {
            let got = render_template(&s(t), &v);
            match want {
                Ok(w) => assert_eq!(got, Ok(s(w)), "{t:?}"),
                Err(e) => {
                    let err = got.expect_err(&format!("{t:?} must fail"));
                    assert!(err.contains(e), "{t:?}: {err}");
                }
            }
        }
    }

    #[test]
    fn manager_commands_pin_versions_in_each_managers_syntax() {
        let m = |manager, version: Option<&str>| ManagerPackage {
            manager,
            name: "nginx".into(),
            version: version.map(str::to_string),
        };
        let cases = [
            (
                m(M::Apt, Some("1.22*")),
                "apt-get install --yes --allow-downgrades nginx=1.22*",
            ),
            (
                m(M::Dnf, Some("1.22.1-1.el9")),
                "dnf install --assumeyes nginx-1.22.1-1.el9",
            ),
            (m(M::Zypper, None), "zypper --non-interactive install nginx"),
            (
                m(M::Pacman, None),
                "pacman --sync --noconfirm --needed nginx",
            ),
            (
                m(M::Winget, Some("1.2")),
                "winget install --exact --id nginx --version 1.2 --silent --accept-package-agreements --accept-source-agreements",
            ),
            (
                m(M::Choco, Some("1.2")),
                "choco install nginx --yes --version 1.2",
            ),
        ];
        for (pkg, want) in cases {
            assert_eq!(
                manager_commands(&pkg).0.join(" "),
                want,
                "{:?}",
                pkg.manager
            );
        }
        // Only exact pins become exact version checks.
        let d = manager_detection(&m(M::Apt, Some("1.22*")));
        assert!(
            matches!(d, Detection::Package { version: None, .. }),
            "{d:?}"
        );
        let d = manager_detection(&m(M::Choco, Some("1.2")));
        assert!(
            matches!(
                d,
                Detection::Package {
                    version: Some(_),
                    ..
                }
            ),
            "{d:?}"
        );
    }

    fn spec(t: InstallerType) -> VersionSpec {
        serde_json::from_value(serde_json::json!({
            "installer_type": t,
            "detection": {"type": "file_exists", "path": "/x"}
        }))
        .unwrap()
    }

    #[test]
    fn defaults_fill_commands_and_exit_code_meanings_per_installer_type() {
        let mut msi = spec(InstallerType::Msi);
        fill_defaults(&mut msi);
        assert_eq!(msi.success_exit_codes, [0, 1707]);
        assert_eq!(msi.soft_reboot_exit_codes, Some(vec![3010]));
        assert_eq!(msi.hard_reboot_exit_codes, Some(vec![1641]));
        assert_eq!(msi.uninstall_command[2], "{product_code}");
        let mut deb = spec(InstallerType::Deb);
        fill_defaults(&mut deb);
        assert_eq!(deb.install_command, s(&["dpkg", "--install", "{file}"]));
        assert_eq!(deb.success_exit_codes, [0]);
        assert_eq!(deb.soft_reboot_exit_codes, Some(vec![]));
        // Explicit choices stay.
        let mut custom = spec(InstallerType::Exe);
        custom.install_command = s(&["{file}", "/S"]);
        custom.success_exit_codes = vec![0, 2];
        fill_defaults(&mut custom);
        assert_eq!(custom.install_command, s(&["{file}", "/S"]));
        assert_eq!(custom.success_exit_codes, [0, 2]);
        assert!(
            custom.uninstall_command.is_empty(),
            "no guessed uninstaller for .exe"
        );
    }

    #[test]
    fn version_specs_are_checked_with_paths() {
        let none = |_: &Detection| Vec::new();
        let paths = |sp: &VersionSpec| -> Vec<String> {
            validate_version_spec(sp, none)
                .into_iter()
                .map(|p| p.path)
                .collect()
        };
        let mut deb = spec(InstallerType::Deb);
        assert_eq!(paths(&deb), ["/package_id"]);
        deb.package_id = Some("hello".into());
        assert_eq!(paths(&deb), Vec::<String>::new());
        deb.package_id = Some("-oops".into());
        deb.soft_reboot_exit_codes = Some(vec![0]);
        deb.timeout_secs = 0;
        deb.dependencies = vec![capstan_proto::software::Dependency {
            package: "Bad Name".into(),
            version: None,
        }];
        assert_eq!(
            paths(&deb),
            [
                "/package_id",
                "/soft_reboot_exit_codes",
                "/timeout_secs",
                "/dependencies/0/package"
            ]
        );
        assert_eq!(paths(&spec(InstallerType::Exe)), ["/install_command"]);
        let mut pm = spec(InstallerType::PackageManager);
        assert_eq!(paths(&pm), ["/manager_package"]);
        pm.manager_package = Some(ManagerPackage {
            manager: M::Pacman,
            name: "x".into(),
            version: Some("1".into()),
        });
        assert_eq!(
            paths(&pm),
            ["/manager_package/version"],
            "pacman cannot pin"
        );
        let mut msi = spec(InstallerType::Msi);
        msi.product_code = Some("{not-a-guid}".into());
        assert_eq!(paths(&msi), ["/product_code"]);
        msi.product_code = Some("{aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee}".into());
        assert_eq!(paths(&msi), Vec::<String>::new());
    }

    #[test]
    fn package_names_are_safe_in_any_position() {
        for good in ["nginx", "7zip", "lib.so+x_1-2"] {
            assert!(is_package_name(good), "{good}");
        }
        for bad in [
            "",
            "-x",
            ".x",
            "Nginx",
            "a b",
            "a/b",
            "$(x)",
            "a;b",
            &"a".repeat(129),
        ] {
            assert!(!is_package_name(bad), "{bad}");
        }
    }

    #[test]
    fn latest_is_the_highest_version_not_the_newest_upload() {
        let deb = spec(InstallerType::Deb);
        let v = |s: &'static str| (s, &deb);
        // Uploaded newest first: 1.10 after 1.9 after 1.2~rc1.
        assert_eq!(latest_index(&[v("1.9"), v("1.10"), v("1.2~rc1")]), Some(1));
        assert_eq!(latest_index(&[v("1.0~rc1"), v("1.0")]), Some(1));
        assert_eq!(latest_index(&[v("2:0.1"), v("9.9")]), Some(0));
        assert_eq!(latest_index(&[]), None);
        let msi = spec(InstallerType::Msi);
        assert_eq!(
            latest_index(&[("10.0.1", &msi), ("9.99.99", &msi), ("10.0.1.1", &msi)]),
            Some(2)
        );
    }
}

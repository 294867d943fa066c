//! What `capstan packages …` prints: package and version tables, a version's full description
//! (artifacts, commands, exit codes, requirements, hooks, detection rule as an indented tree),
//! the analysis of an uploaded file, and the upload progress line. Pure functions of the data
//! and the clock, snapshot-tested like `output.rs`; package metadata comes from uploaded files
//! and is untrusted, so every string goes through the sanitising table and key/value helpers.

use std::fmt::Write as _;

use capstan_proto::software::{
    Artifact, CreateVersionRequest, DepotSourceInfo, Detection, DriftReport, PackageInfo,
    RegistryCheck, RegistryHive, SourceStatus, SyncStarted, UploadAnalysis, VersionCheck,
    VersionInfo, VersionOp, VersionSpec,
};

use crate::output::{format_bytes, format_relative, key_values, one, or_dash, table, when};

fn op_text(op: VersionOp) -> &'static str {
    match op {
        VersionOp::Eq => "=",
        VersionOp::Ne => "!=",
        VersionOp::Lt => "<",
        VersionOp::Lte => "<=",
        VersionOp::Gt => ">",
        VersionOp::Gte => ">=",
    }
}

fn check_text(c: &Option<VersionCheck>) -> String {
    c.as_ref()
        .map(|c| format!(" {} {}", op_text(c.op), c.version))
        .unwrap_or_default()
}

fn hive_text(h: RegistryHive) -> &'static str {
    match h {
        RegistryHive::Hklm => "HKLM",
        RegistryHive::Hkcu => "HKCU",
        RegistryHive::Hkcr => "HKCR",
        RegistryHive::Hku => "HKU",
    }
}

/// A detection rule as indented lines, groups first and their rules below them.
pub fn detection_lines(d: &Detection) -> Vec<String> {
    fn walk(d: &Detection, depth: usize, out: &mut Vec<String>) {
        let pad = "  ".repeat(depth);
        let line = match d {
            Detection::All { rules } | Detection::Any { rules } => {
                let word = if matches!(d, Detection::All { .. }) {
                    "all of"
                } else {
                    "any of"
                };
                out.push(format!("{pad}{word}:"));
                for r in rules {
                    walk(r, depth + 1, out);
                }
                return;
            }
            Detection::MsiProduct {
                product_code,
                version,
            } => format!("msi product {product_code}{}", check_text(version)),
            Detection::Registry {
                hive,
                key,
                value,
                check,
                wow64_32,
            } => {
                let mut s = format!("registry {}\\{key}", hive_text(*hive));
                if let Some(v) = value {
                    let _ = write!(s, " value {v:?}");
                }
                match check {
                    RegistryCheck::Exists => s.push_str(" exists"),
                    RegistryCheck::Equals { data } => {
                        let _ = write!(s, " = {data:?}");
                    }
                    RegistryCheck::Version { op, version } => {
                        let _ = write!(s, " version {} {version}", op_text(*op));
                    }
                }
                if *wow64_32 {
                    s.push_str(" (32-bit view)");
                }
                s
            }
            Detection::FileExists { path } => format!("file {path} exists"),
            Detection::FileVersion { path, check } => format!(
                "file {path} version {} {}",
                op_text(check.op),
                check.version
            ),
            Detection::FileSha256 { path, sha256 } => format!("file {path} has SHA-256 {sha256}"),
            Detection::ServiceExists { name } => format!("service {name} exists"),
            Detection::ServiceRunning { name } => format!("service {name} is running"),
            Detection::Package {
                manager,
                name,
                version,
            } => format!("{} package {name}{}", manager.as_str(), check_text(version)),
            Detection::Script {
                interpreter,
                body,
                timeout_secs,
            } => format!(
                "{} script, {} line(s), timeout {timeout_secs}s: detected when it exits 0 and prints something",
                interpreter.as_str(),
                body.lines().count()
            ),
        };
        out.push(format!("{pad}{line}"));
    }
    let mut out = Vec::new();
    walk(d, 0, &mut out);
    out
}

/// An argv as a shell would need it quoted (display only: agents never use a shell).
fn argv_text(argv: &[String]) -> String {
    argv.iter()
        .map(|w| {
            let plain = !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,{}".contains(c));
            if plain {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn codes(list: &[i32]) -> String {
    list.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn platforms(artifacts: &[Artifact]) -> String {
    if artifacts.is_empty() {
        return "-".into();
    }
    artifacts
        .iter()
        .map(|a| format!("{}/{}", a.platform.as_str(), a.arch.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn artifact_line(a: &Artifact) -> String {
    format!(
        "{}/{}  {}  {}  sha256:{}",
        a.platform.as_str(),
        a.arch.as_str(),
        a.file_name,
        format_bytes(a.size),
        a.sha256
    )
}

/// `capstan packages list` as a table.
pub fn packages_table(items: &[PackageInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No packages.\n".into();
    }
    let rows = items
        .iter()
        .map(|p| {
            vec![
                p.name.clone(),
                p.display_name.clone(),
                or_dash(p.publisher.as_deref()),
                p.version_count.to_string(),
                or_dash(p.latest_version.as_deref()),
                format_relative(Some(p.updated_at_ms), now_ms),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "DISPLAY NAME",
            "PUBLISHER",
            "VERSIONS",
            "LATEST",
            "UPDATED",
        ],
        rows,
    )
}

/// `capstan packages show`.
pub fn package_detail(p: &PackageInfo, now_ms: i64) -> String {
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("Name", one(&p.name)),
        ("Display name", one(&p.display_name)),
        ("ID", one(&p.id)),
        ("Publisher", one(or_dash(p.publisher.as_deref()))),
    ];
    if let Some(d) = p.description.as_deref().filter(|d| !d.is_empty()) {
        rows.push(("Description", d.lines().map(str::to_string).collect()));
    }
    rows.push((
        "Versions",
        one(match &p.latest_version {
            Some(latest) => format!("{} (latest {latest})", p.version_count),
            None => p.version_count.to_string(),
        }),
    ));
    rows.push(("Created", one(when(p.created_at_ms, now_ms))));
    rows.push(("Updated", one(when(p.updated_at_ms, now_ms))));
    key_values(&rows)
}

/// `capstan packages versions` as a table (newest first, as the server lists them).
pub fn versions_table(items: &[VersionInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No versions.\n".into();
    }
    let rows = items
        .iter()
        .map(|v| {
            let size: u64 = v.artifacts.iter().map(|a| a.size).sum();
            vec![
                v.version.clone(),
                v.spec.installer_type.as_str().to_string(),
                platforms(&v.artifacts),
                if v.artifacts.is_empty() {
                    "-".into()
                } else {
                    format_bytes(size)
                },
                format_relative(Some(v.created_at_ms), now_ms),
                v.created_by.clone(),
            ]
        })
        .collect();
    table(
        &["VERSION", "TYPE", "PLATFORMS", "SIZE", "CREATED", "BY"],
        rows,
    )
}

/// The rows describing a spec, shared by `version show` and the upload's suggestion.
fn spec_rows(spec: &VersionSpec, rows: &mut Vec<(&'static str, Vec<String>)>) {
    rows.push(("Installer", one(spec.installer_type.as_str())));
    if let Some(m) = &spec.manager_package {
        rows.push((
            "Manager package",
            one(format!(
                "{} {}{}",
                m.manager.as_str(),
                m.name,
                m.version
                    .as_deref()
                    .map(|v| format!(" {v}"))
                    .unwrap_or_default()
            )),
        ));
    }
    if let Some(id) = &spec.package_id {
        rows.push(("Package ID", one(id)));
    }
    if let Some(code) = &spec.product_code {
        rows.push(("Product code", one(code)));
    }
    let default = |argv: &[String]| {
        if argv.is_empty() {
            "(the installer type's default)".to_string()
        } else {
            argv_text(argv)
        }
    };
    rows.push(("Install", one(default(&spec.install_command))));
    rows.push(("Uninstall", one(default(&spec.uninstall_command))));
    let mut exits = Vec::new();
    if !spec.success_exit_codes.is_empty() {
        exits.push(format!("success {}", codes(&spec.success_exit_codes)));
    }
    if let Some(c) = spec
        .soft_reboot_exit_codes
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        exits.push(format!("reboot later {}", codes(c)));
    }
    if let Some(c) = spec
        .hard_reboot_exit_codes
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        exits.push(format!("reboot now {}", codes(c)));
    }
    if !exits.is_empty() {
        rows.push(("Exit codes", one(exits.join("; "))));
    }
    rows.push(("Timeout", one(format!("{}s", spec.timeout_secs))));
    let r = &spec.requirements;
    let mut reqs = Vec::new();
    if !r.os_families.is_empty() {
        reqs.push(
            r.os_families
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>()
                .join(" or "),
        );
    }
    if let Some(v) = &r.min_os_version {
        reqs.push(format!("OS version >= {v}"));
    }
    if let Some(mb) = r.min_free_disk_mb {
        reqs.push(format!("{mb} MiB free"));
    }
    if !reqs.is_empty() {
        rows.push(("Requirements", one(reqs.join(", "))));
    }
    for (label, hook) in [
        ("Pre-install", &spec.pre_install),
        ("Post-install", &spec.post_install),
    ] {
        if let Some(h) = hook {
            rows.push((
                label,
                one(format!(
                    "{} script, {} line(s)",
                    h.interpreter.as_str(),
                    h.body.lines().count()
                )),
            ));
        }
    }
    if !spec.dependencies.is_empty() {
        rows.push((
            "Depends on",
            spec.dependencies
                .iter()
                .map(|d| match &d.version {
                    Some(v) => format!("{}@{v}", d.package),
                    None => format!("{} (newest)", d.package),
                })
                .collect(),
        ));
    }
    if !spec.supersedes.is_empty() {
        rows.push((
            "Supersedes",
            spec.supersedes
                .iter()
                .map(|s| {
                    let how = match s.mode {
                        capstan_proto::software::SupersedeMode::Update => "updated in place",
                        capstan_proto::software::SupersedeMode::UninstallFirst => {
                            "uninstalled first"
                        }
                    };
                    format!("{}@{} ({how})", s.package, s.version)
                })
                .collect(),
        ));
    }
    rows.push(("Detection", detection_lines(&spec.detection)));
}

/// `capstan packages version show`.
pub fn version_detail(v: &VersionInfo, now_ms: i64) -> String {
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("Package", one(&v.package)),
        ("Version", one(&v.version)),
        ("ID", one(&v.id)),
    ];
    rows.push((
        "Artifacts",
        if v.artifacts.is_empty() {
            one("none (the node's package manager installs it)")
        } else {
            v.artifacts.iter().map(artifact_line).collect()
        },
    ));
    spec_rows(&v.spec, &mut rows);
    rows.push((
        "Created",
        one(format!(
            "{} by {}",
            when(v.created_at_ms, now_ms),
            v.created_by
        )),
    ));
    key_values(&rows)
}

/// Labels of the metadata fields the parser reports, in the order they are shown.
const METADATA_FIELDS: [(&str, &str); 17] = [
    ("format", "Format"),
    ("name", "Name"),
    ("version", "Version"),
    ("architecture", "Architecture"),
    ("platform", "Platform"),
    ("summary", "Summary"),
    ("vendor", "Vendor"),
    ("license", "License"),
    ("installed_size", "Installed size"),
    ("depends", "Depends"),
    ("product_name", "Product name"),
    ("product_version", "Product version"),
    ("product_code", "Product code"),
    ("upgrade_code", "Upgrade code"),
    ("manufacturer", "Manufacturer"),
    ("file_version", "File version"),
    ("company", "Company"),
];

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn suggestion_rows(s: &CreateVersionRequest, rows: &mut Vec<(&'static str, Vec<String>)>) {
    rows.push(("Version", one(&s.version)));
    rows.push((
        "Artifacts",
        if s.artifacts.is_empty() {
            one("none")
        } else {
            s.artifacts
                .iter()
                .map(|a| {
                    format!(
                        "{}/{}  {}",
                        a.platform.as_str(),
                        a.arch.as_str(),
                        a.file_name
                    )
                })
                .collect()
        },
    ));
    spec_rows(&s.spec, rows);
}

/// `capstan packages upload`: the stored file, what the parser read, and the suggested or
/// created version.
pub fn upload_analysis(a: &UploadAnalysis, now_ms: i64) -> String {
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("File", one(&a.file_name)),
        ("Size", one(format_bytes(a.size))),
        ("SHA-256", one(&a.sha256)),
    ];
    if let Some(err) = &a.parse_error {
        rows.push(("Not parsed", one(err)));
    }
    let mut out = key_values(&rows);
    if let Some(serde_json::Value::Object(meta)) = &a.metadata {
        let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
        for (key, label) in METADATA_FIELDS {
            match meta.get(key) {
                None | Some(serde_json::Value::Null) => {}
                Some(serde_json::Value::Number(n)) if key == "installed_size" => {
                    let text = n.as_u64().map_or_else(|| n.to_string(), format_bytes);
                    rows.push((label, one(text)));
                }
                Some(v) => rows.push((label, one(value_text(v)))),
            }
        }
        // Fields this CLI does not know yet (and the script manifest) as compact JSON.
        for (key, v) in meta {
            if !v.is_null() && !METADATA_FIELDS.iter().any(|(k, _)| k == key) {
                rows.push((key.as_str(), one(value_text(v))));
            }
        }
        if !rows.is_empty() {
            out.push_str("\nRead from the file:\n");
            out.push_str(&indent(&key_values(&rows)));
        }
    }
    match (&a.created, &a.suggested) {
        (Some(v), _) => {
            out.push_str("\nCreated:\n");
            out.push_str(&indent(&version_detail(v, now_ms)));
        }
        (None, Some(s)) => {
            let mut rows: Vec<(&str, Vec<String>)> = Vec::new();
            if let Some(p) = &a.package {
                rows.push(("Package", one(p)));
            }
            suggestion_rows(s, &mut rows);
            out.push_str("\nSuggested version (not created):\n");
            out.push_str(&indent(&key_values(&rows)));
        }
        (None, None) => {}
    }
    out
}

fn indent(text: &str) -> String {
    text.lines().fold(String::new(), |mut acc, l| {
        if l.is_empty() {
            acc.push('\n');
        } else {
            let _ = writeln!(acc, "  {l}");
        }
        acc
    })
}

/// The upload progress line: `Uploading NAME: 12.0 MiB of 40.0 MiB (30%)`, and once every
/// byte is sent, that the server is reading the file.
pub fn upload_progress(name: &str, sent: u64, total: u64) -> String {
    let name = crate::output::sanitize_for_terminal(name);
    if sent >= total {
        return format!(
            "Uploaded {name} ({}); the server is reading it…",
            format_bytes(total)
        );
    }
    let percent = if total == 0 {
        0
    } else {
        (u128::from(sent) * 100 / u128::from(total)) as u64
    };
    format!(
        "Uploading {name}: {} of {} ({percent}%)",
        format_bytes(sent),
        format_bytes(total)
    )
}

fn source_groups(s: &DepotSourceInfo) -> String {
    if s.groups.is_empty() {
        "every device".into()
    } else {
        s.groups
            .iter()
            .map(|g| g.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// `capstan depot sources list` as a table (in the server's order: by priority).
pub fn sources_table(items: &[DepotSourceInfo]) -> String {
    if items.is_empty() {
        return "No depot sources: agents download from the server.\n".into();
    }
    let rows = items
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.kind.as_str().to_string(),
                s.priority.to_string(),
                s.location.clone(),
                if s.exclusive { "yes" } else { "no" }.into(),
                source_groups(s),
                or_dash(s.sync_path.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "KIND",
            "PRIORITY",
            "LOCATION",
            "EXCLUSIVE",
            "SERVES",
            "SYNC PATH",
        ],
        rows,
    )
}

/// A source's settings, as `sources add` and `sources status` show them.
pub fn source_detail(s: &DepotSourceInfo, now_ms: i64) -> String {
    key_values(&source_rows(s, now_ms))
}

fn source_rows(s: &DepotSourceInfo, now_ms: i64) -> Vec<(&'static str, Vec<String>)> {
    vec![
        ("Name", one(&s.name)),
        ("ID", one(&s.id)),
        ("Kind", one(s.kind.as_str())),
        ("Location", one(&s.location)),
        (
            "Sync path",
            one(s
                .sync_path
                .clone()
                .unwrap_or_else(|| "- (the server cannot copy to it)".into())),
        ),
        ("Priority", one(s.priority.to_string())),
        (
            "Exclusive",
            one(if s.exclusive {
                "yes: its devices never fall back to the server"
            } else {
                "no"
            }),
        ),
        ("Serves", one(source_groups(s))),
        ("Updated", one(when(s.updated_at_ms, now_ms))),
    ]
}

/// `capstan depot sources status`: the source, its counts, and every artifact's state there
/// (with the reason of a failed copy under its row).
pub fn source_status(st: &SourceStatus, now_ms: i64) -> String {
    let mut rows = source_rows(&st.source, now_ms);
    rows.push((
        "Artifacts",
        one(format!(
            "{} synced, {} pending, {} failed, {} lacking",
            st.synced, st.pending, st.failed, st.lacking
        )),
    ));
    let mut out = key_values(&rows);
    if st.artifacts.is_empty() {
        out.push_str("\nNo artifacts in the catalogue.\n");
        return out;
    }
    out.push('\n');
    let table_rows = st
        .artifacts
        .iter()
        .map(|a| {
            vec![
                a.package.clone(),
                a.version.clone(),
                format!("{}/{}", a.platform.as_str(), a.arch.as_str()),
                a.file_name.clone(),
                format_bytes(a.size),
                a.state.as_str().to_string(),
                a.updated_at_ms
                    .map_or_else(|| "-".into(), |t| format_relative(Some(t), now_ms)),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PACKAGE", "VERSION", "PLATFORM", "FILE", "SIZE", "STATE", "CHANGED",
        ],
        table_rows,
    ));
    let errors: Vec<(&str, Vec<String>)> = st
        .artifacts
        .iter()
        .filter_map(|a| {
            a.error.as_ref().map(|e| {
                (
                    "Error",
                    one(format!("{}@{} {}: {e}", a.package, a.version, a.file_name)),
                )
            })
        })
        .collect();
    if !errors.is_empty() {
        out.push('\n');
        out.push_str(&key_values(&errors));
    }
    out
}

/// `capstan depot sources sync` without `--wait`: what was queued.
pub fn sync_started(s: &SyncStarted) -> String {
    let source = crate::output::sanitize_for_terminal(&s.source);
    if s.queued.is_empty() {
        return format!(
            "Nothing to copy: source {source} already holds all {} artifact(s).\n",
            s.already_synced.len()
        );
    }
    format!(
        "Copying {} artifact(s) to source {source} ({} already there). Follow with `capstan depot sources status {source}`.\n",
        s.queued.len(),
        s.already_synced.len()
    )
}

/// `capstan depot drift`: the versions some source lacks.
pub fn drift_table(r: &DriftReport) -> String {
    if r.sources.is_empty() {
        return "No depot sources: agents download from the server.\n".into();
    }
    if r.rows.is_empty() {
        let names: Vec<_> = r
            .sources
            .iter()
            .map(|s| crate::output::sanitize_for_terminal(s))
            .collect();
        return format!("Every source holds every version ({}).\n", names.join(", "));
    }
    let names = |v: &[String]| {
        if v.is_empty() {
            "-".into()
        } else {
            v.join(", ")
        }
    };
    let rows = r
        .rows
        .iter()
        .map(|d| {
            vec![
                d.package.clone(),
                d.version.clone(),
                names(&d.lacking),
                names(&d.complete),
            ]
        })
        .collect();
    table(&["PACKAGE", "VERSION", "LACKING", "COMPLETE"], rows)
}

#[cfg(test)]
mod tests {
    //! Snapshots from real wire JSON in `tests/fixtures` (package and version answers of the
    //! server, and the analysis of an uploaded `.deb` and `.msi`), rendered at a fixed `NOW`.

    use super::*;
    use capstan_proto::software::PackagePage;

    use crate::test_support::{NOW, assert_terminal_safe, fixture};

    #[test]
    fn packages_list_table() {
        let page: PackagePage = fixture("packages_page.json");
        let text = packages_table(&page.items, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn package_show() {
        let page: PackagePage = fixture("packages_page.json");
        let text = package_detail(&page.items[0], NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn versions_table_shows_type_platforms_and_size() {
        let versions: Vec<VersionInfo> = fixture("package_versions.json");
        let text = versions_table(&versions, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn version_show_describes_everything_an_install_does() {
        let versions: Vec<VersionInfo> = fixture("package_versions.json");
        let text: String = versions
            .iter()
            .map(|v| version_detail(v, NOW) + "---\n")
            .collect();
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn upload_analysis_of_a_deb_shows_metadata_and_suggestion() {
        let a: UploadAnalysis = fixture("upload_deb.json");
        let text = upload_analysis(&a, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn upload_analysis_with_create_shows_the_created_version() {
        let a: UploadAnalysis = fixture("upload_msi_created.json");
        let text = upload_analysis(&a, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn upload_analysis_json_is_the_server_answer() {
        let a: UploadAnalysis = fixture("upload_deb.json");
        let text = crate::output::json(&a).unwrap();
        let back: UploadAnalysis = serde_json::from_str(&text).unwrap();
        assert_eq!(back, a);
    }

    #[test]
    fn progress_lines() {
        assert_eq!(
            upload_progress("a.deb", 3 << 20, 10 << 20),
            "Uploading a.deb: 3.0 MiB of 10.0 MiB (30%)"
        );
        assert_eq!(
            upload_progress("a.deb", 0, 10 << 20),
            "Uploading a.deb: 0 B of 10.0 MiB (0%)"
        );
        assert_eq!(
            upload_progress("a\u{1b}[2J.deb", 5, 5),
            "Uploaded a\\x1b[2J.deb (5 B); the server is reading it…"
        );
    }

    #[test]
    fn sources_list_table() {
        let items: Vec<DepotSourceInfo> = fixture("depot_sources.json");
        let text = sources_table(&items);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn source_status_lists_artifacts_and_errors() {
        let st: SourceStatus = fixture("source_status.json");
        let text = source_status(&st, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn drift_report_and_sync_answers() {
        let r: DriftReport = fixture("depot_drift.json");
        let mut text = drift_table(&r);
        text.push_str(&drift_table(&DriftReport {
            sources: r.sources.clone(),
            rows: vec![],
        }));
        text.push_str(&sync_started(&SyncStarted {
            source: "berlin-share".into(),
            queued: vec!["ab".into(), "cd".into()],
            already_synced: vec!["ef".into()],
        }));
        text.push_str(&sync_started(&SyncStarted {
            source: "berlin-share".into(),
            queued: vec![],
            already_synced: vec!["ef".into()],
        }));
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(packages_table(&[], NOW), "No packages.\n");
        assert_eq!(versions_table(&[], NOW), "No versions.\n");
        let none = "No depot sources: agents download from the server.\n";
        assert_eq!(sources_table(&[]), none);
        assert_eq!(
            drift_table(&DriftReport {
                sources: vec![],
                rows: vec![]
            }),
            none
        );
    }
}

//! What the desired-state commands print: assignments, deployments with their progress and
//! status report, the live view and change lines of `deployments watch`, maintenance windows,
//! and a device's software state and history. Pure functions of the data and the clock,
//! snapshot-tested like `output.rs`. Hostnames, details and logs come from agents and are
//! untrusted: they reach the terminal only through the sanitising table and key/value helpers
//! or [`sanitize_for_terminal`].

use std::fmt::Write as _;

use capstan_proto::deploy::{
    AssignmentInfo, DeploymentInfo, DeploymentStatus, DeviceItemState, DeviceSoftwareState, Intent,
    ItemHistoryEntry, ItemIntent, ItemStatus, StatusCounts, TargetKind, Weekday, WindowInfo,
    WindowPolicy, WindowSchedule,
};

use crate::output::{
    format_bytes, format_relative, format_rfc3339, key_values, one, or_dash, sanitize_for_terminal,
    table, when,
};

/// Every status with its count, in the order of a device's way through an item.
pub fn status_counts(c: &StatusCounts) -> [(ItemStatus, u64); 11] {
    [
        (ItemStatus::Planned, c.planned),
        (ItemStatus::Waiting, c.waiting),
        (ItemStatus::Downloading, c.downloading),
        (ItemStatus::Installing, c.installing),
        (ItemStatus::Uninstalling, c.uninstalling),
        (ItemStatus::Installed, c.installed),
        (ItemStatus::RebootPending, c.reboot_pending),
        (ItemStatus::Removed, c.removed),
        (ItemStatus::Available, c.available),
        (ItemStatus::NotApplicable, c.not_applicable),
        (ItemStatus::Failed, c.failed),
    ]
}

/// Whether a device is done with an item: nothing more happens without a new decision.
pub fn is_end_state(s: ItemStatus) -> bool {
    matches!(
        s,
        ItemStatus::Installed
            | ItemStatus::Failed
            | ItemStatus::NotApplicable
            | ItemStatus::Removed
            | ItemStatus::RebootPending
            | ItemStatus::Available
    )
}

/// Devices that are not done yet (planned, waiting or busy).
pub fn not_done(c: &StatusCounts) -> u64 {
    status_counts(c)
        .iter()
        .filter(|(s, _)| !is_end_state(*s))
        .map(|(_, n)| n)
        .sum()
}

/// `3 installed, 1 failed` (statuses without devices left out), or `no devices`.
pub fn counts_text(c: &StatusCounts) -> String {
    let parts: Vec<String> = status_counts(c)
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(s, n)| format!("{n} {}", s.as_str()))
        .collect();
    if parts.is_empty() {
        "no devices".into()
    } else {
        parts.join(", ")
    }
}

/// A status at a glance: `[ok]` done as wanted, `[!!]` failed, `[>>]` busy, `[..]` planned or
/// waiting, `[--]` not applicable, `[  ]` offered and not installed.
pub fn badge(s: ItemStatus) -> &'static str {
    match s {
        ItemStatus::Installed | ItemStatus::Removed | ItemStatus::RebootPending => "[ok]",
        ItemStatus::Failed => "[!!]",
        ItemStatus::Downloading | ItemStatus::Installing | ItemStatus::Uninstalling => "[>>]",
        ItemStatus::Planned | ItemStatus::Waiting => "[..]",
        ItemStatus::NotApplicable => "[--]",
        ItemStatus::Available => "[  ]",
    }
}

/// The badge and status, with download progress: `[>>] downloading 45%`.
fn status_cell(item: &DeviceItemState) -> String {
    let mut s = format!("{} {}", badge(item.status), item.status.as_str());
    if let Some(p) = item.progress.filter(|p| p.total > 0) {
        let pct = p.received.min(p.total).saturating_mul(100) / p.total;
        let _ = write!(s, " {pct}%");
    }
    s
}

fn exit_text(code: Option<i32>) -> String {
    code.map_or_else(|| "-".into(), |c| c.to_string())
}

fn intent_text(i: Intent) -> &'static str {
    match i {
        Intent::Required => "required: installed and kept installed (drift is repaired)",
        Intent::Available => "available: offered, installed when asked for",
        Intent::Uninstall => "uninstall: removed and kept removed",
    }
}

fn desired_text(d: Option<ItemIntent>) -> &'static str {
    match d {
        Some(ItemIntent::Present) => "present",
        Some(ItemIntent::Absent) => "absent",
        Some(ItemIntent::Available) => "available",
        None => "-",
    }
}

/// `group web` or `device web-01`.
pub fn target_text(a: &AssignmentInfo) -> String {
    format!("{} {}", a.target_kind.as_str(), a.target_name)
}

/// The pinned version, or what "latest" is now.
pub fn version_text(a: &AssignmentInfo) -> String {
    match (&a.version, &a.resolved_version) {
        (Some(v), _) => v.clone(),
        (None, Some(r)) => format!("latest (now {r})"),
        (None, None) => "latest (no version yet)".into(),
    }
}

/// What removing the assignment (or its deployment) does on its devices.
pub fn removal_effect(a: &AssignmentInfo) -> String {
    let pkg = &a.package_name;
    if a.intent == Intent::Uninstall {
        format!("devices are no longer kept free of {pkg}; nothing is installed")
    } else if a.leave_installed {
        format!("{pkg} stays installed where it is (leave installed)")
    } else {
        format!("devices it reaches uninstall {pkg} (what Capstan installed for it)")
    }
}

fn removal_column(a: &AssignmentInfo) -> &'static str {
    match (a.intent, a.leave_installed) {
        (Intent::Uninstall, _) => "-",
        (_, true) => "leave installed",
        (_, false) => "uninstall",
    }
}

/// `capstan assignments list`.
pub fn assignments_table(items: &[AssignmentInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No assignments.\n".into();
    }
    let rows = items
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.package_name.clone(),
                version_text(a),
                target_text(a),
                a.intent.as_str().to_string(),
                removal_column(a).to_string(),
                if a.deployment.is_some() {
                    "deployment".into()
                } else {
                    "assignment".into()
                },
                format_relative(Some(a.created_at_ms), now_ms),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "PACKAGE",
            "VERSION",
            "TARGET",
            "INTENT",
            "ON REMOVAL",
            "KIND",
            "CREATED",
        ],
        rows,
    )
}

fn assignment_rows(a: &AssignmentInfo, reach: Option<&str>) -> Vec<(&'static str, Vec<String>)> {
    let mut rows = vec![
        (
            "Package",
            one(format!("{} ({})", a.package_name, a.package_id)),
        ),
        ("Version", one(version_text(a))),
        (
            "Target",
            one(format!("{} ({})", target_text(a), a.target_id)),
        ),
    ];
    if let Some(r) = reach {
        rows.push(("Reaches", one(r)));
    }
    rows.push(("Intent", one(intent_text(a.intent))));
    rows.push(("On removal", one(removal_effect(a))));
    rows
}

/// `capstan assign` and `capstan assignments show`; `reach` says how many devices the target
/// covers when that is known.
pub fn assignment_detail(a: &AssignmentInfo, reach: Option<&str>, now_ms: i64) -> String {
    let mut rows = vec![("ID", one(&a.id))];
    rows.extend(assignment_rows(a, reach));
    if let Some(d) = &a.deployment {
        rows.push((
            "Deployment",
            one(format!("yes: see `capstan deployments show {d}`")),
        ));
    }
    rows.push((
        "Created",
        one(format!(
            "{} by {}",
            when(a.created_at_ms, now_ms),
            a.created_by
        )),
    ));
    key_values(&rows)
}

/// The reach of a group target: `12 device(s) (members of web and its descendant groups)`.
pub fn group_reach(members: u64, group: &str) -> String {
    format!("{members} device(s) now (members of {group} and its descendant groups)")
}

/// `paused`, `starts in 3d` or `active`.
fn state_short(d: &DeploymentInfo, now_ms: i64) -> String {
    if d.paused {
        "paused".into()
    } else if let Some(from) = d.available_from_ms.filter(|t| *t > now_ms) {
        format!("starts {}", format_relative(Some(from), now_ms))
    } else {
        "active".into()
    }
}

fn state_long(d: &DeploymentInfo, now_ms: i64) -> String {
    if d.paused {
        "paused: devices keep what they have until it is resumed".into()
    } else if let Some(from) = d.available_from_ms.filter(|t| *t > now_ms) {
        format!("scheduled: starts {}", when(from, now_ms))
    } else {
        "active".into()
    }
}

fn ended(c: &StatusCounts) -> u64 {
    c.total.saturating_sub(not_done(c))
}

/// `capstan deployments list`.
pub fn deployments_table(items: &[DeploymentInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No deployments.\n".into();
    }
    let rows = items
        .iter()
        .map(|d| {
            vec![
                d.name.clone(),
                d.assignment.package_name.clone(),
                version_text(&d.assignment),
                target_text(&d.assignment),
                d.assignment.intent.as_str().to_string(),
                state_short(d, now_ms),
                d.counts.total.to_string(),
                ended(&d.counts).to_string(),
                d.counts.failed.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME", "PACKAGE", "VERSION", "TARGET", "INTENT", "STATE", "DEVICES", "DONE", "FAILED",
        ],
        rows,
    )
}

/// `10.0 MiB/s`.
pub fn format_rate(bytes_per_sec: u64) -> String {
    format!("{}/s", format_bytes(bytes_per_sec))
}

fn deployment_rows(d: &DeploymentInfo, now_ms: i64) -> Vec<(&'static str, Vec<String>)> {
    let mut rows = vec![("Name", one(&d.name)), ("ID", one(&d.id))];
    if let Some(text) = d.description.as_deref().filter(|t| !t.is_empty()) {
        rows.push(("Description", text.lines().map(str::to_string).collect()));
    }
    rows.extend(assignment_rows(&d.assignment, None));
    rows.push(("State", one(state_long(d, now_ms))));
    rows.push((
        "Available from",
        one(d
            .available_from_ms
            .map_or_else(|| "at once".into(), |t| when(t, now_ms))),
    ));
    rows.push((
        "Deadline",
        one(d.deadline_ms.map_or_else(
            || "none".into(),
            |t| format!("{}; installed as if required from then on", when(t, now_ms)),
        )),
    ));
    rows.push((
        "Windows",
        one(match d.window_policy {
            WindowPolicy::Respect => "respected: installs wait for an open maintenance window",
            WindowPolicy::Ignore => "ignored: installs happen at once",
        }),
    ));
    let n = &d.network;
    rows.push((
        "Download limit",
        one(n.max_bytes_per_sec.map_or_else(
            || "none".into(),
            |b| format!("{} per device", format_rate(b)),
        )),
    ));
    rows.push((
        "Download from",
        one(if n.site_sources_only {
            "depot sources only, never the server"
        } else {
            "depot sources, then the server"
        }),
    ));
    rows.push((
        "Metered links",
        one(if n.skip_metered {
            "wait until the connection is not metered"
        } else {
            "download anyway"
        }),
    ));
    rows
}

/// `capstan deployments show`, `create`, `pause` and `resume`.
pub fn deployment_detail(d: &DeploymentInfo, now_ms: i64) -> String {
    let mut rows = deployment_rows(d, now_ms);
    rows.push((
        "Devices",
        one(format!("{}: {}", d.counts.total, counts_text(&d.counts))),
    ));
    rows.push((
        "Created",
        one(format!(
            "{} by {}",
            when(d.assignment.created_at_ms, now_ms),
            d.assignment.created_by
        )),
    ));
    key_values(&rows)
}

/// Devices that ended as wanted: removed for an uninstall, installed otherwise — as the
/// server counts them for the success rate.
fn succeeded(intent: Intent, c: &StatusCounts) -> u64 {
    if intent == Intent::Uninstall {
        c.removed
    } else {
        c.installed + c.reboot_pending
    }
}

fn success_text(st: &DeploymentStatus) -> String {
    let c = &st.deployment.counts;
    match st.success_rate {
        Some(rate) => {
            let good = succeeded(st.deployment.assignment.intent, c);
            let finished = good + c.failed + c.not_applicable;
            format!(
                "{:.1}% ({good} of {finished} finished device(s))",
                rate * 100.0
            )
        }
        None => "- (no device has finished yet)".into(),
    }
}

fn devices_table(items: &[DeviceItemState], now_ms: i64) -> String {
    let rows = items
        .iter()
        .map(|i| {
            vec![
                i.hostname.clone(),
                i.device_id.clone(),
                status_cell(i),
                or_dash(i.version.as_deref()),
                exit_text(i.exit_code),
                format_relative(Some(i.updated_at_ms), now_ms),
                or_dash(i.detail.as_deref()),
            ]
        })
        .collect();
    table(
        &[
            "HOSTNAME", "DEVICE", "STATUS", "VERSION", "EXIT", "UPDATED", "DETAIL",
        ],
        rows,
    )
}

/// `capstan deployments status`: the deployment, its counts and success rate, failures by
/// exit code, and a page of devices, failed first.
pub fn deployment_status(st: &DeploymentStatus, now_ms: i64) -> String {
    let d = &st.deployment;
    let rows = vec![
        ("Deployment", one(format!("{} ({})", d.name, d.id))),
        (
            "Package",
            one(format!(
                "{} {}",
                d.assignment.package_name,
                version_text(&d.assignment)
            )),
        ),
        ("Target", one(target_text(&d.assignment))),
        ("Intent", one(d.assignment.intent.as_str())),
        ("State", one(state_long(d, now_ms))),
        (
            "Devices",
            one(format!("{}: {}", d.counts.total, counts_text(&d.counts))),
        ),
        ("Success rate", one(success_text(st))),
    ];
    let mut out = key_values(&rows);
    if !st.failures_by_exit_code.is_empty() {
        out.push_str("\nFailures by exit code:\n");
        let rows = st
            .failures_by_exit_code
            .iter()
            .map(|g| {
                vec![
                    g.exit_code.map_or_else(|| "none".into(), |c| c.to_string()),
                    g.devices.to_string(),
                    or_dash(g.example.as_deref()),
                ]
            })
            .collect();
        out.push_str(&table(&["EXIT", "DEVICES", "EXAMPLE"], rows));
    }
    out.push('\n');
    if st.devices.is_empty() {
        out.push_str("No devices yet.\n");
        return out;
    }
    out.push_str(&devices_table(&st.devices, now_ms));
    let shown = st.devices.len() as u64;
    if shown < d.counts.total {
        let _ = writeln!(
            out,
            "Showing {shown} of {} devices, failed first; see more with --limit (up to 1000) or -o json.",
            d.counts.total
        );
    }
    out
}

/// One line of `deployments watch` without a terminal, for a device whose status changed:
/// `web-01: failed 1.26 (exit 100): dpkg error`. `show_id` names the device too, for
/// hostnames several devices share.
pub fn watch_line(i: &DeviceItemState, show_id: bool) -> String {
    let mut s = i.hostname.clone();
    if show_id {
        let _ = write!(s, " [{}]", i.device_id);
    }
    let _ = write!(s, ": {}", i.status.as_str());
    if let Some(v) = &i.version {
        let _ = write!(s, " {v}");
    }
    if let Some(c) = i.exit_code {
        let _ = write!(s, " (exit {c})");
    }
    if let Some(d) = i.detail.as_deref().filter(|d| !d.is_empty()) {
        let _ = write!(s, ": {d}");
    }
    format!("{}\n", sanitize_for_terminal(&s))
}

/// The last line of `deployments watch`.
pub fn watch_summary(st: &DeploymentStatus, complete: bool) -> String {
    let d = &st.deployment;
    let rate = st
        .success_rate
        .map(|r| format!(", success {:.1}%", r * 100.0))
        .unwrap_or_default();
    let text = format!(
        "{}: {} device(s): {} (deployment {}{rate}).",
        if complete { "Done" } else { "Stopped" },
        d.counts.total,
        counts_text(&d.counts),
        d.name
    );
    format!("{}\n", sanitize_for_terminal(&text))
}

/// Cut a line to `width` characters, marking the cut.
fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        return line.to_string();
    }
    let mut s: String = line.chars().take(width.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The live view of `deployments watch` on a terminal: what is deployed where, the counts and
/// success rate, and up to `max_devices` devices that are not done as wanted (failed first,
/// as the server orders them). Every line fits in `width` columns, so redrawing can move the
/// cursor up by the number of lines.
pub fn watch_view(st: &DeploymentStatus, width: usize, max_devices: usize) -> String {
    let d = &st.deployment;
    let a = &d.assignment;
    let mut lines = vec![format!(
        "Deployment {}: {} {} to {}, {}{}",
        d.name,
        a.package_name,
        version_text(a),
        target_text(a),
        a.intent.as_str(),
        if d.paused { " (paused)" } else { "" }
    )];
    // The success rate first: a narrow terminal cuts the end of the line.
    let rate = st
        .success_rate
        .map(|r| format!(", success {:.1}%", r * 100.0))
        .unwrap_or_default();
    lines.push(format!(
        "{} device(s){rate}: {}",
        d.counts.total,
        counts_text(&d.counts)
    ));
    let open: Vec<&DeviceItemState> = st
        .devices
        .iter()
        .filter(|i| i.status == ItemStatus::Failed || !is_end_state(i.status))
        .collect();
    if !open.is_empty() {
        let rows = open
            .iter()
            .take(max_devices)
            .map(|i| {
                vec![
                    i.hostname.clone(),
                    status_cell(i),
                    exit_text(i.exit_code),
                    or_dash(i.detail.as_deref()),
                ]
            })
            .collect();
        for l in table(&["HOSTNAME", "STATUS", "EXIT", "DETAIL"], rows).lines() {
            lines.push(format!("  {l}"));
        }
        let hidden = open.len().saturating_sub(max_devices);
        // Devices beyond the page the server returned: their state is only in the counts.
        let unlisted = d.counts.total.saturating_sub(st.devices.len() as u64);
        match (hidden, unlisted) {
            (0, 0) => {}
            (h, 0) => lines.push(format!("  … and {h} more not done")),
            (h, u) => lines.push(format!(
                "  … and {h} more not done, {u} device(s) not listed"
            )),
        }
    }
    lines.push("Ctrl-C stops watching; the deployment goes on.".into());
    let mut out = String::new();
    for l in lines {
        out.push_str(&fit(&sanitize_for_terminal(&l), width.max(20)));
        out.push('\n');
    }
    out
}

/// `2h`, `1h30m`, `7d`.
pub fn minutes_text(minutes: u32) -> String {
    let (d, h, m) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    let mut s = String::new();
    for (n, unit) in [(d, "d"), (h, "h"), (m, "m")] {
        if n > 0 {
            let _ = write!(s, "{n}{unit}");
        }
    }
    if s.is_empty() { "0m".into() } else { s }
}

fn day_name(d: Weekday) -> &'static str {
    match d {
        Weekday::Mon => "mon",
        Weekday::Tue => "tue",
        Weekday::Wed => "wed",
        Weekday::Thu => "thu",
        Weekday::Fri => "fri",
        Weekday::Sat => "sat",
        Weekday::Sun => "sun",
    }
}

/// Days as typed: runs of three or more consecutive days become ranges (`mon-fri,sun`).
pub fn days_text(days: &[Weekday]) -> String {
    let mut sorted = days.to_vec();
    sorted.sort();
    sorted.dedup();
    if sorted.len() == 7 {
        return "daily".into();
    }
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] as u8 == sorted[j] as u8 + 1 {
            j += 1;
        }
        if j - i >= 2 {
            parts.push(format!("{}-{}", day_name(sorted[i]), day_name(sorted[j])));
        } else {
            parts.extend(sorted[i..=j].iter().map(|d| day_name(*d).to_string()));
        }
        i = j + 1;
    }
    parts.join(",")
}

/// `mon-fri at 22:00 for 2h` or `cron "0 22 * * *" for 2h`.
pub fn schedule_text(s: &WindowSchedule) -> String {
    match s {
        WindowSchedule::Weekly {
            days,
            start,
            duration_minutes,
        } => format!(
            "{} at {start} for {}",
            days_text(days),
            minutes_text(*duration_minutes)
        ),
        WindowSchedule::Cron {
            expression,
            duration_minutes,
        } => format!(
            "cron \"{expression}\" for {}",
            minutes_text(*duration_minutes)
        ),
    }
}

fn next_open_text(w: &WindowInfo, now_ms: i64) -> String {
    match w.next_open_ms {
        Some(t) => when(t, now_ms),
        None if w.timezone == "device" => "per device (each device's own zone)".into(),
        None => "never".into(),
    }
}

fn groups_text(w: &WindowInfo) -> String {
    if w.groups.is_empty() {
        return "-".into();
    }
    w.groups
        .iter()
        .map(|g| g.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `capstan windows list`.
pub fn windows_table(items: &[WindowInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No maintenance windows: required installs on every device may happen at any time.\n"
            .into();
    }
    let rows = items
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                schedule_text(&w.schedule),
                w.timezone.clone(),
                groups_text(w),
                match w.next_open_ms {
                    Some(t) => format_relative(Some(t), now_ms),
                    None if w.timezone == "device" => "per device".into(),
                    None => "never".into(),
                },
            ]
        })
        .collect();
    table(
        &["NAME", "SCHEDULE", "TIME ZONE", "GROUPS", "NEXT OPEN"],
        rows,
    )
}

/// `capstan windows show` and `create`.
pub fn window_detail(w: &WindowInfo, now_ms: i64) -> String {
    let mut rows = vec![("Name", one(&w.name)), ("ID", one(&w.id))];
    if let Some(text) = w.description.as_deref().filter(|t| !t.is_empty()) {
        rows.push(("Description", text.lines().map(str::to_string).collect()));
    }
    rows.push(("Schedule", one(schedule_text(&w.schedule))));
    rows.push((
        "Time zone",
        one(if w.timezone == "device" {
            "device: each device's own zone (UTC when unknown)".to_string()
        } else {
            w.timezone.clone()
        }),
    ));
    rows.push(("Groups", one(groups_text(w))));
    rows.push(("Next open", one(next_open_text(w, now_ms))));
    rows.push(("Created", one(when(w.created_at_ms, now_ms))));
    key_values(&rows)
}

/// An assignment as conflicts name it: `ID (required to group web)`.
fn assignment_ref(state: &DeviceSoftwareState, id: &str) -> String {
    match state.assignments.iter().find(|a| a.id == id) {
        Some(a) => format!("{id} ({} to {})", a.intent.as_str(), target_text(a)),
        None => id.to_string(),
    }
}

/// `capstan devices software`: the manifest revision, every package's status with a badge,
/// the assignments that reach the device, and conflicts with the rule step that decided.
pub fn device_software(state: &DeviceSoftwareState, now_ms: i64) -> String {
    let manifest = if state.revision == 0 {
        "none yet (no assignment reaches the device, or it was not compiled yet)".to_string()
    } else {
        match state.acknowledged_revision {
            Some(a) if a == state.revision => format!("revision {a}, acknowledged by the agent"),
            Some(a) => format!(
                "revision {} (the agent acknowledged revision {a})",
                state.revision
            ),
            None => format!(
                "revision {} (not acknowledged by the agent yet)",
                state.revision
            ),
        }
    };
    let mut out = key_values(&[
        ("Device", one(&state.device_id)),
        ("Manifest", one(manifest)),
    ]);
    out.push('\n');
    if state.items.is_empty() {
        out.push_str("No software items.\n");
    } else {
        let rows = state
            .items
            .iter()
            .map(|i| {
                vec![
                    i.package_name.clone(),
                    or_dash(i.version.as_deref()),
                    desired_text(i.desired).to_string(),
                    status_cell(i),
                    exit_text(i.exit_code),
                    i.drift_repairs.to_string(),
                    format_relative(Some(i.updated_at_ms), now_ms),
                    or_dash(i.detail.as_deref()),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "PACKAGE", "VERSION", "WANTED", "STATUS", "EXIT", "REPAIRS", "UPDATED", "DETAIL",
            ],
            rows,
        ));
    }
    out.push_str("\nAssignments reaching this device:\n");
    if state.assignments.is_empty() {
        out.push_str("none\n");
    } else {
        let rows = state
            .assignments
            .iter()
            .map(|a| {
                vec![
                    a.id.clone(),
                    a.package_name.clone(),
                    version_text(a),
                    a.intent.as_str().to_string(),
                    target_text(a),
                ]
            })
            .collect();
        out.push_str(&table(
            &["ID", "PACKAGE", "VERSION", "INTENT", "TARGET"],
            rows,
        ));
    }
    if !state.conflicts.is_empty() {
        out.push_str("\nConflicts:\n");
        let rows: Vec<(&str, Vec<String>)> = state
            .conflicts
            .iter()
            .map(|c| {
                (
                    "Conflict",
                    vec![
                        format!(
                            "{}: {} wins",
                            c.package_name,
                            assignment_ref(state, &c.winner)
                        ),
                        format!("over {}", assignment_ref(state, &c.loser)),
                        format!("because {}", c.reason),
                    ],
                )
            })
            .collect();
        out.push_str(&key_values(&rows));
    }
    out
}

/// `capstan devices software-history`: status changes, newest first; with `logs`, each
/// change's installer log below the table, indented.
pub fn software_history(entries: &[ItemHistoryEntry], logs: bool) -> String {
    if entries.is_empty() {
        return "No history: the device has not reported on this package.\n".into();
    }
    let rows = entries
        .iter()
        .map(|e| {
            vec![
                format_rfc3339(e.at_ms),
                format!("{} {}", badge(e.status), e.status.as_str()),
                or_dash(e.version.as_deref()),
                exit_text(e.exit_code),
                if e.drift { "repaired" } else { "-" }.to_string(),
                or_dash(e.detail.as_deref()),
            ]
        })
        .collect();
    let mut out = table(
        &["WHEN", "STATUS", "VERSION", "EXIT", "DRIFT", "DETAIL"],
        rows,
    );
    if logs {
        for e in entries {
            let Some(log) = e.log.as_deref().filter(|l| !l.is_empty()) else {
                continue;
            };
            let _ = writeln!(out, "\n{} {}:", format_rfc3339(e.at_ms), e.status.as_str());
            for line in log.lines() {
                let _ = writeln!(out, "    {}", sanitize_for_terminal(line));
            }
        }
    }
    out
}

/// What `capstan devices software-install` says once the server accepted the request.
pub fn install_requested(device: &str, package: &str) -> String {
    let text = format!(
        "Install of {package} requested on device {device}; follow it with `capstan devices software {device}`."
    );
    sanitize_for_terminal(&text).into_owned()
}

/// Whether a target is a group (for the reach line of `assign`).
pub fn is_group(a: &AssignmentInfo) -> bool {
    a.target_kind == TargetKind::Group
}

#[cfg(test)]
mod tests {
    //! Snapshots from wire JSON in `tests/fixtures` (assignments, deployments, a status
    //! report, windows, a device's software state and history, with a hostile hostname and
    //! detail among them), rendered at the fixed `NOW`.

    use super::*;
    use crate::test_support::{NOW, assert_terminal_safe, fixture};

    #[test]
    fn assignments_list_and_show() {
        let items: Vec<AssignmentInfo> = fixture("assignments.json");
        let mut text = assignments_table(&items, NOW);
        text.push_str("---\n");
        text.push_str(&assignment_detail(
            &items[0],
            Some(&group_reach(12, "web")),
            NOW,
        ));
        text.push_str("---\n");
        text.push_str(&assignment_detail(&items[1], None, NOW));
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn removal_effect_depends_on_intent_and_leave_installed() {
        let items: Vec<AssignmentInfo> = fixture("assignments.json");
        let mut a = items[0].clone();
        a.intent = Intent::Required;
        a.leave_installed = false;
        assert_eq!(
            removal_effect(&a),
            "devices it reaches uninstall nginx (what Capstan installed for it)"
        );
        a.leave_installed = true;
        assert_eq!(
            removal_effect(&a),
            "nginx stays installed where it is (leave installed)"
        );
        a.intent = Intent::Uninstall;
        a.leave_installed = false;
        assert!(removal_effect(&a).contains("nothing is installed"));
    }

    #[test]
    fn deployments_list_and_show() {
        let items: Vec<DeploymentInfo> = fixture("deployments.json");
        let mut text = deployments_table(&items, NOW);
        for d in &items {
            text.push_str("---\n");
            text.push_str(&deployment_detail(d, NOW));
        }
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn deployment_status_lists_failures_and_devices_failed_first() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let text = deployment_status(&st, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn status_before_any_device_finished() {
        let mut st: DeploymentStatus = fixture("deployment_status.json");
        st.success_rate = None;
        st.failures_by_exit_code.clear();
        st.devices.clear();
        let text = deployment_status(&st, NOW);
        assert!(
            text.contains("Success rate:  - (no device has finished yet)"),
            "{text}"
        );
        assert!(text.ends_with("\nNo devices yet.\n"), "{text}");
        assert!(!text.contains("Failures by exit code"), "{text}");
    }

    #[test]
    fn status_says_when_devices_were_left_out() {
        let mut st: DeploymentStatus = fixture("deployment_status.json");
        st.devices.truncate(3);
        let text = deployment_status(&st, NOW);
        assert!(
            text.ends_with(
                "Showing 3 of 8 devices, failed first; see more with --limit (up to 1000) or -o json.\n"
            ),
            "{text}"
        );
        let view = watch_view(&st, 200, 2);
        assert!(
            view.contains("  … and 1 more not done, 5 device(s) not listed\n"),
            "{view}"
        );
    }

    #[test]
    fn watch_lines_view_and_summary() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let mut text: String = st.devices.iter().map(|i| watch_line(i, false)).collect();
        text.push_str(&watch_line(&st.devices[0], true));
        text.push_str(&watch_summary(&st, true));
        text.push_str(&watch_summary(&st, false));
        text.push_str("---\n");
        text.push_str(&watch_view(&st, 100, 3));
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn watch_view_fits_the_terminal() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        for width in [20, 40, 73] {
            let view = watch_view(&st, width, 10);
            for line in view.lines() {
                assert!(line.chars().count() <= width, "{width}: {line:?}");
            }
        }
    }

    #[test]
    fn counts_and_end_states() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let c = &st.deployment.counts;
        assert_eq!(
            counts_text(c),
            "1 waiting, 1 downloading, 2 installed, 1 reboot_pending, 1 not_applicable, 2 failed"
        );
        assert_eq!(not_done(c), 2);
        assert_eq!(counts_text(&StatusCounts::default()), "no devices");
        let ends: Vec<&str> = status_counts(c)
            .iter()
            .filter(|(s, _)| is_end_state(*s))
            .map(|(s, _)| s.as_str())
            .collect();
        assert_eq!(
            ends,
            [
                "installed",
                "reboot_pending",
                "removed",
                "available",
                "not_applicable",
                "failed"
            ]
        );
    }

    #[test]
    fn windows_list_and_show() {
        let items: Vec<WindowInfo> = fixture("windows.json");
        let mut text = windows_table(&items, NOW);
        for w in &items {
            text.push_str("---\n");
            text.push_str(&window_detail(w, NOW));
        }
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn schedules_read_like_the_command_line() {
        use Weekday::*;
        for (days, want) in [
            (vec![Mon, Tue], "mon,tue"),
            (vec![Mon, Tue, Wed, Thu, Fri], "mon-fri"),
            (vec![Sun, Mon, Tue, Wed, Sat], "mon-wed,sat,sun"),
            (vec![Mon, Tue, Wed, Thu, Fri, Sat, Sun], "daily"),
            (vec![Fri, Sat, Sun], "fri-sun"),
        ] {
            assert_eq!(days_text(&days), want);
        }
        for (m, want) in [
            (120, "2h"),
            (90, "1h30m"),
            (10_080, "7d"),
            (1_501, "1d1h1m"),
            (5, "5m"),
        ] {
            assert_eq!(minutes_text(m), want);
        }
        assert_eq!(format_rate(10 << 20), "10.0 MiB/s");
        assert_eq!(format_rate(1000), "1000 B/s");
    }

    #[test]
    fn device_software_with_conflicts() {
        let state: DeviceSoftwareState = fixture("device_software.json");
        let text = device_software(&state, NOW);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn software_history_with_logs() {
        let entries: Vec<ItemHistoryEntry> = fixture("software_history.json");
        let text = software_history(&entries, true);
        assert_terminal_safe(&text, &[]);
        insta::assert_snapshot!(text);
        assert!(!software_history(&entries, false).contains("    Setting up"));
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(assignments_table(&[], NOW), "No assignments.\n");
        assert_eq!(deployments_table(&[], NOW), "No deployments.\n");
        assert!(windows_table(&[], NOW).starts_with("No maintenance windows"));
        assert!(software_history(&[], false).starts_with("No history"));
    }

    #[test]
    fn json_output_is_the_server_answer() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let text = crate::output::json(&st).unwrap();
        let back: DeploymentStatus = serde_json::from_str(&text).unwrap();
        assert_eq!(back, st);
    }
}

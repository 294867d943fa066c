//! Everything `capstan` prints on standard output, as pure functions of the data and the current
//! time (`now_ms`, Unix milliseconds) so the output is snapshot-tested. Device data comes from
//! agents and is untrusted: every string that reaches a table goes through
//! [`sanitize_for_terminal`], and JSON output escapes the characters serde_json leaves raw, so
//! a hostile hostname cannot move the cursor, recolour or rewrite the operator's terminal.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Write as _;

use capstan_proto::api::{
    ApiTokenInfo, AuditPage, BulkResult, CreatedApiToken, CreatedEnrollmentToken, CustomFieldInfo,
    DeviceDetail, DevicePage, DeviceSummary, EnrollmentTokenInfo, ExplanationNode, FieldType,
    GroupExplanation, GroupInfo, GroupPreview, RefreshResponse, TimelineEntry, TimelinePage,
    UserInfo,
};
use capstan_proto::inventory::{InventoryDocument, PerformanceSnapshot, VirtualizationKind};
use comfy_table::{ContentArrangement, Table, presets};
use serde::Serialize;

/// Characters that reorder or break lines of displayed text without being control characters
/// (Unicode bidirectional overrides and isolates, line and paragraph separators).
pub(crate) fn is_invisible_formatting(c: char) -> bool {
    matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Replace control characters (C0, DEL, C1 — including ESC and the one-byte CSI that start
/// terminal escape sequences) and invisible text-direction characters by a visible escape such
/// as `\x1b` or `\u{202e}`, so the operator sees that the value is odd instead of having the
/// terminal act on it.
pub fn sanitize_for_terminal(s: &str) -> Cow<'_, str> {
    if !s
        .chars()
        .any(|c| c.is_control() || is_invisible_formatting(c))
    {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() && (c as u32) <= 0xff => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if c.is_control() || is_invisible_formatting(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Pretty JSON with a trailing newline. serde_json already escapes C0 controls; DEL, C1 and
/// bidi characters are escaped too (`\u009b`), which is the same JSON value and safe to view.
pub fn json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let raw = serde_json::to_string_pretty(value)?;
    // Outside strings the JSON text is ASCII with `\n` as its only control character, and
    // serde_json escapes every C0 control inside strings, so any other such character is
    // inside a string, where a \u escape means the same thing.
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        if c != '\n' && (c.is_control() || is_invisible_formatting(c)) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    Ok(out)
}

/// One compact JSON document on one line (NDJSON), escaped like [`json`].
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<String> {
    let raw = serde_json::to_string(value)?;
    let mut out = String::with_capacity(raw.len() + 1);
    for c in raw.chars() {
        if c.is_control() || is_invisible_formatting(c) {
            let _ = write!(out, "\\u{:04x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out.push('\n');
    Ok(out)
}

/// `2026-03-01T10:00:00Z` (UTC, whole seconds).
pub fn format_rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (the well-known era-based
/// conversion: 400-year eras of 146,097 days, years starting in March).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `12s ago`, `3h ago`, `in 6d`, or `never` when there is no time.
pub fn format_relative(at_ms: Option<i64>, now_ms: i64) -> String {
    let Some(at) = at_ms else {
        return "never".into();
    };
    let diff = now_ms.saturating_sub(at);
    if diff >= 0 {
        format!("{} ago", span(diff / 1000))
    } else {
        format!("in {}", span(diff.saturating_neg() / 1000))
    }
}

fn span(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3_600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3_600),
        s => format!("{}d", s / 86_400),
    }
}

/// A timestamp with its relative form: `2026-03-01T10:00:00Z (3h ago)`.
pub(crate) fn when(ms: i64, now_ms: i64) -> String {
    format!(
        "{} ({})",
        format_rfc3339(ms),
        format_relative(Some(ms), now_ms)
    )
}

/// Bytes in binary units with one decimal (`15.6 GiB`).
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn format_uptime(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs % 86_400 / 3_600, secs % 3_600 / 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// A borderless, left-aligned table like `kubectl get` prints; every cell is sanitised.
/// Width does not depend on the terminal, so output is the same in tests and pipes.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .force_no_tty()
        .set_header(header.to_vec());
    for row in rows {
        t.add_row(
            row.iter()
                .map(|c| sanitize_for_terminal(c).into_owned())
                .collect::<Vec<_>>(),
        );
    }
    let last = header.len().saturating_sub(1);
    for (i, col) in t.column_iter_mut().enumerate() {
        col.set_padding((0, if i == last { 0 } else { 2 }));
    }
    let mut out = String::new();
    for line in t.lines() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Aligned `Label:  value` lines; a value with several lines continues under the first.
pub(crate) fn key_values(rows: &[(&str, Vec<String>)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0) + 2;
    let mut out = String::new();
    for (key, values) in rows {
        for (i, value) in values.iter().enumerate() {
            let label = if i == 0 {
                format!("{key}:")
            } else {
                String::new()
            };
            let line = format!("{label:<width$}{}", sanitize_for_terminal(value));
            out.push_str(line.trim_end());
            out.push('\n');
        }
    }
    out
}

pub(crate) fn one(value: impl Into<String>) -> Vec<String> {
    vec![value.into()]
}

pub(crate) fn or_dash(value: Option<&str>) -> String {
    match value {
        Some(v) if !v.is_empty() => v.to_string(),
        _ => "-".into(),
    }
}

fn tags(list: &[String]) -> String {
    if list.is_empty() {
        "-".into()
    } else {
        list.join(", ")
    }
}

fn os_label(d: &DeviceSummary) -> String {
    match (&d.os_name, &d.os_version) {
        (Some(name), Some(version)) => format!("{name} {version}"),
        (Some(name), None) => name.clone(),
        _ => d.os_family.clone(),
    }
}

fn status(online: bool) -> &'static str {
    if online { "online" } else { "offline" }
}

/// `capstan devices list` as a table.
pub fn devices_table(items: &[DeviceSummary], now_ms: i64) -> String {
    if items.is_empty() {
        return "No devices.\n".into();
    }
    let rows = items
        .iter()
        .map(|d| {
            vec![
                d.id.clone(),
                d.hostname.clone(),
                status(d.online).into(),
                os_label(d),
                or_dash(d.agent_version.as_deref()),
                format_relative(d.last_seen_at_ms, now_ms),
            ]
        })
        .collect();
    table(
        &["ID", "HOSTNAME", "STATUS", "OS", "AGENT", "LAST SEEN"],
        rows,
    )
}

/// The line under a device table when the page does not hold every match.
pub fn devices_page_footer(page: &DevicePage) -> Option<String> {
    let shown = page.items.len() as u64;
    let end = page.offset + shown;
    if shown == 0 || (page.offset == 0 && end >= page.total) {
        return None;
    }
    let mut line = format!(
        "Showing {}-{end} of {} devices.",
        page.offset + 1,
        page.total
    );
    if end < page.total {
        let _ = write!(line, " Next page: --offset {end} (or --all).");
    }
    line.push('\n');
    Some(line)
}

/// `capstan devices show` as a readable summary.
pub fn device_detail(d: &DeviceDetail, now_ms: i64) -> String {
    let s = &d.summary;
    let seen = match s.last_seen_at_ms {
        Some(_) => format!(
            "{}, last seen {}",
            status(s.online),
            format_relative(s.last_seen_at_ms, now_ms)
        ),
        None => format!("{}, never checked in", status(s.online)),
    };
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("Hostname", one(&s.hostname)),
        ("ID", one(&s.id)),
        ("Status", one(seen)),
        ("Enrolled", one(when(s.enrolled_at_ms, now_ms))),
        ("Tags", one(tags(&s.tags))),
        ("Agent", one(or_dash(s.agent_version.as_deref()))),
        ("OS", one(os_label(s))),
    ];
    if !d.groups.is_empty() {
        let names = d.groups.iter().map(|g| match g.source.as_str() {
            "static" => g.name.clone(),
            source => format!("{} ({source})", g.name),
        });
        rows.push(("Groups", one(names.collect::<Vec<_>>().join(", "))));
    }
    if !d.custom_fields.is_empty() {
        // Text unquoted; the caller has already turned dates into RFC 3339 text.
        let lines = d
            .custom_fields
            .iter()
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k} = {s}"),
                other => format!("{k} = {other}"),
            })
            .collect();
        rows.push(("Fields", lines));
    }
    match &d.inventory {
        Some(inv) => inventory_rows(inv, &mut rows),
        None => rows.push(("Inventory", one("not reported yet"))),
    }
    if let Some(perf) = &d.performance {
        performance_rows(perf, &mut rows);
    }
    if let Some(at) = d.inventory_updated_at_ms {
        rows.push(("Inventory", one(format!("updated {}", when(at, now_ms)))));
    }
    key_values(&rows)
}

fn inventory_rows(inv: &InventoryDocument, rows: &mut Vec<(&str, Vec<String>)>) {
    if let Some(os) = &inv.os {
        if let Some(kernel) = &os.kernel {
            rows.push(("Kernel", one(kernel)));
        }
        if let Some(arch) = &os.architecture {
            rows.push(("Architecture", one(arch)));
        }
        if let Some(domain) = os.domain.as_ref().filter(|d| d.kind != "none") {
            let name = domain
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default();
            rows.push(("Domain", one(format!("{}{name}", domain.kind))));
        }
    }
    if let Some(v) = &inv.virtualization {
        let kind = match v.kind {
            VirtualizationKind::Physical => "physical",
            VirtualizationKind::VirtualMachine => "virtual machine",
            VirtualizationKind::Container => "container",
        };
        let tech = v
            .technology
            .as_deref()
            .map(|t| format!(" ({t})"))
            .unwrap_or_default();
        rows.push(("Machine", one(format!("{kind}{tech}"))));
    }
    if let Some(hw) = &inv.hardware {
        if let Some(sys) = &hw.system {
            let parts: Vec<&str> = [&sys.manufacturer, &sys.product]
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            if !parts.is_empty() {
                let serial = sys
                    .serial_number
                    .as_deref()
                    .map(|n| format!(", serial {n}"))
                    .unwrap_or_default();
                rows.push(("System", one(format!("{}{serial}", parts.join(" ")))));
            }
        }
        if let Some(cpu) = &hw.cpu {
            let mut counts = Vec::new();
            if let Some(n) = cpu.sockets {
                counts.push(format!("{n} socket{}", if n == 1 { "" } else { "s" }));
            }
            if let Some(n) = cpu.cores {
                counts.push(format!("{n} cores"));
            }
            if let Some(n) = cpu.threads {
                counts.push(format!("{n} threads"));
            }
            let model = cpu.model.clone().unwrap_or_else(|| "unknown model".into());
            let text = if counts.is_empty() {
                model
            } else {
                format!("{model} ({})", counts.join(", "))
            };
            rows.push(("CPU", one(text)));
        }
        if let Some(mem) = hw.memory_bytes {
            rows.push((
                "RAM",
                one(format!("{:.1} GiB", mem as f64 / (1u64 << 30) as f64)),
            ));
        }
        if !hw.disks.is_empty() {
            let width = hw
                .disks
                .iter()
                .map(|d| d.name.chars().count())
                .max()
                .unwrap_or(0);
            let disks = hw
                .disks
                .iter()
                .map(|disk| {
                    let mut parts = vec![format!("{:<width$}", disk.name)];
                    if let Some(size) = disk.size_bytes {
                        parts.push(format_bytes(size));
                    }
                    match disk.rotational {
                        Some(true) => parts.push("HDD".into()),
                        Some(false) => parts.push("SSD".into()),
                        None => {}
                    }
                    if let Some(t) = &disk.transport {
                        parts.push(t.clone());
                    }
                    if let Some(model) = &disk.model {
                        parts.push(model.clone());
                    }
                    parts.join("  ")
                })
                .collect();
            rows.push(("Disks", disks));
        }
    }
    if let Some(net) = &inv.network {
        let shown: Vec<(&str, Vec<&str>)> = net
            .interfaces
            .iter()
            .map(|nic| {
                let addrs = nic
                    .ipv4
                    .iter()
                    .chain(&nic.ipv6)
                    .map(String::as_str)
                    .filter(|a| !a.starts_with("127.") && !a.starts_with("::1/") && *a != "::1")
                    .collect::<Vec<_>>();
                (nic.name.as_str(), addrs)
            })
            .filter(|(_, addrs)| !addrs.is_empty())
            .collect();
        let width = shown
            .iter()
            .map(|(name, _)| name.chars().count())
            .max()
            .unwrap_or(0);
        let addresses: Vec<String> = shown
            .iter()
            .map(|(name, addrs)| format!("{name:<width$}  {}", addrs.join(", ")))
            .collect();
        if !addresses.is_empty() {
            rows.push(("Addresses", addresses));
        }
        let gateways: Vec<&str> = [&net.default_gateway_v4, &net.default_gateway_v6]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect();
        if !gateways.is_empty() {
            rows.push(("Gateway", one(gateways.join(", "))));
        }
        if !net.dns_servers.is_empty() {
            rows.push(("DNS", one(net.dns_servers.join(", "))));
        }
    }
    if let Some(software) = &inv.software {
        let mut by_source: BTreeMap<&str, usize> = BTreeMap::new();
        for p in software {
            *by_source.entry(p.source.as_str()).or_default() += 1;
        }
        let detail: Vec<String> = by_source
            .iter()
            .map(|(src, n)| format!("{src} {n}"))
            .collect();
        let text = if detail.is_empty() {
            "0".to_string()
        } else {
            format!("{} ({})", software.len(), detail.join(", "))
        };
        rows.push(("Packages", one(text)));
    }
    if let Some(sec) = &inv.security
        && sec.pending_reboot == Some(true)
    {
        let why = if sec.pending_reboot_reasons.is_empty() {
            String::new()
        } else {
            format!(" ({})", sec.pending_reboot_reasons.join(", "))
        };
        rows.push(("Reboot", one(format!("pending{why}"))));
    }
    let failed: Vec<String> = inv
        .collectors
        .iter()
        .filter(|c| !c.ok)
        .map(|c| match &c.error {
            Some(e) => format!("{}: {e}", c.name),
            None => c.name.clone(),
        })
        .collect();
    if !failed.is_empty() {
        rows.push(("Failed collectors", failed));
    }
}

fn performance_rows(p: &PerformanceSnapshot, rows: &mut Vec<(&str, Vec<String>)>) {
    let mut parts = Vec::new();
    if let (Some(l1), Some(l5), Some(l15)) = (p.load_1, p.load_5, p.load_15) {
        parts.push(format!("load {l1:.2} {l5:.2} {l15:.2}"));
    }
    if let Some(cpu) = p.cpu_percent {
        parts.push(format!("CPU {cpu:.0}%"));
    }
    if let (Some(used), Some(total)) = (p.memory_used_bytes, p.memory_total_bytes) {
        parts.push(format!(
            "memory {} of {}",
            format_bytes(used),
            format_bytes(total)
        ));
    }
    if let Some(up) = p.uptime_seconds {
        parts.push(format!("up {}", format_uptime(up)));
    }
    if !parts.is_empty() {
        rows.push(("Performance", one(parts.join(", "))));
    }
}

/// `capstan devices timeline` as a table.
pub fn timeline_table(page: &TimelinePage, device_id: &str) -> String {
    if page.items.is_empty() {
        return "No timeline entries.\n".into();
    }
    let rows = page
        .items
        .iter()
        .map(|e: &TimelineEntry| vec![format_rfc3339(e.at_ms), e.kind.clone(), e.summary.clone()])
        .collect();
    let mut out = table(&["TIME", "KIND", "SUMMARY"], rows);
    if let Some(before) = page.next_before {
        let _ = writeln!(
            out,
            "Older entries: capstan devices timeline {} --before {before}",
            sanitize_for_terminal(device_id)
        );
    }
    out
}

fn uses(token: &EnrollmentTokenInfo) -> String {
    match token.max_uses {
        Some(max) => format!("{}/{max}", token.uses),
        None => format!("{}/∞", token.uses),
    }
}

/// `capstan tokens list` as a table.
pub fn enrollment_tokens_table(tokens: &[EnrollmentTokenInfo], now_ms: i64) -> String {
    if tokens.is_empty() {
        return "No enrollment tokens.\n".into();
    }
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                t.state.clone(),
                uses(t),
                format_relative(Some(t.expires_at_ms), now_ms),
                tags(&t.default_tags),
            ]
        })
        .collect();
    table(&["ID", "NAME", "STATE", "USES", "EXPIRES", "TAGS"], rows)
}

/// `capstan tokens create`: the secret and the install command, said once and clearly.
pub fn created_enrollment_token(t: &CreatedEnrollmentToken, now_ms: i64) -> String {
    let info = &t.info;
    let mut out = key_values(&[
        (
            "Enrollment token",
            one(format!("{} ({})", info.name, info.id)),
        ),
        ("Token", one(&t.token)),
        ("Expires", one(when(info.expires_at_ms, now_ms))),
        ("Uses", one(uses(info))),
        ("Tags", one(tags(&info.default_tags))),
    ]);
    let _ = write!(
        out,
        "\nInstall the agent on a Linux node (as root):\n\n  {}\n\n\
         The token is shown only this once.\n",
        sanitize_for_terminal(&t.install_command)
    );
    out
}

fn api_token_state(t: &ApiTokenInfo, now_ms: i64) -> &'static str {
    if t.revoked {
        "revoked"
    } else if t.expires_at_ms.is_some_and(|e| e <= now_ms) {
        "expired"
    } else {
        "active"
    }
}

/// `capstan api-tokens list` as a table.
pub fn api_tokens_table(tokens: &[ApiTokenInfo], now_ms: i64) -> String {
    if tokens.is_empty() {
        return "No API tokens.\n".into();
    }
    let rows = tokens
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.name.clone(),
                api_token_state(t, now_ms).into(),
                format_relative(Some(t.created_at_ms), now_ms),
                t.expires_at_ms
                    .map_or_else(|| "never".into(), |e| format_relative(Some(e), now_ms)),
                format_relative(t.last_used_at_ms, now_ms),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "STATE", "CREATED", "EXPIRES", "LAST USED"],
        rows,
    )
}

/// `capstan api-tokens create`.
pub fn created_api_token(t: &CreatedApiToken, now_ms: i64) -> String {
    let expires = t
        .info
        .expires_at_ms
        .map_or_else(|| "never".into(), |e| when(e, now_ms));
    let mut out = key_values(&[
        ("API token", one(format!("{} ({})", t.info.name, t.info.id))),
        ("Token", one(&t.token)),
        ("Expires", one(expires)),
    ]);
    out.push_str(
        "\nUse it with CAPSTAN_TOKEN=<token> or --token. The token is shown only this once.\n",
    );
    out
}

/// `capstan users list` as a table.
pub fn users_table(users: &[UserInfo], now_ms: i64) -> String {
    let rows = users
        .iter()
        .map(|u| {
            vec![
                u.id.clone(),
                u.username.clone(),
                u.role.as_str().into(),
                user_state(u).into(),
                format_relative(Some(u.created_at_ms), now_ms),
            ]
        })
        .collect();
    table(&["ID", "USERNAME", "ROLE", "STATE", "CREATED"], rows)
}

fn user_state(u: &UserInfo) -> &'static str {
    if u.disabled { "disabled" } else { "active" }
}

/// `capstan whoami` and `capstan users create`.
pub fn user_info(u: &UserInfo, server: Option<&str>, now_ms: i64) -> String {
    let mut rows = vec![
        ("User", one(&u.username)),
        ("Role", one(u.role.as_str())),
        ("State", one(user_state(u))),
        ("ID", one(&u.id)),
        ("Created", one(when(u.created_at_ms, now_ms))),
    ];
    if let Some(server) = server {
        rows.push(("Server", one(server)));
    }
    key_values(&rows)
}

/// `capstan audit list` as a table.
pub fn audit_table(page: &AuditPage) -> String {
    if page.items.is_empty() {
        return "No audit entries.\n".into();
    }
    let rows = page
        .items
        .iter()
        .map(|e| {
            vec![
                format_rfc3339(e.at_ms),
                e.actor.clone(),
                e.action.clone(),
                or_dash(e.target.as_deref()),
            ]
        })
        .collect();
    let mut out = table(&["TIME", "ACTOR", "ACTION", "TARGET"], rows);
    if let Some(before) = page.next_before {
        let _ = writeln!(
            out,
            "Older entries: add --before {before} (or --all) to the same command."
        );
    }
    out
}

/// `capstan groups list` as a table; parents are shown by name.
pub fn groups_table(groups: &[GroupInfo]) -> String {
    if groups.is_empty() {
        return "No groups.\n".into();
    }
    let name_of = |id: &str| {
        groups
            .iter()
            .find(|g| g.id == id)
            .map_or_else(|| id.to_string(), |g| g.name.clone())
    };
    let rows = groups
        .iter()
        .map(|g| {
            vec![
                g.id.clone(),
                g.name.clone(),
                g.parent_id.as_deref().map_or_else(|| "-".into(), name_of),
                g.kind.clone(),
                g.direct_members.to_string(),
                g.members.to_string(),
                or_dash(Some(&g.description)),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "PARENT",
            "KIND",
            "DIRECT",
            "MEMBERS",
            "DESCRIPTION",
        ],
        rows,
    )
}

/// `capstan groups show|create|edit`.
pub fn group_detail(g: &GroupInfo, parent_name: Option<&str>, now_ms: i64) -> String {
    let parent = match (&g.parent_id, parent_name) {
        (None, _) => "- (top level)".to_string(),
        (Some(id), Some(name)) if name != id => format!("{name} ({id})"),
        (Some(id), _) => id.clone(),
    };
    let mut rows = vec![
        ("Group", one(&g.name)),
        ("ID", one(&g.id)),
        ("Kind", one(&g.kind)),
        ("Parent", one(parent)),
        ("Description", one(or_dash(Some(&g.description)))),
        (
            "Members",
            one(format!(
                "{} (incl. subgroups), {} direct",
                g.members, g.direct_members
            )),
        ),
        ("Created", one(when(g.created_at_ms, now_ms))),
    ];
    if let Some(rule) = &g.rule {
        rows.push(("Rule", one(sanitize_for_terminal(&rule.to_string()))));
    }
    key_values(&rows)
}

/// `capstan groups preview`: the matching devices and how many there are in all.
pub fn group_preview(p: &GroupPreview, now_ms: i64) -> String {
    let mut text = devices_table(&p.devices, now_ms);
    let shown = p.devices.len() as u64;
    if shown < p.total {
        let _ = writeln!(
            text,
            "{} device(s) match; showing the first {shown} (raise --limit for more).",
            p.total
        );
    } else {
        let _ = writeln!(text, "{} device(s) match.", p.total);
    }
    text
}

/// `capstan groups explain`: the condition tree, children indented by two spaces, each line
/// ending in `: true` or `: false`.
pub fn group_explanation(e: &GroupExplanation) -> String {
    fn walk(n: &ExplanationNode, depth: usize, out: &mut String) {
        let _ = writeln!(
            out,
            "{:indent$}{}",
            "",
            sanitize_for_terminal(&n.text),
            indent = depth * 2
        );
        for c in &n.children {
            walk(c, depth + 1, out);
        }
    }
    let mut out = format!(
        "Device {} is {}a member of group {}.\n",
        sanitize_for_terminal(&e.device_id),
        if e.member { "" } else { "not " },
        sanitize_for_terminal(&e.group_id)
    );
    walk(&e.explanation, 0, &mut out);
    out
}

/// A custom field value as operators write it (dates as RFC 3339).
fn field_value(ty: FieldType, v: &serde_json::Value) -> String {
    match (ty, v) {
        (FieldType::Date, serde_json::Value::Number(n)) => {
            n.as_i64().map_or_else(|| n.to_string(), format_rfc3339)
        }
        (_, serde_json::Value::String(s)) => s.clone(),
        (_, other) => other.to_string(),
    }
}

/// `capstan fields list|define` as a table.
pub fn fields_table(fields: &[CustomFieldInfo]) -> String {
    if fields.is_empty() {
        return "No custom fields.\n".into();
    }
    let rows = fields
        .iter()
        .map(|f| {
            vec![
                f.name.clone(),
                f.field_type.as_str().into(),
                f.default
                    .as_ref()
                    .map_or_else(|| "-".into(), |d| field_value(f.field_type, d)),
                if f.required { "yes" } else { "no" }.into(),
                if f.enum_values.is_empty() {
                    "-".into()
                } else {
                    f.enum_values.join(", ")
                },
                or_dash(Some(&f.description)),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "TYPE",
            "DEFAULT",
            "REQUIRED",
            "VALUES",
            "DESCRIPTION",
        ],
        rows,
    )
}

/// The outcome of a bulk change (`groups add|remove`, `tags add|remove`).
pub fn bulk_result(r: &BulkResult, what: &str) -> String {
    let unchanged = r.matched.saturating_sub(r.changed);
    format!(
        "{} of {} matched device(s) {what}; {unchanged} already were.\n",
        r.changed, r.matched
    )
}

/// `capstan devices refresh`.
pub fn refresh(r: &RefreshResponse) -> String {
    if r.delivered_now {
        "Inventory refresh requested; the agent was told at once.\n".into()
    } else {
        "Inventory refresh requested; the agent will report at its next check-in.\n".into()
    }
}

#[cfg(test)]
mod tests {
    //! Output snapshots from the fixtures in `tests/fixtures` (real wire JSON), rendered at a
    //! fixed `NOW`. Review changes with `cargo insta review` or `INSTA_UPDATE=always`.

    use super::*;
    use capstan_proto::api::TimelinePage;

    use crate::test_support::{NOW, fixture};

    fn assert_terminal_safe(text: &str) {
        crate::test_support::assert_terminal_safe(text, &[]);
    }

    #[test]
    fn sanitize_makes_escape_sequences_visible() {
        assert_eq!(
            sanitize_for_terminal("web-01.example.com"),
            "web-01.example.com"
        );
        assert!(matches!(
            sanitize_for_terminal("плохой-хост"),
            Cow::Borrowed(_)
        ));
        assert_eq!(sanitize_for_terminal("a\u{1b}[2Jb"), "a\\x1b[2Jb");
        assert_eq!(sanitize_for_terminal("x\u{9b}31m"), "x\\x9b31m");
        assert_eq!(
            sanitize_for_terminal("a\r\nb\tc\u{7f}"),
            "a\\r\\nb\\tc\\x7f"
        );
        assert_eq!(sanitize_for_terminal("\u{202e}exe.txt"), "\\u{202e}exe.txt");
        assert_eq!(
            sanitize_for_terminal("title\u{1b}]0;pwned\u{7}"),
            "title\\x1b]0;pwned\\x07"
        );
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw() {
        let text = json(&["\u{1b}[31m", "\u{9b}2J", "\u{202e}x", "ok ü"]).unwrap();
        assert_terminal_safe(&text);
        let back: Vec<String> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, ["\u{1b}[31m", "\u{9b}2J", "\u{202e}x", "ok ü"]);
    }

    #[test]
    fn rfc3339_in_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(NOW), "2026-01-01T00:00:00Z");
        assert_eq!(format_rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(1_709_251_199_999), "2024-02-29T23:59:59Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn relative_times() {
        for (at, text) in [
            (None, "never"),
            (Some(NOW), "0s ago"),
            (Some(NOW - 12_000), "12s ago"),
            (Some(NOW - 59_999), "59s ago"),
            (Some(NOW - 60_000), "1m ago"),
            (Some(NOW - 3 * 3_600_000 - 5), "3h ago"),
            (Some(NOW - 49 * 3_600_000), "2d ago"),
            (Some(NOW + 6 * 86_400_000 + 1), "in 6d"),
            (Some(NOW + 90_000), "in 1m"),
        ] {
            assert_eq!(format_relative(at, NOW), text, "{at:?}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(16_762_200_064), "15.6 GiB");
        assert_eq!(format_bytes(1_000_204_886_016), "931.5 GiB");
        assert_eq!(format_bytes(4_000_787_030_016), "3.6 TiB");
    }

    #[test]
    fn devices_list_table() {
        let page: DevicePage = fixture("devices_page.json");
        let mut text = devices_table(&page.items, NOW);
        text.push_str(&devices_page_footer(&page).unwrap_or_default());
        assert_terminal_safe(&text);
        // One header and one line per device: a CR/LF in a hostname must not add rows.
        assert_eq!(text.lines().count(), 1 + page.items.len() + 1, "{text}");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn devices_list_json_is_an_array_of_summaries() {
        let page: DevicePage = fixture("devices_page.json");
        let text = json(&page.items).unwrap();
        assert_terminal_safe(&text);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        let rows = value.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(
            rows[2]["hostname"].as_str(),
            Some(page.items[2].hostname.as_str())
        );
        assert_eq!(rows[0]["online"], serde_json::Value::Bool(true));
        insta::assert_snapshot!(text);
    }

    #[test]
    fn page_footer_only_when_the_page_is_partial() {
        let mut page: DevicePage = fixture("devices_page.json");
        assert_eq!(
            devices_page_footer(&page).as_deref(),
            Some("Showing 1-3 of 250 devices. Next page: --offset 3 (or --all).\n")
        );
        page.offset = 247;
        assert_eq!(
            devices_page_footer(&page).as_deref(),
            Some("Showing 248-250 of 250 devices.\n")
        );
        page.offset = 0;
        page.total = 3;
        assert_eq!(devices_page_footer(&page), None);
    }

    #[test]
    fn groups_list_table_names_parents() {
        let groups: Vec<GroupInfo> = fixture("groups.json");
        let text = groups_table(&groups);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
        let berlin = group_detail(&groups[1], Some("Europe"), NOW);
        insta::assert_snapshot!("group_show", berlin);
        assert_eq!(groups_table(&[]), "No groups.\n");
    }

    #[test]
    fn fields_list_table_shows_dates_as_dates() {
        let fields: Vec<CustomFieldInfo> = fixture("custom_fields.json");
        let text = fields_table(&fields);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn bulk_results_say_what_changed() {
        let r = BulkResult {
            matched: 5,
            changed: 3,
        };
        assert_eq!(
            bulk_result(&r, "tagged web"),
            "3 of 5 matched device(s) tagged web; 2 already were.\n"
        );
    }

    #[test]
    fn devices_show_lists_groups_and_fields() {
        let mut detail: DeviceDetail = fixture("device_detail.json");
        detail.groups = vec![
            capstan_proto::api::DeviceGroupRef {
                id: "g1".into(),
                name: "Berlin".into(),
                source: "static".into(),
            },
            capstan_proto::api::DeviceGroupRef {
                id: "g2".into(),
                name: "Debian".into(),
                source: "dynamic".into(),
            },
        ];
        detail.custom_fields = [
            ("critical".to_string(), serde_json::json!(true)),
            ("tier".to_string(), serde_json::json!("gold")),
        ]
        .into_iter()
        .collect();
        let text = device_detail(&detail, NOW);
        assert_terminal_safe(&text);
        assert!(text.contains("Groups:"), "{text}");
        assert!(text.contains("Berlin, Debian (dynamic)"), "{text}");
        assert!(text.contains("critical = true"), "{text}");
        assert!(text.contains("tier = gold"), "{text}");
    }

    #[test]
    fn devices_show_table() {
        let detail: DeviceDetail = fixture("device_detail.json");
        let text = device_detail(&detail, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn devices_show_without_inventory() {
        let mut detail: DeviceDetail = fixture("device_detail.json");
        detail.inventory = None;
        detail.performance = None;
        detail.inventory_updated_at_ms = None;
        detail.summary.last_seen_at_ms = None;
        detail.summary.online = false;
        detail.summary.hostname = "x\u{1b}]52;c;ZWNobyBoaQ==\u{7}\ny".into();
        let text = device_detail(&detail, NOW);
        assert_terminal_safe(&text);
        assert!(
            text.starts_with("Hostname:   x\\x1b]52;c;ZWNobyBoaQ==\\x07\\ny\n"),
            "{text}"
        );
        assert!(text.contains("Inventory:  not reported yet"), "{text}");
        assert!(text.contains("offline, never checked in"), "{text}");
    }

    #[test]
    fn devices_show_json_keeps_the_full_inventory() {
        let detail: DeviceDetail = fixture("device_detail.json");
        let text = json(&detail).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["inventory"]["software"].as_array().map(Vec::len),
            Some(4)
        );
        assert_eq!(value["hostname"], "web-01");
        insta::assert_snapshot!(text);
    }

    #[test]
    fn timeline_table_and_json() {
        let page: TimelinePage = fixture("timeline.json");
        let text = timeline_table(&page, "0190c3a4-5b6e-7f80-9a1b-2c3d4e5f6a7b");
        assert_terminal_safe(&text);
        insta::assert_snapshot!("timeline_table", text);
        let text = json(&page.items).unwrap();
        assert!(
            text.starts_with("[\n"),
            "timeline JSON must be the array of entries"
        );
        insta::assert_snapshot!("timeline_json", text);
    }

    #[test]
    fn tokens_list_table() {
        let tokens: Vec<EnrollmentTokenInfo> = fixture("enrollment_tokens.json");
        let text = enrollment_tokens_table(&tokens, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn tokens_create_table_and_json() {
        let created: CreatedEnrollmentToken = fixture("created_enrollment_token.json");
        let text = created_enrollment_token(&created, NOW);
        assert!(text.contains(&created.token));
        assert!(text.contains(&created.install_command));
        insta::assert_snapshot!("tokens_create_table", text);
        let text = json(&created).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["token"].as_str(), Some(created.token.as_str()));
        assert_eq!(
            value["install_command"].as_str(),
            Some(created.install_command.as_str())
        );
        insta::assert_snapshot!("tokens_create_json", text);
    }

    #[test]
    fn audit_table_and_json() {
        let page: AuditPage = fixture("audit_page.json");
        let text = audit_table(&page);
        assert_terminal_safe(&text);
        // Header, one line per entry, the paging hint: nothing in the data adds lines.
        assert_eq!(text.lines().count(), 1 + page.items.len() + 1, "{text}");
        insta::assert_snapshot!("audit_table", text);
        let text = json(&page.items).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value[0]["details"], page.items[0].details);
        insta::assert_snapshot!("audit_json", text);
    }

    #[test]
    fn users_list_shows_disabled_users() {
        let users: Vec<UserInfo> = fixture("users.json");
        let text = users_table(&users, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn empty_lists_say_so() {
        assert_eq!(devices_table(&[], NOW), "No devices.\n");
        assert_eq!(enrollment_tokens_table(&[], NOW), "No enrollment tokens.\n");
        let empty = TimelinePage {
            items: vec![],
            next_before: None,
        };
        assert_eq!(timeline_table(&empty, "d"), "No timeline entries.\n");
        let empty = AuditPage {
            items: vec![],
            next_before: None,
        };
        assert_eq!(audit_table(&empty), "No audit entries.\n");
    }
}

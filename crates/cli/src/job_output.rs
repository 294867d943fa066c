//! What the job commands print (`capstan run`, `capstan jobs …`, `capstan scripts …`), as pure
//! functions of the data and the current time so it is snapshot-tested like `output.rs`. A
//! device's result is a header line, an optional `  reason:` line, its standard output
//! indented by four spaces and its standard error under `  stderr:`. Output comes from
//! devices and is untrusted: every line passes through [`sanitize_for_terminal`] (tabs are
//! kept, they cannot drive a terminal).

use std::fmt::Write as _;

use capstan_proto::jobs::{
    AttemptInfo, BreakerInfo, JobAction, JobInfo, RunCounts, RunDetail, RunInfo, RunPage, RunState,
    RunsChanged, ScriptInfo, ScriptParameter, ScriptVersionInfo,
};
use serde::Serialize;

use crate::output::{
    format_relative, format_rfc3339, key_values, one, or_dash, sanitize_for_terminal, table, when,
};
use crate::params::param_spec;

/// The attempt a run's state comes from: its current one, else the last recorded.
fn current_attempt(d: &RunDetail) -> Option<&AttemptInfo> {
    d.attempts
        .iter()
        .find(|a| a.attempt == d.run.attempt)
        .or_else(|| d.attempts.last())
}

fn duration_ms(a: &AttemptInfo) -> Option<i64> {
    match (a.started_at_ms, a.finished_at_ms) {
        (Some(s), Some(f)) if f >= s => Some(f - s),
        _ => None,
    }
}

fn seconds(ms: i64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

fn host(run: &RunInfo) -> &str {
    if run.hostname.is_empty() {
        &run.device_id
    } else {
        &run.hostname
    }
}

/// Untrusted text lines, each indented, control characters made visible (tabs kept). A
/// trailing newline does not add an empty line; CR LF counts as one line end.
fn push_lines(text: &str, indent: &str, out: &mut String) {
    if text.is_empty() {
        return;
    }
    let body = text.strip_suffix('\n').unwrap_or(text);
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push_str(indent);
        let mut first = true;
        for part in line.split('\t') {
            if !first {
                out.push('\t');
            }
            first = false;
            out.push_str(&sanitize_for_terminal(part));
        }
        out.push('\n');
    }
}

/// `web-01: succeeded (exit 0, 0.4 s)`: state, exit code, duration of the current attempt,
/// and the attempt number when it is not the first. With `show_device` (several devices of
/// the job share the hostname) the device id follows in brackets: `vm [0190…]: …`.
pub fn result_header(d: &RunDetail, show_device: bool) -> String {
    let a = current_attempt(d);
    let mut parts = Vec::new();
    if let Some(code) = d.run.exit_code.or(a.and_then(|a| a.exit_code)) {
        parts.push(format!("exit {code}"));
    }
    if let Some(ms) = a.and_then(duration_ms) {
        parts.push(seconds(ms));
    }
    if d.run.attempt > 1 {
        parts.push(format!("attempt {}", d.run.attempt));
    }
    let mut line = sanitize_for_terminal(host(&d.run)).into_owned();
    if show_device && !d.run.hostname.is_empty() {
        let _ = write!(line, " [{}]", sanitize_for_terminal(&d.run.device_id));
    }
    let _ = write!(line, ": {}", d.run.state.as_str());
    if !parts.is_empty() {
        let _ = write!(line, " ({})", parts.join(", "));
    }
    line
}

/// Why the run ended as it did, unless the header already says it all.
fn result_reason(d: &RunDetail) -> Option<String> {
    let a = current_attempt(d);
    let reason = d
        .run
        .reason
        .as_deref()
        .or(a.and_then(|a| a.error.as_deref()))
        .filter(|r| !r.trim().is_empty())?;
    let plain_exit = d
        .run
        .exit_code
        .is_some_and(|c| reason == format!("exit code {c}"));
    (!plain_exit).then(|| reason.to_string())
}

/// One device's result as `capstan run` prints it when the run has ended.
pub fn run_result(d: &RunDetail, show_device: bool) -> String {
    let mut out = result_header(d, show_device);
    out.push('\n');
    if let Some(reason) = result_reason(d) {
        let _ = writeln!(out, "  reason: {}", sanitize_for_terminal(&reason));
    }
    if let Some(a) = current_attempt(d) {
        attempt_output(a, &mut out);
    }
    out
}

/// An attempt's stdout (indented by four), a truncation note, then `  stderr:` and stderr.
fn attempt_output(a: &AttemptInfo, out: &mut String) {
    push_lines(&a.stdout, "    ", out);
    if a.stdout_truncated {
        let _ = writeln!(
            out,
            "  (stdout truncated: {} bytes written, the rest was dropped)",
            a.stdout_bytes
        );
    }
    if !a.stderr.is_empty() || a.stderr_truncated {
        out.push_str("  stderr:\n");
        push_lines(&a.stderr, "    ", out);
        if a.stderr_truncated {
            let _ = writeln!(
                out,
                "  (stderr truncated: {} bytes written, the rest was dropped)",
                a.stderr_bytes
            );
        }
    }
}

/// One NDJSON line of `capstan run --output json`: a device's result.
#[derive(Debug, Serialize)]
pub struct ResultLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub job_id: &'a str,
    pub run_id: &'a str,
    pub device_id: &'a str,
    pub hostname: &'a str,
    pub state: RunState,
    pub attempt: u32,
    pub exit_code: Option<i32>,
    pub reason: Option<&'a str>,
    pub error: Option<&'a str>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub duration_ms: Option<i64>,
    pub stdout: &'a str,
    pub stderr: &'a str,
    pub stdout_truncated: bool,
    pub stderr_truncated: bool,
}

impl<'a> ResultLine<'a> {
    pub fn new(d: &'a RunDetail) -> ResultLine<'a> {
        let a = current_attempt(d);
        ResultLine {
            kind: "result",
            job_id: &d.run.job_id,
            run_id: &d.run.id,
            device_id: &d.run.device_id,
            hostname: &d.run.hostname,
            state: d.run.state,
            attempt: d.run.attempt,
            exit_code: d.run.exit_code.or(a.and_then(|a| a.exit_code)),
            reason: d.run.reason.as_deref(),
            error: a.and_then(|a| a.error.as_deref()),
            started_at_ms: a.and_then(|a| a.started_at_ms),
            finished_at_ms: a.and_then(|a| a.finished_at_ms),
            duration_ms: a.and_then(duration_ms),
            stdout: a.map_or("", |a| a.stdout.as_str()),
            stderr: a.map_or("", |a| a.stderr.as_str()),
            stdout_truncated: a.is_some_and(|a| a.stdout_truncated),
            stderr_truncated: a.is_some_and(|a| a.stderr_truncated),
        }
    }
}

/// The last NDJSON line of `capstan run --output json`. `complete` is false when watching
/// stopped (Ctrl-C) before every run ended.
#[derive(Debug, Serialize)]
pub struct SummaryLine<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub job_id: &'a str,
    pub complete: bool,
    pub counts: &'a RunCounts,
}

/// Runs that ended without succeeding.
pub fn unsuccessful(c: &RunCounts) -> u64 {
    c.failed + c.timed_out + c.cancelled + c.expired
}

/// `Done: 3 succeeded, 1 failed, 0 timed out, 0 cancelled, 0 expired (job ID).`
pub fn summary(job_id: &str, c: &RunCounts, complete: bool) -> String {
    let mut line = format!(
        "{}: {} succeeded, {} failed, {} timed out, {} cancelled, {} expired",
        if complete { "Done" } else { "Stopped watching" },
        c.succeeded,
        c.failed,
        c.timed_out,
        c.cancelled,
        c.expired
    );
    let open = c.total.saturating_sub(c.finished());
    if open > 0 {
        let _ = write!(line, ", {open} not finished");
    }
    let _ = writeln!(line, " (job {}).", sanitize_for_terminal(job_id));
    line
}

/// The progress line drawn on a terminal: `12/50 done (3 running, 35 waiting)`.
pub fn progress(c: &RunCounts) -> String {
    format!(
        "{}/{} done ({} running, {} waiting)",
        c.finished(),
        c.total,
        c.running + c.rebooting,
        c.queued + c.delivered
    )
}

/// Non-zero counts in a fixed order: `3 succeeded, 1 failed, 2 running`.
fn counts_text(c: &RunCounts) -> String {
    let parts: Vec<String> = [
        (c.succeeded, "succeeded"),
        (c.failed, "failed"),
        (c.timed_out, "timed out"),
        (c.cancelled, "cancelled"),
        (c.expired, "expired"),
        (c.running, "running"),
        (c.rebooting, "rebooting"),
        (c.delivered, "delivered"),
        (c.queued, "queued"),
    ]
    .into_iter()
    .filter(|(n, _)| *n > 0)
    .map(|(n, what)| format!("{n} {what}"))
    .collect();
    if parts.is_empty() {
        "no runs".into()
    } else {
        parts.join(", ")
    }
}

fn job_status(j: &JobInfo, now_ms: i64) -> &'static str {
    let c = &j.counts;
    if j.cancelled_at_ms.is_some() {
        "cancelled"
    } else if c.total > 0 && c.finished() == c.total {
        "done"
    } else if c.total == 0 && now_ms >= j.expires_at_ms {
        "expired"
    } else {
        "active"
    }
}

/// `capstan jobs list` as a table.
pub fn jobs_table(items: &[JobInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No jobs.\n".into();
    }
    let rows = items
        .iter()
        .map(|j| {
            vec![
                j.id.clone(),
                j.name.clone(),
                j.kind.clone(),
                job_status(j, now_ms).into(),
                format!("{}/{}", j.counts.finished(), j.counts.total),
                counts_text(&j.counts),
                format_relative(Some(j.created_at_ms), now_ms),
                j.created_by.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID", "NAME", "KIND", "STATUS", "DONE", "RUNS", "CREATED", "BY",
        ],
        rows,
    )
}

/// The line under a list when the page does not hold every item.
pub fn page_footer(what: &str, offset: u64, shown: u64, total: u64) -> Option<String> {
    let end = offset + shown;
    if shown == 0 || (offset == 0 && end >= total) {
        return None;
    }
    let mut line = format!("Showing {}-{end} of {total} {what}.", offset + 1);
    if end < total {
        let _ = write!(line, " Next page: --offset {end}.");
    }
    line.push('\n');
    Some(line)
}

/// A word as a shell would need it quoted, for showing an argv (display only: the agent never
/// runs it through a shell).
fn shell_word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
    if plain {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', r"'\''"))
    }
}

fn action_text(a: &JobAction) -> String {
    match a {
        JobAction::Command { argv } => argv
            .iter()
            .map(|w| shell_word(w))
            .collect::<Vec<_>>()
            .join(" "),
        JobAction::Script {
            interpreter,
            body,
            args,
        } => {
            let mut s = format!(
                "{} script, {} line(s)",
                interpreter.as_str(),
                body.lines().count()
            );
            if !args.is_empty() {
                let words: Vec<String> = args.iter().map(|w| shell_word(w)).collect();
                let _ = write!(s, ", arguments: {}", words.join(" "));
            }
            s
        }
        JobAction::Reboot => "reboot".into(),
        JobAction::SoftwareInstall {
            package, version, ..
        } => format!(
            "install {package}{}",
            version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        ),
        JobAction::SoftwareUninstall {
            package, version, ..
        } => format!(
            "uninstall {package}{}",
            version
                .as_deref()
                .map(|v| format!(" {v}"))
                .unwrap_or_default()
        ),
    }
}

fn span(secs: u64) -> String {
    match secs {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3_600 == 0 => format!("{}h", s / 3_600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `capstan jobs show`: the job, then its runs.
pub fn job_detail(j: &JobInfo, runs: &RunPage, now_ms: i64) -> String {
    let mut targets = Vec::new();
    if !j.targets.devices.is_empty() {
        targets.push(format!("devices {}", j.targets.devices.join(", ")));
    }
    if !j.targets.groups.is_empty() {
        let follow = if j.targets.follow_group_joins {
            " (and devices joining them)"
        } else {
            ""
        };
        targets.push(format!("groups {}{follow}", j.targets.groups.join(", ")));
    }
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("Job", one(&j.id)),
        ("Name", one(&j.name)),
        ("Status", one(job_status(j, now_ms))),
        ("Action", one(action_text(&j.spec.action))),
        ("Targets", one(targets.join("; "))),
        ("Timeout", one(span(j.spec.timeout_secs))),
    ];
    if let (Some(id), Some(v)) = (&j.script_id, j.script_version) {
        rows.push(("Script", one(format!("{id} version {v}"))));
    }
    if let Some(user) = &j.spec.run_as {
        rows.push(("Run as", one(user)));
    }
    if let Some(dir) = &j.spec.working_dir {
        rows.push(("Directory", one(dir)));
    }
    if !j.spec.env.is_empty() {
        // Names only: values may be secrets, and `-o json` has them for whoever needs them.
        let names: Vec<&str> = j.spec.env.keys().map(String::as_str).collect();
        rows.push(("Environment", one(names.join(", "))));
    }
    let r = &j.retry;
    let retry = if r.max_attempts <= 1 {
        "no retries".to_string()
    } else {
        let on: Vec<&str> = r
            .retry_on
            .iter()
            .map(|o| match o {
                capstan_proto::jobs::RetryOn::Failed => "failed",
                capstan_proto::jobs::RetryOn::TimedOut => "timed_out",
                capstan_proto::jobs::RetryOn::Interrupted => "interrupted",
            })
            .collect();
        format!(
            "{} attempts, backoff {} doubling to at most {}, on {}",
            r.max_attempts,
            span(r.backoff_secs),
            span(r.max_backoff_secs),
            on.join(", ")
        )
    };
    rows.push(("Retries", one(retry)));
    rows.push((
        "Created",
        one(format!(
            "{} by {}",
            when(j.created_at_ms, now_ms),
            j.created_by
        )),
    ));
    rows.push(("Expires", one(when(j.expires_at_ms, now_ms))));
    if let Some(at) = j.cancelled_at_ms {
        rows.push(("Cancelled", one(when(at, now_ms))));
    }
    rows.push((
        "Runs",
        one(format!(
            "{}/{} done: {}",
            j.counts.finished(),
            j.counts.total,
            counts_text(&j.counts)
        )),
    ));
    let mut out = key_values(&rows);
    out.push('\n');
    out.push_str(&runs_table(&runs.items, now_ms));
    if let Some(footer) = page_footer("runs", 0, runs.items.len() as u64, runs.total) {
        let _ = write!(
            out,
            "{}",
            footer.replace(
                " Next page: --offset",
                " More: capstan jobs runs JOB --offset"
            )
        );
    }
    out
}

/// A job's runs as a table.
pub fn runs_table(items: &[RunInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No runs.\n".into();
    }
    let rows = items
        .iter()
        .map(|r| {
            let mut reason = r.reason.clone().unwrap_or_default();
            if let Some(at) = r.next_attempt_at_ms {
                if !reason.is_empty() {
                    reason.push_str("; ");
                }
                let _ = write!(reason, "next attempt {}", format_relative(Some(at), now_ms));
            }
            vec![
                host(r).to_string(),
                r.device_id.clone(),
                r.state.as_str().into(),
                r.attempt.to_string(),
                r.exit_code.map_or_else(|| "-".into(), |c| c.to_string()),
                format_relative(Some(r.updated_at_ms), now_ms),
                or_dash(Some(&reason)),
            ]
        })
        .collect();
    table(
        &[
            "HOSTNAME", "DEVICE", "STATE", "ATTEMPT", "EXIT", "UPDATED", "REASON",
        ],
        rows,
    )
}

/// `capstan jobs run`: the run, each attempt with its output, and the state history.
pub fn run_detail(d: &RunDetail, now_ms: i64) -> String {
    let r = &d.run;
    let mut rows: Vec<(&str, Vec<String>)> = vec![
        ("Hostname", one(host(r))),
        ("Device", one(&r.device_id)),
        ("Run", one(&r.id)),
        ("Job", one(&r.job_id)),
        ("State", one(r.state.as_str())),
        ("Attempt", one(r.attempt.to_string())),
    ];
    if let Some(code) = r.exit_code {
        rows.push(("Exit code", one(code.to_string())));
    }
    if let Some(reason) = &r.reason {
        rows.push(("Reason", one(reason)));
    }
    if let Some(at) = r.next_attempt_at_ms {
        rows.push(("Next attempt", one(when(at, now_ms))));
    }
    let mut out = key_values(&rows);
    for a in &d.attempts {
        out.push('\n');
        let mut parts = Vec::new();
        if let Some(code) = a.exit_code {
            parts.push(format!("exit {code}"));
        }
        if let Some(ms) = duration_ms(a) {
            parts.push(seconds(ms));
        }
        if let Some(at) = a.started_at_ms.or(a.delivered_at_ms) {
            parts.push(format!(
                "{} {}",
                if a.started_at_ms.is_some() {
                    "started"
                } else {
                    "delivered"
                },
                format_rfc3339(at)
            ));
        }
        let outcome = a.outcome.map_or("unfinished", |o| o.as_str());
        let _ = write!(out, "Attempt {}: {outcome}", a.attempt);
        if !parts.is_empty() {
            let _ = write!(out, " ({})", parts.join(", "));
        }
        out.push('\n');
        if let Some(e) = &a.error {
            let _ = writeln!(out, "  error: {}", sanitize_for_terminal(e));
        }
        if a.stdout.is_empty() && a.stderr.is_empty() && !a.stdout_truncated {
            out.push_str("  (no output)\n");
        } else {
            attempt_output(a, &mut out);
        }
    }
    out.push_str("\nHistory:\n");
    let rows = d
        .history
        .iter()
        .map(|h| {
            vec![
                format_rfc3339(h.at_ms),
                h.attempt.to_string(),
                h.state.as_str().into(),
                or_dash(h.reason.as_deref()),
            ]
        })
        .collect();
    out.push_str(&table(&["TIME", "ATTEMPT", "STATE", "REASON"], rows));
    out
}

/// `capstan jobs cancel|retry`, `capstan jobs breaker-reset`.
pub fn runs_changed(r: &RunsChanged, what: &str) -> String {
    format!("{} run(s) {what}.\n", r.changed)
}

/// `capstan jobs breakers` as a table.
pub fn breakers_table(items: &[BreakerInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No circuit breakers open.\n".into();
    }
    let rows = items
        .iter()
        .map(|b| {
            vec![
                b.hostname.clone(),
                b.device_id.clone(),
                match b.opened_at_ms {
                    Some(at) => format!("open since {}", format_relative(Some(at), now_ms)),
                    None => "closed".into(),
                },
                format!("{}/{}", b.consecutive_failures, b.threshold),
                b.held_runs.to_string(),
            ]
        })
        .collect();
    table(
        &["HOSTNAME", "DEVICE", "BREAKER", "FAILURES", "HELD RUNS"],
        rows,
    )
}

fn params_text(params: &[ScriptParameter]) -> String {
    if params.is_empty() {
        "-".into()
    } else {
        params.iter().map(param_spec).collect::<Vec<_>>().join(" ")
    }
}

/// `capstan scripts list` as a table.
pub fn scripts_table(items: &[ScriptInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No scripts.\n".into();
    }
    let rows = items
        .iter()
        .map(|s| {
            vec![
                s.name.clone(),
                s.latest_version.to_string(),
                s.interpreter.as_str().into(),
                params_text(&s.parameters),
                format_relative(Some(s.updated_at_ms), now_ms),
                or_dash(Some(&s.description)),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "VERSION",
            "INTERPRETER",
            "PARAMETERS",
            "UPDATED",
            "DESCRIPTION",
        ],
        rows,
    )
}

/// `capstan scripts versions` as a table.
pub fn script_versions_table(items: &[ScriptVersionInfo], now_ms: i64) -> String {
    if items.is_empty() {
        return "No versions.\n".into();
    }
    let rows = items
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                when(v.created_at_ms, now_ms),
                v.created_by.clone(),
                v.name.clone(),
                v.interpreter.as_str().into(),
                params_text(&v.parameters),
            ]
        })
        .collect();
    table(
        &[
            "VERSION",
            "CREATED",
            "BY",
            "NAME",
            "INTERPRETER",
            "PARAMETERS",
        ],
        rows,
    )
}

/// `capstan scripts show` (any version): the facts, the parameters, the body.
pub fn script_detail(v: &ScriptVersionInfo, latest: Option<u32>, now_ms: i64) -> String {
    let version = match latest {
        Some(l) if l != v.version => format!("{} (latest: {l})", v.version),
        Some(_) => format!("{} (latest)", v.version),
        None => v.version.to_string(),
    };
    let rows: Vec<(&str, Vec<String>)> = vec![
        ("Name", one(&v.name)),
        ("ID", one(&v.script_id)),
        ("Version", one(version)),
        ("Interpreter", one(v.interpreter.as_str())),
        ("Description", one(or_dash(Some(&v.description)))),
        (
            "Saved",
            one(format!(
                "{} by {}",
                when(v.created_at_ms, now_ms),
                v.created_by
            )),
        ),
    ];
    let mut out = key_values(&rows);
    if v.parameters.is_empty() {
        out.push_str("\nNo parameters.\n");
    } else {
        out.push_str("\nParameters (in positional order):\n");
        let rows = v
            .parameters
            .iter()
            .map(|p| {
                vec![
                    p.name.clone(),
                    if p.enum_values.is_empty() {
                        p.param_type.as_str().to_string()
                    } else {
                        format!("enum({})", p.enum_values.join("|"))
                    },
                    match &p.default {
                        None | Some(serde_json::Value::Null) => "-".into(),
                        Some(serde_json::Value::String(s)) => s.clone(),
                        Some(other) => other.to_string(),
                    },
                    if p.required { "yes" } else { "no" }.into(),
                    or_dash(Some(&p.description)),
                ]
            })
            .collect();
        out.push_str(&table(
            &["NAME", "TYPE", "DEFAULT", "REQUIRED", "DESCRIPTION"],
            rows,
        ));
    }
    out.push_str("\nBody:\n");
    push_lines(&v.body, "    ", &mut out);
    out
}

/// The latest version of a script in the shape [`script_detail`] shows.
pub fn latest_version(s: &ScriptInfo) -> ScriptVersionInfo {
    ScriptVersionInfo {
        script_id: s.id.clone(),
        version: s.latest_version,
        name: s.name.clone(),
        description: s.description.clone(),
        interpreter: s.interpreter,
        body: s.body.clone(),
        parameters: s.parameters.clone(),
        created_at_ms: s.updated_at_ms,
        created_by: s.updated_by.clone(),
    }
}

#[cfg(test)]
mod tests {
    //! Snapshots from the wire-format fixtures in `tests/fixtures`, rendered at a fixed `NOW`.

    use super::*;
    use capstan_proto::jobs::JobPage;

    use crate::test_support::{NOW, fixture};

    fn assert_terminal_safe(text: &str) {
        crate::test_support::assert_terminal_safe(text, &['\t']);
    }

    #[test]
    fn results_show_header_reason_and_output() {
        let runs: Vec<RunDetail> = fixture("run_details.json");
        let text: String = runs.iter().map(|d| run_result(d, false)).collect();
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn a_plain_exit_code_is_not_repeated_as_the_reason() {
        let runs: Vec<RunDetail> = fixture("run_details.json");
        let failed = runs
            .iter()
            .find(|d| d.run.reason.as_deref() == Some("exit code 2"))
            .unwrap();
        let text = run_result(failed, false);
        assert!(
            text.starts_with("db-01: failed (exit 2, 0.1 s)\n"),
            "{text}"
        );
        assert!(!text.contains("reason:"), "{text}");
        let text = run_result(failed, true);
        assert!(
            text.starts_with("db-01 [d2]: failed (exit 2, 0.1 s)\n"),
            "{text}"
        );
    }

    #[test]
    fn result_lines_are_one_json_object_each() {
        let runs: Vec<RunDetail> = fixture("run_details.json");
        let mut text = String::new();
        for d in &runs {
            text.push_str(&crate::output::json_line(&ResultLine::new(d)).unwrap());
        }
        assert_eq!(text.lines().count(), runs.len());
        let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["type"], "result");
        assert_eq!(first["duration_ms"], 420);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn summary_and_progress_lines() {
        let mut c = RunCounts::default();
        c.add(RunState::Succeeded, 3);
        c.add(RunState::Failed, 1);
        assert_eq!(
            summary("j1", &c, true),
            "Done: 3 succeeded, 1 failed, 0 timed out, 0 cancelled, 0 expired (job j1).\n"
        );
        c.add(RunState::Running, 2);
        c.add(RunState::Queued, 4);
        assert_eq!(
            summary("j1", &c, false),
            "Stopped watching: 3 succeeded, 1 failed, 0 timed out, 0 cancelled, 0 expired, 6 not finished (job j1).\n"
        );
        assert_eq!(progress(&c), "4/10 done (2 running, 4 waiting)");
        assert_eq!(unsuccessful(&c), 1);
    }

    #[test]
    fn jobs_list_table() {
        let page: JobPage = fixture("jobs_page.json");
        let mut text = jobs_table(&page.items, NOW);
        text.push_str(
            &page_footer("jobs", 0, page.items.len() as u64, page.total).unwrap_or_default(),
        );
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
        assert_eq!(jobs_table(&[], NOW), "No jobs.\n");
    }

    #[test]
    fn jobs_show_table() {
        let page: JobPage = fixture("jobs_page.json");
        let runs: RunPage = fixture("runs_page.json");
        let text = job_detail(&page.items[0], &runs, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn run_detail_lists_attempts_and_history() {
        let runs: Vec<RunDetail> = fixture("run_details.json");
        let retried = runs.iter().find(|d| d.attempts.len() > 1).unwrap();
        let text = run_detail(retried, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!(text);
    }

    #[test]
    fn breakers_and_scripts_tables() {
        let breakers: Vec<BreakerInfo> = fixture("breakers.json");
        let text = breakers_table(&breakers, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!("breakers_table", text);
        let scripts: Vec<ScriptInfo> = fixture("scripts.json");
        let text = scripts_table(&scripts, NOW);
        assert_terminal_safe(&text);
        insta::assert_snapshot!("scripts_table", text);
        let text = script_detail(
            &latest_version(&scripts[0]),
            Some(scripts[0].latest_version),
            NOW,
        );
        assert_terminal_safe(&text);
        insta::assert_snapshot!("script_show", text);
    }

    #[test]
    fn argv_is_shown_quoted_as_a_shell_would_need() {
        let a = JobAction::Command {
            argv: vec![
                "sh".into(),
                "-c".into(),
                "echo 'hi' $HOME".into(),
                String::new(),
            ],
        };
        assert_eq!(action_text(&a), r#"sh -c 'echo '\''hi'\'' $HOME' ''"#);
    }
}

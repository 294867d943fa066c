//! Desired software state from the command line: `capstan assign`, `capstan assignments …`,
//! `capstan deployments …` (with the live `watch`), `capstan windows …`, and a device's
//! software (`capstan devices software`, `software-history`, `software-install`).
//!
//! Removing an assignment or deleting a deployment makes devices uninstall what it installed,
//! so both ask for confirmation on a terminal (saying exactly that) and refuse to guess without
//! one, like every destructive command. `deployments watch` polls the status route once a
//! second: on a terminal it redraws a compact view in place, otherwise it prints one line per
//! device whose status changed, so a log or a CI job reads as a history.

use std::collections::{HashMap, HashSet};
use std::io::IsTerminal as _;
use std::time::Duration;

use capstan_client::api::ApiClient;
use capstan_proto::deploy::{
    AssignmentInfo, AssignmentQuery, CreateAssignmentRequest, CreateDeploymentRequest,
    CreateWindowRequest, DeploymentStatus, DeviceItemState, ItemStatus, NetworkPolicy, Rollout,
    StatusCounts, TargetKind, TargetRef, WindowPolicy, WindowSchedule,
};
use serde::Serialize;

use super::{Context, write_stdout};
use crate::deploy_cli::{
    AssignTarget, AssignmentArgs, AssignmentsCommand, DeploymentCreateArgs, DeploymentsCommand,
    WindowCreateArgs, WindowsCommand,
};
use crate::deploy_output;
use crate::failure::{Failure, FailureKind};
use crate::{output, prompt};

/// How often `watch` reads the status.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Devices `watch` reads per poll (the server's largest page).
const WATCH_PAGE: u64 = 1000;
/// Polls in a row without any device before `watch` decides the deployment reaches none (a
/// new deployment has none until the server compiled its devices, within about a second).
const EMPTY_POLLS: u32 = 5;
/// Consecutive connection failures `watch` rides out (about ten seconds).
const MAX_TRANSPORT_RETRIES: u32 = 10;
/// Devices the live view lists at most.
const VIEW_DEVICES: usize = 15;

fn target_ref(t: &AssignTarget) -> anyhow::Result<TargetRef> {
    match (&t.group, &t.device) {
        (Some(g), None) => Ok(TargetRef {
            kind: TargetKind::Group,
            id: g.clone(),
        }),
        (None, Some(d)) => Ok(TargetRef {
            kind: TargetKind::Device,
            id: d.clone(),
        }),
        // The grammar makes the two exclusive and one required; kept as an error, not a panic.
        _ => Err(Failure::new(
            FailureKind::InvalidInput,
            "give exactly one of --group and --device",
        )
        .into()),
    }
}

fn assignment_request(a: &AssignmentArgs) -> anyhow::Result<CreateAssignmentRequest> {
    Ok(CreateAssignmentRequest {
        package: a.package.package.clone(),
        version: a.package.version.clone(),
        target: target_ref(&a.target)?,
        intent: a.intent.wire(),
        leave_installed: a.leave_installed,
    })
}

/// The request `capstan deployments create` sends.
pub fn deployment_request(c: &DeploymentCreateArgs) -> anyhow::Result<CreateDeploymentRequest> {
    let a = assignment_request(&c.assignment)?;
    Ok(CreateDeploymentRequest {
        name: c.name.clone(),
        description: c.description.clone(),
        package: a.package,
        version: a.version,
        target: a.target,
        intent: a.intent,
        leave_installed: a.leave_installed,
        available_from_ms: c.available_from,
        deadline_ms: c.deadline,
        window_policy: if c.ignore_windows {
            WindowPolicy::Ignore
        } else {
            WindowPolicy::Respect
        },
        network: NetworkPolicy {
            max_bytes_per_sec: c.max_rate,
            site_sources_only: c.site_sources_only,
            skip_metered: c.skip_metered,
        },
        rollout: Rollout::AllAtOnce,
    })
}

/// The request `capstan windows create` sends.
pub fn window_request(w: &WindowCreateArgs) -> anyhow::Result<CreateWindowRequest> {
    let schedule = match (&w.weekly, &w.start, &w.cron) {
        (Some(days), Some(start), None) => WindowSchedule::Weekly {
            days: days.0.clone(),
            start: start.clone(),
            duration_minutes: w.duration,
        },
        (None, None, Some(expression)) => WindowSchedule::Cron {
            expression: expression.clone(),
            duration_minutes: w.duration,
        },
        _ => {
            return Err(Failure::new(
                FailureKind::InvalidInput,
                "give --weekly DAYS with --start HH:MM, or --cron EXPR",
            )
            .into());
        }
    };
    Ok(CreateWindowRequest {
        name: w.name.clone(),
        description: w.description.clone(),
        schedule,
        timezone: w.timezone.clone(),
        // `--groups "web, db"` means the same as `--groups web,db`.
        groups: w
            .groups
            .iter()
            .map(|g| g.trim().to_string())
            .filter(|g| !g.is_empty())
            .collect(),
    })
}

/// How many devices a group target covers now; `None` for a device or when the group cannot
/// be read (the line is a courtesy, not worth failing the command for).
async fn reach(client: &ApiClient, a: &AssignmentInfo) -> Option<String> {
    if !deploy_output::is_group(a) {
        return None;
    }
    let g = client.get_group(&a.target_id).await.ok()?;
    Some(deploy_output::group_reach(g.members, &g.name))
}

/// Refuse a destructive command without `--yes` when nobody can be asked. Decided before any
/// request, so a script fails the same way whether or not the server is reachable.
fn require_confirmation(yes: bool, what: &str) -> anyhow::Result<()> {
    if !yes && !prompt::stdin_is_terminal() {
        return Err(Failure::new(
            FailureKind::ConfirmationRequired,
            format!(
                "refusing to {what} without confirmation: standard input is not a terminal; pass --yes"
            ),
        )
        .into());
    }
    Ok(())
}

fn confirm(question: &str) -> anyhow::Result<()> {
    if prompt::confirm(&output::sanitize_for_terminal(question))? {
        Ok(())
    } else {
        Err(Failure::new(FailureKind::Aborted, "cancelled; nothing was changed").into())
    }
}

/// `capstan assign`.
pub async fn assign(ctx: &Context, args: AssignmentArgs) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let a = client
        .create_assignment(&assignment_request(&args)?)
        .await?;
    let reach = if ctx.json_output() {
        None
    } else {
        reach(&client, &a).await
    };
    let now = super::now_ms();
    ctx.emit(&a, || {
        deploy_output::assignment_detail(&a, reach.as_deref(), now)
    })
}

/// `capstan assignments …`.
pub async fn assignments(ctx: &Context, cmd: AssignmentsCommand) -> anyhow::Result<()> {
    match cmd {
        AssignmentsCommand::List {
            package,
            group,
            device,
        } => {
            let items = ctx
                .client()?
                .list_assignments(&AssignmentQuery {
                    package,
                    group,
                    device,
                })
                .await?;
            ctx.emit(&items, || {
                deploy_output::assignments_table(&items, ctx.now_ms)
            })
        }
        AssignmentsCommand::Show { id } => {
            let client = ctx.client()?;
            let a = client.get_assignment(&id).await?;
            let reach = if ctx.json_output() {
                None
            } else {
                reach(&client, &a).await
            };
            ctx.emit(&a, || {
                deploy_output::assignment_detail(&a, reach.as_deref(), ctx.now_ms)
            })
        }
        AssignmentsCommand::Remove { id, yes } => {
            require_confirmation(yes, &format!("remove assignment {id}"))?;
            let client = ctx.client()?;
            let a = client.get_assignment(&id).await?;
            let effect = deploy_output::removal_effect(&a);
            if !yes {
                let mut question = format!(
                    "Remove assignment {id} ({} {} to {})? {effect}.",
                    a.package_name,
                    a.intent.as_str(),
                    deploy_output::target_text(&a)
                );
                if a.deployment.is_some() {
                    question.push_str(" Its deployment is deleted with it.");
                }
                confirm(&question)?;
            }
            client.delete_assignment(&id).await?;
            ctx.note(&format!("Assignment {id} removed: {effect}."));
            Ok(())
        }
    }
}

/// `capstan deployments …`.
pub async fn deployments(ctx: &Context, cmd: DeploymentsCommand) -> anyhow::Result<()> {
    match cmd {
        DeploymentsCommand::Create(args) => {
            let d = ctx
                .client()?
                .create_deployment(&deployment_request(&args)?)
                .await?;
            let now = super::now_ms();
            ctx.emit(&d, || deploy_output::deployment_detail(&d, now))
        }
        DeploymentsCommand::List => {
            let items = ctx.client()?.list_deployments().await?;
            ctx.emit(&items, || {
                deploy_output::deployments_table(&items, ctx.now_ms)
            })
        }
        DeploymentsCommand::Show { deployment } => {
            let d = ctx.client()?.get_deployment(&deployment).await?;
            ctx.emit(&d, || deploy_output::deployment_detail(&d, ctx.now_ms))
        }
        DeploymentsCommand::Status { deployment, limit } => {
            let st = ctx.client()?.deployment_status(&deployment, limit).await?;
            ctx.emit(&st, || deploy_output::deployment_status(&st, ctx.now_ms))
        }
        DeploymentsCommand::Watch { deployment } => watch(ctx, &deployment).await,
        DeploymentsCommand::Pause { deployment } => {
            let d = ctx.client()?.pause_deployment(&deployment).await?;
            ctx.note(&format!(
                "Deployment {} paused: its devices keep what they have until it is resumed.",
                d.name
            ));
            let now = super::now_ms();
            ctx.emit(&d, || deploy_output::deployment_detail(&d, now))
        }
        DeploymentsCommand::Resume { deployment } => {
            let d = ctx.client()?.resume_deployment(&deployment).await?;
            ctx.note(&format!("Deployment {} resumed.", d.name));
            let now = super::now_ms();
            ctx.emit(&d, || deploy_output::deployment_detail(&d, now))
        }
        DeploymentsCommand::Delete { deployment, yes } => {
            require_confirmation(yes, &format!("delete deployment {deployment}"))?;
            let client = ctx.client()?;
            let d = client.get_deployment(&deployment).await?;
            let effect = deploy_output::removal_effect(&d.assignment);
            if !yes {
                confirm(&format!(
                    "Delete deployment {} ({} {} to {})? {effect}.",
                    d.name,
                    d.assignment.package_name,
                    d.assignment.intent.as_str(),
                    deploy_output::target_text(&d.assignment)
                ))?;
            }
            // By id: the name was only how the operator found it.
            client.delete_deployment(&d.id).await?;
            ctx.note(&format!("Deployment {} deleted: {effect}.", d.name));
            Ok(())
        }
    }
}

/// `capstan windows …`.
pub async fn windows(ctx: &Context, cmd: WindowsCommand) -> anyhow::Result<()> {
    match cmd {
        WindowsCommand::List => {
            let items = ctx.client()?.list_windows().await?;
            ctx.emit(&items, || deploy_output::windows_table(&items, ctx.now_ms))
        }
        WindowsCommand::Show { window } => {
            let w = ctx.client()?.get_window(&window).await?;
            ctx.emit(&w, || deploy_output::window_detail(&w, ctx.now_ms))
        }
        WindowsCommand::Create(args) => {
            let w = ctx.client()?.create_window(&window_request(&args)?).await?;
            let now = super::now_ms();
            ctx.emit(&w, || deploy_output::window_detail(&w, now))
        }
        WindowsCommand::Delete { window, yes } => {
            require_confirmation(yes, &format!("delete maintenance window {window}"))?;
            let client = ctx.client()?;
            let w = client.get_window(&window).await?;
            if !yes {
                confirm(&format!(
                    "Delete maintenance window {} ({})? Installs that waited for it go ahead unless another window holds them.",
                    w.name,
                    deploy_output::schedule_text(&w.schedule)
                ))?;
            }
            client.delete_window(&w.id).await?;
            ctx.note(&format!("Maintenance window {} deleted.", w.name));
            Ok(())
        }
    }
}

/// `capstan devices software DEVICE`.
pub async fn device_software(ctx: &Context, device: &str) -> anyhow::Result<()> {
    let state = ctx.client()?.device_software(device).await?;
    ctx.emit(&state, || {
        deploy_output::device_software(&state, ctx.now_ms)
    })
}

/// `capstan devices software-history DEVICE PACKAGE`.
pub async fn software_history(
    ctx: &Context,
    device: &str,
    package: &str,
    logs: bool,
) -> anyhow::Result<()> {
    let entries = ctx.client()?.software_history(device, package).await?;
    ctx.emit(&entries, || deploy_output::software_history(&entries, logs))
}

/// `capstan devices software-install DEVICE PACKAGE`.
pub async fn software_install(ctx: &Context, device: &str, package: &str) -> anyhow::Result<()> {
    ctx.client()?
        .request_software_install(device, package)
        .await?;
    ctx.note(&deploy_output::install_requested(device, package));
    Ok(())
}

/// The part of a device's state whose change `watch` reports (download progress is left out:
/// it would print a line per second).
type Seen = (ItemStatus, Option<String>, Option<String>, Option<i32>);

/// Which devices changed since the last poll.
#[derive(Debug, Default)]
pub struct ChangeTracker {
    seen: HashMap<String, Seen>,
}

impl ChangeTracker {
    /// The devices of `page` that are new or whose status, version, detail or exit code
    /// changed, in the page's order.
    pub fn changed<'a>(&mut self, page: &'a [DeviceItemState]) -> Vec<&'a DeviceItemState> {
        let mut out = Vec::new();
        for i in page {
            let now: Seen = (i.status, i.version.clone(), i.detail.clone(), i.exit_code);
            if self.seen.get(&i.device_id) != Some(&now) {
                self.seen.insert(i.device_id.clone(), now);
                out.push(i);
            }
        }
        out
    }
}

/// Hostnames that several devices of the page share (their lines name the device too).
fn shared_hostnames(page: &[DeviceItemState]) -> HashSet<&str> {
    let mut first: HashMap<&str, &str> = HashMap::new();
    let mut shared = HashSet::new();
    for i in page {
        let id = first.entry(&i.hostname).or_insert(&i.device_id);
        if *id != i.device_id {
            shared.insert(i.hostname.as_str());
        }
    }
    shared
}

/// Whether watching is over: every device reached an end state, or the deployment reached
/// no device for [`EMPTY_POLLS`] polls in a row.
pub fn finished(c: &StatusCounts, empty_polls: &mut u32) -> bool {
    if c.total == 0 {
        *empty_polls += 1;
        return *empty_polls >= EMPTY_POLLS;
    }
    *empty_polls = 0;
    deploy_output::not_done(c) == 0
}

#[derive(Serialize)]
struct DeviceLine<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    item: &'a DeviceItemState,
}

#[derive(Serialize)]
struct WatchSummary<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    deployment_id: &'a str,
    name: &'a str,
    complete: bool,
    counts: &'a StatusCounts,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_rate: Option<f64>,
}

fn is_transport(e: &capstan_client::Error) -> bool {
    matches!(e, capstan_client::Error::Transport { .. })
}

enum Mode {
    Json,
    /// Redrawn in place; what was drawn last time (empty: nothing to move back over).
    Live {
        drawn: String,
        width: usize,
    },
    Lines,
}

struct Watcher {
    client: ApiClient,
    id: String,
    mode: Mode,
    tracker: ChangeTracker,
    last: DeploymentStatus,
}

impl Watcher {
    async fn run(&mut self) -> anyhow::Result<()> {
        let mut empty_polls = 0;
        let mut failures = 0;
        loop {
            if failures == 0 {
                self.show()?;
                if finished(&self.last.deployment.counts, &mut empty_polls) {
                    return Ok(());
                }
            }
            tokio::time::sleep(WATCH_EVERY).await;
            match self
                .client
                .deployment_status(&self.id, Some(WATCH_PAGE))
                .await
            {
                Ok(st) => {
                    self.last = st;
                    failures = 0;
                }
                Err(e) if is_transport(&e) && failures < MAX_TRANSPORT_RETRIES => {
                    if failures == 0 {
                        eprintln!(
                            "{}",
                            output::sanitize_for_terminal(&format!(
                                "Lost the connection to the server ({}); retrying.",
                                crate::failure::classify(&anyhow::Error::new(e)).message
                            ))
                        );
                        // The message moved the view down; draw it anew below.
                        if let Mode::Live { drawn, .. } = &mut self.mode {
                            drawn.clear();
                        }
                    }
                    failures += 1;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn show(&mut self) -> anyhow::Result<()> {
        let st = &self.last;
        match &mut self.mode {
            Mode::Json => {
                let mut text = String::new();
                for item in self.tracker.changed(&st.devices) {
                    text.push_str(&output::json_line(&DeviceLine {
                        kind: "device",
                        item,
                    })?);
                }
                write_stdout(&text)
            }
            Mode::Lines => {
                let shared = shared_hostnames(&st.devices);
                let text: String = self
                    .tracker
                    .changed(&st.devices)
                    .into_iter()
                    .map(|i| deploy_output::watch_line(i, shared.contains(i.hostname.as_str())))
                    .collect();
                write_stdout(&text)
            }
            Mode::Live { drawn, width } => {
                let view = deploy_output::watch_view(st, *width, VIEW_DEVICES);
                if view == *drawn {
                    return Ok(());
                }
                // Back to the first line of the previous view, and clear from there.
                let lines = drawn.lines().count();
                let mut text = if lines > 0 {
                    format!("\x1b[{lines}F\x1b[J")
                } else {
                    String::new()
                };
                text.push_str(&view);
                *drawn = view;
                write_stdout(&text)
            }
        }
    }
}

/// `capstan deployments watch`.
async fn watch(ctx: &Context, deployment: &str) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let first = client
        .deployment_status(deployment, Some(WATCH_PAGE))
        .await?;
    let mode = if ctx.json_output() {
        Mode::Json
    } else if std::io::stdout().is_terminal() {
        // comfy-table asks the terminal for its width when standard output is one; a pseudo
        // terminal without a size reports 0.
        let width = comfy_table::Table::new()
            .width()
            .filter(|w| *w >= 20)
            .map_or(100, usize::from);
        Mode::Live {
            drawn: String::new(),
            width,
        }
    } else {
        ctx.note(&format!(
            "Watching deployment {}; Ctrl-C stops watching (the deployment goes on).",
            first.deployment.name
        ));
        Mode::Lines
    };
    let mut w = Watcher {
        client,
        id: first.deployment.id.clone(),
        mode,
        tracker: ChangeTracker::default(),
        last: first,
    };
    let interrupt = async {
        // Without a signal handler there is no Ctrl-C to wait for.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let complete = tokio::select! {
        r = w.run() => {
            r?;
            true
        }
        () = interrupt => false,
    };
    let st = &w.last;
    let d = &st.deployment;
    let text = if matches!(w.mode, Mode::Json) {
        output::json_line(&WatchSummary {
            kind: "summary",
            deployment_id: &d.id,
            name: &d.name,
            complete,
            counts: &d.counts,
            success_rate: st.success_rate,
        })?
    } else {
        deploy_output::watch_summary(st, complete)
    };
    write_stdout(&text)?;
    if !complete {
        return Err(Failure::new(
            FailureKind::Interrupted,
            format!(
                "stopped watching; deployment {} goes on: see `capstan deployments status {}`",
                d.name, d.name
            ),
        )
        .into());
    }
    if d.counts.failed > 0 {
        return Err(Failure::new(
            FailureKind::DevicesFailed,
            format!(
                "{} of {} device(s) failed; details: `capstan deployments status {}`",
                d.counts.failed, d.counts.total, d.name
            ),
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use crate::test_support::fixture;
    use clap::Parser;

    #[test]
    fn only_changed_devices_are_reported_again() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let mut t = ChangeTracker::default();
        assert_eq!(t.changed(&st.devices).len(), st.devices.len(), "all new");
        assert!(t.changed(&st.devices).is_empty(), "nothing changed");

        let mut next = st.devices.clone();
        // Progress alone is no change worth a line; a status or detail change is.
        next[2].progress = None;
        next[3].detail = Some("maintenance window open".into());
        next[5].status = ItemStatus::Failed;
        next[5].exit_code = Some(1);
        let changed: Vec<&str> = t
            .changed(&next)
            .into_iter()
            .map(|i| i.hostname.as_str())
            .collect();
        assert_eq!(changed, ["web-06", "web-01"]);
    }

    #[test]
    fn shared_hostnames_are_found() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let mut page = st.devices.clone();
        assert!(shared_hostnames(&page).is_empty());
        page[1].hostname = "web-03".into();
        assert_eq!(shared_hostnames(&page), HashSet::from(["web-03"]));
    }

    #[test]
    fn watching_ends_when_every_device_is_done_or_none_shows_up() {
        let st: DeploymentStatus = fixture("deployment_status.json");
        let mut c = st.deployment.counts.clone();
        let mut empty = 0;
        assert!(!finished(&c, &mut empty), "one waiting, one downloading");
        c.waiting = 0;
        c.downloading = 0;
        c.installed += 2;
        assert!(finished(&c, &mut empty));

        let none = StatusCounts::default();
        let mut empty = 0;
        for _ in 1..EMPTY_POLLS {
            assert!(!finished(&none, &mut empty), "not yet compiled, maybe");
        }
        assert!(finished(&none, &mut empty));
        // Devices appearing reset the count.
        let mut empty = EMPTY_POLLS - 1;
        assert!(!finished(&st.deployment.counts, &mut empty));
        assert_eq!(empty, 0);
    }

    #[test]
    fn deployment_request_from_the_command_line() {
        let cli = Cli::try_parse_from([
            "capstan",
            "deployments",
            "create",
            "web",
            "nginx",
            "--device",
            "d1",
            "--max-rate",
            "512KiB/s",
            "--ignore-windows",
        ])
        .unwrap();
        let Command::Deployments(DeploymentsCommand::Create(args)) = cli.command else {
            panic!("wrong command parsed");
        };
        let req = deployment_request(&args).unwrap();
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "name": "web", "package": "nginx",
                "target": {"kind": "device", "id": "d1"},
                "intent": "required", "leave_installed": false,
                "window_policy": "ignore",
                "network": {"max_bytes_per_sec": 524288, "site_sources_only": false,
                            "skip_metered": false},
                "rollout": "all_at_once"
            })
        );
    }

    #[test]
    fn window_request_from_the_command_line() {
        let cli = Cli::try_parse_from([
            "capstan",
            "windows",
            "create",
            "nightly",
            "--groups",
            "web, db",
            "--weekly",
            "fri-mon",
            "--start",
            "1:30",
            "--duration",
            "90m",
            "--timezone",
            "UTC",
        ])
        .unwrap();
        let Command::Windows(WindowsCommand::Create(args)) = cli.command else {
            panic!("wrong command parsed");
        };
        let req = window_request(&args).unwrap();
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            serde_json::json!({
                "name": "nightly",
                "schedule": {"kind": "weekly", "days": ["mon", "fri", "sat", "sun"],
                             "start": "01:30", "duration_minutes": 90},
                "timezone": "UTC", "groups": ["web", "db"]
            })
        );
    }
}

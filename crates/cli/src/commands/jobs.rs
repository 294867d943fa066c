//! `capstan run` and `capstan jobs …`: create a job (a command, a script or a reboot) and
//! print each device's result as its run ends, like `salt '*' cmd.run`; list, inspect, cancel
//! and retry jobs; circuit breakers.
//!
//! Results are collected by polling, not from the live event stream: the job's counts are read
//! every 100 ms (backing off to 2 s while nothing changes), and when the count of a terminal
//! state moved, that state's runs are listed and the new ones printed with their output. A
//! run is printed once (by run id) and, before finishing, one sweep over every run makes sure
//! none was missed — the run list is exact where the event stream's cursor is not (see the
//! server's `job_events`). Ctrl-C stops watching, never the job.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{IsTerminal, Write as _};
use std::time::{Duration, Instant};

use capstan_client::api::{ApiClient, JobListQuery, RunListQuery};
use capstan_proto::jobs::{
    CreateJobRequest, JobAction, JobInfo, JobSpec, JobTargets, RetryPolicy, RunCounts, RunDetail,
    RunInfo, RunPage, RunState, limits,
};
use serde::Serialize;

use super::{Context, write_stdout};
use crate::cli::{ExecArgs, JobsCommand, RunArgs, TargetArgs};
use crate::failure::{Failure, FailureKind};
use crate::job_output::{self, ResultLine, SummaryLine};
use crate::output;
use crate::params::shebang_interpreter;

/// Fastest poll of a watched job, and the slowest it backs off to while nothing changes.
const MIN_POLL: Duration = Duration::from_millis(100);
const MAX_POLL: Duration = Duration::from_secs(2);
/// Run details fetched at once when many runs end together.
const DETAIL_CONCURRENCY: usize = 8;
/// The server's largest page.
const PAGE: u64 = 500;
/// Without a terminal, a progress line at most this often.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// Consecutive connection failures tolerated while watching (about 20 s).
const MAX_TRANSPORT_RETRIES: u32 = 10;

const TERMINAL: [RunState; 5] = [
    RunState::Succeeded,
    RunState::Failed,
    RunState::TimedOut,
    RunState::Cancelled,
    RunState::Expired,
];

fn count_of(c: &RunCounts, s: RunState) -> u64 {
    match s {
        RunState::Queued => c.queued,
        RunState::Delivered => c.delivered,
        RunState::Running => c.running,
        RunState::Rebooting => c.rebooting,
        RunState::Succeeded => c.succeeded,
        RunState::Failed => c.failed,
        RunState::TimedOut => c.timed_out,
        RunState::Cancelled => c.cancelled,
        RunState::Expired => c.expired,
    }
}

pub(super) fn targets(t: &TargetArgs) -> JobTargets {
    JobTargets {
        devices: t.devices.clone(),
        groups: t.groups.clone(),
        follow_group_joins: t.follow_joins,
    }
}

pub(super) fn retry(e: &ExecArgs) -> RetryPolicy {
    let mut r = RetryPolicy::default();
    if let Some(n) = e.attempts {
        r.max_attempts = n;
    }
    if let Some(b) = e.backoff {
        r.backoff_secs = b;
    }
    r
}

pub(super) fn env(e: &ExecArgs) -> BTreeMap<String, String> {
    e.env.iter().cloned().collect()
}

/// Read a script body from `path` (`-`: standard input): UTF-8, not empty, within the
/// server's size limit, so a mistake is reported before anything is sent.
pub(super) fn read_script(path: &str) -> anyhow::Result<String> {
    use std::io::Read as _;
    let what = if path == "-" {
        "standard input".to_string()
    } else {
        path.to_string()
    };
    let cap = limits::MAX_SCRIPT_BYTES as u64;
    let mut bytes = Vec::new();
    let read = if path == "-" {
        std::io::stdin().take(cap + 1).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(cap + 1).read_to_end(&mut bytes))
    };
    let invalid = |m: String| anyhow::Error::new(Failure::new(FailureKind::InvalidInput, m));
    read.map_err(|e| invalid(format!("reading the script from {what}: {e}")))?;
    if bytes.len() as u64 > cap {
        return Err(invalid(format!(
            "the script in {what} is larger than {cap} bytes, the server's limit"
        )));
    }
    let body = String::from_utf8(bytes)
        .map_err(|_| invalid(format!("the script in {what} is not UTF-8 text")))?;
    if body.trim().is_empty() {
        return Err(invalid(format!("the script in {what} is empty")));
    }
    Ok(body)
}

/// `capstan run`.
pub async fn run(ctx: &Context, args: RunArgs) -> anyhow::Result<()> {
    let action = if args.reboot {
        JobAction::Reboot
    } else if let Some(path) = &args.script {
        let body = read_script(path)?;
        let interpreter = match args.interpreter {
            Some(i) => i.wire(),
            None => shebang_interpreter(&body)
                .map_err(|e| Failure::new(FailureKind::InvalidInput, format!("{path}: {e}")))?
                .unwrap_or(capstan_proto::jobs::Interpreter::Sh),
        };
        JobAction::Script {
            interpreter,
            body,
            args: args.command.clone(),
        }
    } else {
        JobAction::Command {
            argv: args.command.clone(),
        }
    };
    let spec = JobSpec {
        action,
        timeout_secs: args.exec.timeout.unwrap_or(limits::DEFAULT_TIMEOUT_SECS),
        env: env(&args.exec),
        working_dir: args.exec.cwd.clone(),
        run_as: args.exec.run_as.clone(),
        pre_script: None,
        post_script: None,
        post_script_always: false,
        reboot_exit_codes: Vec::new(),
    };
    let req = CreateJobRequest {
        name: args.name.clone(),
        spec,
        targets: targets(&args.targets),
        expires_in_secs: args.exec.expires,
        retry: retry(&args.exec),
    };
    let client = ctx.client()?;
    let job = client.create_job(&req).await?;
    after_create(ctx, &client, job, args.wait.no_wait).await
}

/// After a job was created: print its id (`--no-wait`) or watch it to the end.
pub(super) async fn after_create(
    ctx: &Context,
    client: &ApiClient,
    job: JobInfo,
    no_wait: bool,
) -> anyhow::Result<()> {
    if no_wait {
        ctx.note(&format!(
            "Job {id} created with {n} run(s). Follow it with `capstan jobs watch {id}`; cancel it with `capstan jobs cancel {id}`.",
            id = job.id,
            n = job.counts.total
        ));
        return ctx.emit(&job, || format!("{}\n", job.id));
    }
    watch(ctx, client, job).await
}

/// The progress line on standard error: redrawn in place on a terminal, otherwise a plain
/// line now and then.
struct Progress {
    tty: bool,
    drawn: bool,
    last_plain: Option<Instant>,
    last_text: String,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            tty: std::io::stderr().is_terminal(),
            drawn: false,
            last_plain: None,
            last_text: String::new(),
        }
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut err = std::io::stderr().lock();
            let _ = err.write_all(b"\r\x1b[K");
            let _ = err.flush();
            self.drawn = false;
        }
    }

    fn draw(&mut self, counts: &RunCounts) {
        let text = job_output::progress(counts);
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{text}");
            let _ = err.flush();
            self.drawn = true;
        } else if text != self.last_text
            && self
                .last_plain
                .is_none_or(|t| t.elapsed() >= PLAIN_PROGRESS_EVERY)
        {
            let _ = writeln!(err, "{text}");
            self.last_plain = Some(Instant::now());
            self.last_text = text;
        }
    }
}

/// Collects a job's results: which runs were printed, and the per-state totals at the last
/// listing of each terminal state.
struct Watcher {
    client: ApiClient,
    job_id: String,
    json: bool,
    reported: HashSet<String>,
    listed: [u64; TERMINAL.len()],
    tally: RunCounts,
    last_counts: RunCounts,
    progress: Progress,
    /// A device id per hostname seen, and the hostnames several devices of the job share:
    /// their results name the device too.
    hosts: HashMap<String, String>,
    shared_hosts: HashSet<String>,
}

fn is_transport(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<capstan_client::Error>(),
        Some(capstan_client::Error::Transport { .. })
    )
}

impl Watcher {
    /// Poll until every run has ended and been printed.
    async fn run(&mut self, job: JobInfo) -> anyhow::Result<()> {
        if !self.json {
            // Learn which hostnames repeat before the first result is printed.
            let (_, runs) = self.list(None).await?;
            self.learn(&runs);
        }
        let mut job = Some(job);
        let mut interval = MIN_POLL;
        let mut failures = 0;
        loop {
            match self.step(job.take()).await {
                Ok((true, _)) => return Ok(()),
                Ok((false, news)) => {
                    failures = 0;
                    interval = if news {
                        MIN_POLL
                    } else {
                        (interval * 3 / 2).min(MAX_POLL)
                    };
                }
                Err(e) if is_transport(&e) && failures < MAX_TRANSPORT_RETRIES => {
                    if failures == 0 {
                        self.progress.clear();
                        eprintln!(
                            "{}",
                            output::sanitize_for_terminal(&format!(
                                "Lost the connection to the server ({}); retrying.",
                                crate::failure::classify(&e).message
                            ))
                        );
                    }
                    failures += 1;
                    interval = MAX_POLL;
                }
                Err(e) => return Err(e),
            }
            self.progress.draw(&self.last_counts);
            tokio::time::sleep(interval).await;
        }
    }

    /// One poll: the job's counts, the runs of terminal states whose count moved, and the
    /// final sweep when the counts say every run has ended. Returns (done, printed anything).
    async fn step(&mut self, job: Option<JobInfo>) -> anyhow::Result<(bool, bool)> {
        let job = match job {
            Some(j) => j,
            None => self.client.get_job(&self.job_id).await?,
        };
        self.last_counts = job.counts.clone();
        let mut news = false;
        for (i, state) in TERMINAL.into_iter().enumerate() {
            if count_of(&job.counts, state) != self.listed[i] {
                let (total, runs) = self.list(Some(state)).await?;
                self.learn(&runs);
                self.listed[i] = total;
                let fresh: Vec<RunInfo> = runs
                    .into_iter()
                    .filter(|r| r.state.is_terminal() && !self.reported.contains(&r.id))
                    .collect();
                news |= self.report(fresh).await? > 0;
            }
        }
        let c = &job.counts;
        let looks_finished = if c.total > 0 {
            c.finished() == c.total
        } else {
            // No runs yet (a job that follows group joins): over when it can get no more.
            job.cancelled_at_ms.is_some() || super::now_ms() >= job.expires_at_ms
        };
        if !looks_finished {
            return Ok((false, news));
        }
        // Every run, once: whatever the per-state listings missed, and proof none is left.
        let (_, runs) = self.list(None).await?;
        self.learn(&runs);
        let open = runs.iter().any(|r| !r.state.is_terminal());
        let ids: Vec<String> = runs.iter().map(|r| r.id.clone()).collect();
        let fresh: Vec<RunInfo> = runs
            .into_iter()
            .filter(|r| r.state.is_terminal() && !self.reported.contains(&r.id))
            .collect();
        let printed = self.report(fresh).await?;
        // A run retried between the listing and its detail is not printed yet: keep polling.
        let done = !open && ids.iter().all(|id| self.reported.contains(id));
        Ok((done, news || printed > 0))
    }

    fn learn(&mut self, runs: &[RunInfo]) {
        for r in runs {
            let first = self
                .hosts
                .entry(r.hostname.clone())
                .or_insert_with(|| r.device_id.clone());
            if *first != r.device_id {
                self.shared_hosts.insert(r.hostname.clone());
            }
        }
    }

    /// Every run of the job (in `state`), page by page. Returns the total and the runs.
    async fn list(&self, state: Option<RunState>) -> anyhow::Result<(u64, Vec<RunInfo>)> {
        let mut items = Vec::new();
        let mut total;
        loop {
            let page = self
                .client
                .list_runs(
                    &self.job_id,
                    &RunListQuery {
                        state,
                        limit: Some(PAGE),
                        offset: Some(items.len() as u64),
                    },
                )
                .await?;
            total = page.total;
            let got = page.items.len();
            items.extend(page.items);
            if got == 0 || items.len() as u64 >= total {
                break;
            }
        }
        Ok((total, items))
    }

    /// Fetch the details of newly ended runs and print them in list order. A run that is no
    /// longer in a terminal state (retried meanwhile) is left for later. Returns how many
    /// were printed.
    async fn report(&mut self, runs: Vec<RunInfo>) -> anyhow::Result<usize> {
        let mut printed = 0;
        for chunk in runs.chunks(DETAIL_CONCURRENCY) {
            let mut set = tokio::task::JoinSet::new();
            for (i, r) in chunk.iter().enumerate() {
                let client = self.client.clone();
                let job = self.job_id.clone();
                let run = r.id.clone();
                set.spawn(async move { (i, client.get_run(&job, &run).await) });
            }
            let mut details: Vec<Option<RunDetail>> = (0..chunk.len()).map(|_| None).collect();
            while let Some(joined) = set.join_next().await {
                let (i, detail) = joined?;
                details[i] = Some(detail?);
            }
            for d in details.into_iter().flatten() {
                if !d.run.state.is_terminal() || self.reported.contains(&d.run.id) {
                    continue;
                }
                self.print(&d)?;
                self.reported.insert(d.run.id.clone());
                self.tally.add(d.run.state, 1);
                printed += 1;
            }
        }
        Ok(printed)
    }

    fn print(&mut self, d: &RunDetail) -> anyhow::Result<()> {
        self.progress.clear();
        let text = if self.json {
            output::json_line(&ResultLine::new(d))?
        } else {
            job_output::run_result(d, self.shared_hosts.contains(&d.run.hostname))
        };
        write_stdout(&text)
    }
}

/// Print every result of `job` as it arrives, then the summary. Fails with `runs_failed`
/// (exit 6) when a run did not succeed and with `interrupted` (exit 130) on Ctrl-C.
pub(super) async fn watch(ctx: &Context, client: &ApiClient, job: JobInfo) -> anyhow::Result<()> {
    let id = job.id.clone();
    ctx.note(&format!(
        "Job {id}: {n} run(s). Ctrl-C stops watching; the job goes on (cancel it with `capstan jobs cancel {id}`).",
        n = job.counts.total
    ));
    let mut w = Watcher {
        client: client.clone(),
        job_id: id.clone(),
        json: ctx.json_output(),
        reported: HashSet::new(),
        listed: [0; TERMINAL.len()],
        tally: RunCounts::default(),
        last_counts: job.counts.clone(),
        progress: Progress::new(),
        hosts: HashMap::new(),
        shared_hosts: HashSet::new(),
    };
    let interrupt = async {
        // Without a signal handler there is no Ctrl-C to wait for.
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let outcome = tokio::select! {
        r = w.run(job) => Some(r),
        () = interrupt => None,
    };
    w.progress.clear();
    let complete = match outcome {
        Some(r) => {
            r?;
            true
        }
        None => false,
    };
    let counts = if complete {
        w.tally.clone()
    } else {
        w.last_counts.clone()
    };
    let text = if ctx.json_output() {
        output::json_line(&SummaryLine {
            kind: "summary",
            job_id: &id,
            complete,
            counts: &counts,
        })?
    } else {
        job_output::summary(&id, &counts, complete)
    };
    write_stdout(&text)?;
    if !complete {
        return Err(Failure::new(
            FailureKind::Interrupted,
            format!(
                "stopped watching; job {id} goes on: watch it with `capstan jobs watch {id}`, cancel it with `capstan jobs cancel {id}`"
            ),
        )
        .into());
    }
    let bad = job_output::unsuccessful(&counts);
    if bad > 0 {
        return Err(Failure::new(
            FailureKind::RunsFailed,
            format!(
                "{bad} of {} run(s) did not succeed; details: `capstan jobs runs {id}`, retry: `capstan jobs retry {id}`",
                counts.total
            ),
        )
        .into());
    }
    Ok(())
}

/// `capstan jobs show -o json`: the job with (the first page of) its runs.
#[derive(Serialize)]
struct JobWithRuns<'a> {
    #[serde(flatten)]
    job: &'a JobInfo,
    runs: &'a [RunInfo],
}

pub async fn jobs(ctx: &Context, cmd: JobsCommand) -> anyhow::Result<()> {
    match cmd {
        JobsCommand::List { limit, offset } => {
            let page = ctx
                .client()?
                .list_jobs(&JobListQuery { limit, offset })
                .await?;
            ctx.emit(&page.items, || {
                let mut text = job_output::jobs_table(&page.items, ctx.now_ms);
                let shown = page.items.len() as u64;
                if let Some(f) =
                    job_output::page_footer("jobs", offset.unwrap_or(0), shown, page.total)
                {
                    text.push_str(&f);
                }
                text
            })
        }
        JobsCommand::Show { job } => {
            let client = ctx.client()?;
            let info = client.get_job(&job).await?;
            let runs = client
                .list_runs(
                    &info.id,
                    &RunListQuery {
                        limit: Some(PAGE),
                        ..Default::default()
                    },
                )
                .await?;
            let value = JobWithRuns {
                job: &info,
                runs: &runs.items,
            };
            ctx.emit(&value, || job_output::job_detail(&info, &runs, ctx.now_ms))
        }
        JobsCommand::Watch { job } => {
            let client = ctx.client()?;
            let info = client.get_job(&job).await?;
            watch(ctx, &client, info).await
        }
        JobsCommand::Runs {
            job,
            state,
            limit,
            offset,
            all,
        } => runs(ctx, &job, state, limit, offset, all).await,
        JobsCommand::Run { job, run } => {
            let d = ctx.client()?.get_run(&job, &run).await?;
            ctx.emit(&d, || job_output::run_detail(&d, ctx.now_ms))
        }
        JobsCommand::Cancel { job, run } => {
            let client = ctx.client()?;
            let r = match &run {
                Some(run) => client.cancel_run(&job, run).await?,
                None => client.cancel_job(&job).await?,
            };
            ctx.emit(&r, || {
                job_output::runs_changed(&r, "cancelled; running processes are being killed")
            })
        }
        JobsCommand::Retry { job } => {
            let r = ctx.client()?.retry_job(&job).await?;
            if r.changed > 0 {
                ctx.note(&format!(
                    "Follow the new attempts with `capstan jobs watch {job}`."
                ));
            }
            ctx.emit(&r, || {
                job_output::runs_changed(&r, "queued again for a new attempt")
            })
        }
        JobsCommand::Breakers { all } => {
            let items = ctx
                .client()?
                .list_breakers(if all { Some(false) } else { None })
                .await?;
            ctx.emit(&items, || {
                if items.is_empty() && all {
                    "No device has failed attempts.\n".into()
                } else {
                    job_output::breakers_table(&items, ctx.now_ms)
                }
            })
        }
        JobsCommand::BreakerReset { device } => {
            let r = ctx.client()?.reset_breaker(&device).await?;
            ctx.note(&format!("Circuit breaker of device {device} reset."));
            ctx.emit(&r, || {
                job_output::runs_changed(&r, "held by the breaker queued again")
            })
        }
    }
}

async fn runs(
    ctx: &Context,
    job: &str,
    state: Option<RunState>,
    limit: Option<u64>,
    offset: Option<u64>,
    all: bool,
) -> anyhow::Result<()> {
    let client = ctx.client()?;
    let page = if all {
        let mut items = Vec::new();
        loop {
            let page = client
                .list_runs(
                    job,
                    &RunListQuery {
                        state,
                        limit: Some(limit.unwrap_or(PAGE)),
                        offset: Some(items.len() as u64),
                    },
                )
                .await?;
            let (got, total) = (page.items.len(), page.total);
            items.extend(page.items);
            if got == 0 || items.len() as u64 >= total {
                break;
            }
        }
        let total = items.len() as u64;
        RunPage { items, total }
    } else {
        client
            .list_runs(
                job,
                &RunListQuery {
                    state,
                    limit,
                    offset,
                },
            )
            .await?
    };
    ctx.emit(&page.items, || {
        let mut text = job_output::runs_table(&page.items, ctx.now_ms);
        let shown = page.items.len() as u64;
        if let Some(f) = job_output::page_footer("runs", offset.unwrap_or(0), shown, page.total) {
            text.push_str(&f);
        }
        text
    })
}

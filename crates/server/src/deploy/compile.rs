//! The manifest compiler: for a set of devices (or all), loads the assignments, the catalogue,
//! the group tree, maintenance windows and depot sources once, decides each device's items
//! ([`super::decide`]), resolves them to signed-ready plans (each distinct plan once per
//! pass), and writes a new revision only for devices whose manifest content changed — then
//! wakes them. Devices are processed in batches, each written in one transaction, so a pass
//! over 10,000 devices never holds the write lock for long.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use capstan_core::windows::CompiledWindow;
use capstan_proto::deploy::{
    Intent, ItemIntent, ManifestItem, ManifestPayload, NetworkPolicy, WindowPolicy, WindowSchedule,
};
use capstan_proto::jobs::JobAction;
use capstan_proto::software::{DownloadSource, SoftwarePlan, StepOperation, VersionSpec};
use capstan_store::{AssignmentRow, CompiledManifest, DesiredItem, SourceRow, StateBrief};
use sha2::{Digest, Sha256};

use super::decide::{self, AssignmentFacts, Decided, Windows};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// Devices compiled per transaction.
const BATCH: usize = 500;

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompileStats {
    pub devices: usize,
    /// Devices that got a new revision.
    pub changed: usize,
}

/// A package of the catalogue, as the compiler needs it.
struct PackageCat {
    name: String,
    /// (version, spec), newest upload first.
    versions: Vec<(String, VersionSpec)>,
    latest: Option<String>,
    /// Version id → version string.
    by_id: HashMap<String, String>,
}

/// Everything shared by the devices of one pass.
pub(crate) struct Context {
    assignments: Vec<(AssignmentRow, AssignmentFacts)>,
    packages: HashMap<String, PackageCat>,
    parents: HashMap<String, Option<String>>,
    /// Compiled windows and their groups.
    windows: Vec<(CompiledWindow, Vec<String>, bool)>,
    sources: Vec<SourceRow>,
    source_scope: Vec<(String, String, String)>,
    plans: HashMap<(String, String, ItemIntent, bool), Result<SoftwarePlan, String>>,
}

fn parse_network(text: &str) -> NetworkPolicy {
    serde_json::from_str(text).unwrap_or_default()
}

impl Context {
    pub(crate) async fn load(state: &AppState) -> ApiResult<Context> {
        let rows = state.store.assignments().await?;
        let mut ctx = Context {
            assignments: Vec::new(),
            packages: HashMap::new(),
            parents: state.store.group_parents().await?.into_iter().collect(),
            windows: Vec::new(),
            sources: state.store.sources().await?,
            source_scope: state.store.source_groups().await?,
            plans: HashMap::new(),
        };
        for r in rows {
            ctx.load_package(state, &r.package_id).await?;
            let cat = &ctx.packages[&r.package_id];
            let version = match &r.version_id {
                Some(v) => cat.by_id.get(v).cloned(),
                None => cat.latest.clone(),
            };
            let facts = AssignmentFacts {
                id: r.id.clone(),
                package_id: r.package_id.clone(),
                version,
                pinned: r.version_id.is_some(),
                intent: Intent::parse(&r.intent).unwrap_or(Intent::Available),
                leave_installed: r.leave_installed,
                to_device: r.target_kind == "device",
                available_from: r.available_from,
                deadline: r.deadline,
                window_policy: if r.window_policy == "ignore" {
                    WindowPolicy::Ignore
                } else {
                    WindowPolicy::Respect
                },
                network: parse_network(&r.network),
                paused: r.paused,
                created_at: r.created_at,
            };
            ctx.assignments.push((r, facts));
        }
        let scope = state.store.window_groups().await?;
        for w in state.store.windows().await? {
            let Ok(schedule) = serde_json::from_str::<WindowSchedule>(&w.schedule) else {
                tracing::warn!(window = %w.id, "stored maintenance window schedule is unreadable; ignored");
                continue;
            };
            match CompiledWindow::compile(&schedule, &w.timezone) {
                Ok(c) => {
                    let groups = scope
                        .iter()
                        .filter(|(wid, _, _)| *wid == w.id)
                        .map(|(_, g, _)| g.clone())
                        .collect();
                    ctx.windows.push((c, groups, w.timezone == "device"));
                }
                Err(p) => {
                    tracing::warn!(window = %w.id, problems = ?p, "stored maintenance window is invalid; ignored")
                }
            }
        }
        Ok(ctx)
    }

    async fn load_package(&mut self, state: &AppState, package_id: &str) -> ApiResult<()> {
        if self.packages.contains_key(package_id) {
            return Ok(());
        }
        let rows = state.store.package_versions(package_id).await?;
        let name = match rows.first() {
            Some(r) => r.package.clone(),
            None => state
                .store
                .package(package_id)
                .await?
                .map(|p| p.name)
                .unwrap_or_else(|| package_id.to_string()),
        };
        let mut versions = Vec::new();
        let mut by_id = HashMap::new();
        for r in rows {
            let spec: VersionSpec =
                serde_json::from_str(&r.spec).map_err(|e| ApiError::corrupt("version spec", e))?;
            by_id.insert(r.id, r.version.clone());
            versions.push((r.version, spec));
        }
        let pairs: Vec<(&str, &VersionSpec)> =
            versions.iter().map(|(v, s)| (v.as_str(), s)).collect();
        let latest = capstan_core::software::latest_index(&pairs).map(|i| versions[i].0.clone());
        self.packages.insert(
            package_id.to_string(),
            PackageCat {
                name,
                versions,
                latest,
                by_id,
            },
        );
        Ok(())
    }

    /// Orders two versions of a package by its scheme.
    fn compare(&self, package_id: &str, a: &str, b: &str) -> std::cmp::Ordering {
        let scheme = self
            .packages
            .get(package_id)
            .and_then(|p| p.versions.first())
            .map(|(_, s)| capstan_core::software::version_scheme(s))
            .unwrap_or(capstan_core::version::Scheme::Semver);
        capstan_core::version::compare(scheme, a, b)
    }

    /// The groups a device is in, with all their ancestors.
    fn closure(&self, direct: &[&str]) -> HashSet<String> {
        crate::groups::with_ancestors(&self.parents, direct.iter().copied())
    }

    async fn plan(&mut self, state: &AppState, d: &Decided) -> Result<SoftwarePlan, String> {
        let key = (
            d.package_id.clone(),
            d.version.clone(),
            d.intent,
            d.any_version,
        );
        if let Some(p) = self.plans.get(&key) {
            return p.clone();
        }
        let plan = self.resolve(state, d).await;
        self.plans.insert(key, plan.clone());
        plan
    }

    async fn resolve(&mut self, state: &AppState, d: &Decided) -> Result<SoftwarePlan, String> {
        let msg = |e: ApiError| e.message;
        match d.intent {
            ItemIntent::Present | ItemIntent::Available => {
                let action = JobAction::SoftwareInstall {
                    package: d.package_id.clone(),
                    version: Some(d.version.clone()),
                    force: false,
                    plan: None,
                };
                match crate::packages::resolve(state, &action)
                    .await
                    .map_err(msg)?
                {
                    (JobAction::SoftwareInstall { plan: Some(p), .. }, _) => Ok(p),
                    _ => Err("the install could not be planned".into()),
                }
            }
            ItemIntent::Absent if !d.any_version => {
                let step = crate::packages::plan_step(
                    state,
                    StepOperation::Uninstall,
                    &d.package_id,
                    Some(&d.version),
                    "",
                )
                .await
                .map_err(msg)?;
                Ok(SoftwarePlan {
                    steps: vec![step],
                    force: false,
                })
            }
            ItemIntent::Absent => {
                // Whatever version is present: each version's uninstall, highest first, each
                // only if its detection finds it.
                let mut versions: Vec<String> = self
                    .packages
                    .get(&d.package_id)
                    .map(|p| p.versions.iter().map(|(v, _)| v.clone()).collect())
                    .unwrap_or_default();
                versions.sort_by(|a, b| self.compare(&d.package_id, b, a));
                versions.truncate(capstan_proto::software::limits::MAX_PLAN_STEPS);
                let mut steps = Vec::new();
                for v in versions {
                    steps.push(
                        crate::packages::plan_step(
                            state,
                            StepOperation::UninstallIfPresent,
                            &d.package_id,
                            Some(&v),
                            "",
                        )
                        .await
                        .map_err(msg)?,
                    );
                }
                if steps.is_empty() {
                    return Err("the package has no versions left to uninstall with".into());
                }
                Ok(SoftwarePlan {
                    steps,
                    force: false,
                })
            }
        }
    }

    /// The device's download sources, in order (as [`crate::sources::sources_for_device`]).
    fn sources_for(&self, closure: &HashSet<String>) -> Vec<DownloadSource> {
        crate::sources::sources_in_order(&self.sources, &self.source_scope, closure)
    }
}

/// Whether an assignment reaches `device`, which is in the groups `closure` (with ancestors).
pub(crate) fn reaches(r: &AssignmentRow, device: &str, closure: &HashSet<String>) -> bool {
    match r.target_kind.as_str() {
        "device" => r.target_id == device,
        _ => closure.contains(&r.target_id),
    }
}

/// The digest of what a manifest asks (not its revision or compile time).
fn content_digest(items: &[ManifestItem], sources: &[DownloadSource], interval: u64) -> String {
    let text = serde_json::to_vec(&(items, sources, interval)).unwrap_or_default();
    hex::encode(Sha256::digest(&text))
}

/// Compiles `devices` (all active devices when `None`) at the deployment clock's time.
pub(crate) async fn compile(
    state: &AppState,
    devices: Option<Vec<String>>,
) -> ApiResult<CompileStats> {
    let started = Instant::now();
    let now = state.deploy.now();
    let mut ctx = Context::load(state).await?;
    let devices = match devices {
        Some(d) => d,
        None => state.store.active_device_ids().await?,
    };
    let mut stats = CompileStats {
        devices: devices.len(),
        changed: 0,
    };
    let device_zone = ctx.windows.iter().any(|(_, _, dev)| *dev);
    for batch in devices.chunks(BATCH) {
        let inputs = state.store.compile_inputs(batch).await?;
        let zones = if device_zone {
            state.store.device_timezones(batch).await?
        } else {
            HashMap::new()
        };
        let mut groups: HashMap<&str, Vec<&str>> = HashMap::new();
        for (d, g) in &inputs.memberships {
            groups.entry(d.as_str()).or_default().push(g.as_str());
        }
        let mut states: HashMap<&str, Vec<&StateBrief>> = HashMap::new();
        for s in &inputs.states {
            states.entry(s.device_id.as_str()).or_default().push(s);
        }
        let stored: HashMap<&str, (i64, &str, Option<i64>)> = inputs
            .manifests
            .iter()
            .map(|(d, r, digest, next)| (d.as_str(), (*r, digest.as_str(), *next)))
            .collect();
        let mut changed = Vec::new();
        let mut next_evals = Vec::new();
        for device in batch {
            let closure = ctx.closure(
                groups
                    .get(device.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[]),
            );
            let reach: Vec<&AssignmentFacts> = ctx
                .assignments
                .iter()
                .filter(|(r, _)| reaches(r, device, &closure))
                .map(|(_, f)| f)
                .collect();
            let mine: Vec<&CompiledWindow> = ctx
                .windows
                .iter()
                .filter(|(_, gs, _)| gs.iter().any(|g| closure.contains(g)))
                .map(|(w, _, _)| w)
                .collect();
            let tz = zones.get(device.as_str()).map(String::as_str);
            let windows = if mine.is_empty() {
                Windows::None
            } else {
                let owned: Vec<CompiledWindow> = mine.iter().map(|w| (*w).clone()).collect();
                let change = capstan_core::windows::next_change_any(&owned, now, tz);
                if capstan_core::windows::any_open(&owned, now, tz) {
                    Windows::Open { closes_at: change }
                } else {
                    Windows::Closed { opens_at: change }
                }
            };
            let device_states = states.get(device.as_str()).cloned().unwrap_or_default();
            let decision = {
                let c = &ctx;
                decide::decide(&reach, &device_states, windows, now, &|p, a, b| {
                    c.compare(p, a, b)
                })
            };
            let previous = stored.get(device.as_str()).copied();
            if previous.is_none() && decision.items.is_empty() && decision.next_eval.is_none() {
                continue;
            }
            // Make sure removals can name their package.
            for d in &decision.items {
                ctx.load_package(state, &d.package_id).await?;
            }
            let mut items = Vec::with_capacity(decision.items.len());
            let mut desired = Vec::with_capacity(decision.items.len());
            for d in &decision.items {
                let (plan, hold) = match ctx.plan(state, d).await {
                    Ok(p) => (p, d.hold.clone()),
                    Err(e) => (
                        SoftwarePlan {
                            steps: Vec::new(),
                            force: false,
                        },
                        Some(format!("cannot be planned: {e}")),
                    ),
                };
                let name = ctx
                    .packages
                    .get(&d.package_id)
                    .map(|p| p.name.clone())
                    .unwrap_or_else(|| d.package_id.clone());
                desired.push(DesiredItem {
                    package_id: d.package_id.clone(),
                    version: d.version.clone(),
                    desired: intent_str(d.intent).to_string(),
                    assignment_id: d.assignment_id.clone(),
                    leave_installed: d.leave_installed,
                    hold: hold.clone(),
                });
                items.push(ManifestItem {
                    package_id: d.package_id.clone(),
                    package_name: name,
                    version: d.version.clone(),
                    intent: d.intent,
                    hold,
                    plan,
                    network: d.network.clone(),
                    assignment_id: d.assignment_id.clone(),
                });
            }
            items.sort_by(|a, b| a.package_name.cmp(&b.package_name));
            let sources = ctx.sources_for(&closure);
            let interval = state.config.reconcile_interval_secs;
            let digest = content_digest(&items, &sources, interval);
            if let Some((_, d, next)) = previous
                && d == digest
            {
                // Unchanged: only a moved evaluation time is written.
                if next != decision.next_eval {
                    next_evals.push((device.clone(), decision.next_eval));
                }
                continue;
            }
            let revision = previous.map(|(r, _, _)| r + 1).unwrap_or(1);
            let payload = ManifestPayload {
                device_id: device.clone(),
                revision: u64::try_from(revision).unwrap_or(0),
                compiled_at_ms: now,
                items,
                sources,
                reconcile_interval_secs: interval,
            };
            let wanted: std::collections::HashSet<&str> =
                desired.iter().map(|d| d.package_id.as_str()).collect();
            let left = device_states
                .iter()
                .filter(|s| s.desired.is_some() && !wanted.contains(s.package_id.as_str()))
                .map(|s| s.package_id.clone())
                .collect();
            changed.push(CompiledManifest {
                device_id: device.clone(),
                previous_revision: previous.map(|(r, _, _)| r),
                revision,
                digest,
                payload: serde_json::to_string(&payload).map_err(ApiError::internal)?,
                items: desired,
                next_eval: decision.next_eval,
                left,
            });
        }
        let written = state
            .store
            .write_compiled(&changed, &next_evals, crate::state::now_ms())
            .await?;
        stats.changed += written.len();
        state.wake_devices(&written).await;
    }
    metrics::histogram!("capstan_manifest_compile_seconds").record(started.elapsed().as_secs_f64());
    Ok(stats)
}

pub(crate) fn intent_str(i: ItemIntent) -> &'static str {
    match i {
        ItemIntent::Present => "present",
        ItemIntent::Absent => "absent",
        ItemIntent::Available => "available",
    }
}

/// The assignment conflicts on one device, decided as the compiler decides them.
pub(crate) async fn conflicts_for(
    state: &AppState,
    device: &str,
) -> ApiResult<Vec<decide::Conflict>> {
    let now = state.deploy.now();
    let ctx = Context::load(state).await?;
    let inputs = state.store.compile_inputs(&[device.to_string()]).await?;
    let direct: Vec<&str> = inputs.memberships.iter().map(|(_, g)| g.as_str()).collect();
    let closure = ctx.closure(&direct);
    let reach: Vec<&AssignmentFacts> = ctx
        .assignments
        .iter()
        .filter(|(r, _)| reaches(r, device, &closure))
        .map(|(_, f)| f)
        .collect();
    let states: Vec<&StateBrief> = inputs.states.iter().collect();
    Ok(
        decide::decide(&reach, &states, Windows::None, now, &|p, a, b| {
            ctx.compare(p, a, b)
        })
        .conflicts,
    )
}

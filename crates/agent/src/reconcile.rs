//! Desired software state on the node: holds the device's signed manifest (fetched when a
//! check-in names a new revision, kept in the state directory so it survives restarts and
//! outages) and reconciles it — on every new revision and every `reconcile_interval_secs` —
//! item by item: detect → (install | uninstall | nothing) → verify, through the same plan
//! executor as software jobs ([`crate::software`]). Each item's status (waiting, downloading
//! with progress, installing, installed, failed with exit code and log, not applicable,
//! uninstalling, removed, reboot pending, available) is reported to the server; reports that
//! cannot be sent are kept and sent later.
//!
//! Drift — a required package that was installed and is now missing, or a removed one that is
//! back — is repaired and reported as drift, from the statuses this agent last reported (kept
//! in `software-state.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use capstan_client::agent::AgentClient;
use capstan_proto::deploy::{
    ItemIntent, ItemReport, ItemStatus, ManifestItem, ManifestPayload, ManifestReport, Progress,
    SignedManifest, limits,
};
use capstan_proto::jobs::{AttemptOutcome, JobAction, JobSpec, OutputChunk, RunPayload};
use capstan_proto::software::{DownloadSource, SoftwarePlan};
use ed25519_dalek::{Signature, VerifyingKey};
use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use crate::jobs::exec::{ExecOptions, StopReason};
use crate::jobs::now_ms;
use crate::software::{Phase, SoftwareContext};

const MANIFEST_FILE: &str = "manifest.json";
const STATE_FILE: &str = "software-state.json";
/// Until a manifest says otherwise.
const DEFAULT_INTERVAL: Duration = Duration::from_secs(900);
/// Download progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// What the reconciler needs.
#[derive(Clone)]
pub struct ReconcileSettings {
    pub device_id: String,
    pub signing_key: VerifyingKey,
    pub state_dir: PathBuf,
    pub software: SoftwareContext,
    pub exec: ExecOptions,
    /// Where the current boot id is read (a reboot completes `reboot_pending`).
    pub boot_id_path: PathBuf,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestRefusal {
    #[error("bad signature: {0}")]
    BadSignature(String),
    #[error("malformed manifest: {0}")]
    Malformed(String),
    #[error("the manifest is for device {0}, not this one")]
    OtherDevice(String),
}

/// Verifies a manifest's signature over the exact payload bytes, then that it is this
/// device's.
pub fn verify_manifest(
    m: &SignedManifest,
    key: &VerifyingKey,
    device_id: &str,
) -> Result<ManifestPayload, ManifestRefusal> {
    let sig = hex::decode(m.signature.trim())
        .map_err(|e| ManifestRefusal::BadSignature(format!("not hex: {e}")))?;
    let sig = Signature::from_slice(&sig)
        .map_err(|e| ManifestRefusal::BadSignature(format!("malformed: {e}")))?;
    key.verify_strict(m.payload.as_bytes(), &sig)
        .map_err(|_| ManifestRefusal::BadSignature("does not match the payload".into()))?;
    let payload: ManifestPayload =
        serde_json::from_str(&m.payload).map_err(|e| ManifestRefusal::Malformed(e.to_string()))?;
    if payload.device_id != device_id {
        return Err(ManifestRefusal::OtherDevice(payload.device_id));
    }
    if payload.items.len() > limits::MAX_MANIFEST_ITEMS {
        return Err(ManifestRefusal::Malformed(format!(
            "{} items (at most {})",
            payload.items.len(),
            limits::MAX_MANIFEST_ITEMS
        )));
    }
    Ok(payload)
}

/// Reads the held manifest from the state directory (verified again: the file is not trusted
/// more than the network).
pub fn load_manifest(
    state_dir: &Path,
    key: &VerifyingKey,
    device_id: &str,
) -> Option<ManifestPayload> {
    let text = std::fs::read_to_string(state_dir.join(MANIFEST_FILE)).ok()?;
    let signed: SignedManifest = serde_json::from_str(&text).ok()?;
    match verify_manifest(&signed, key, device_id) {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(error = %e, "the stored manifest is refused; waiting for a new one");
            None
        }
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// What this agent last reported per package, kept across restarts (for drift and for
/// `capstan-agent software available`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reported {
    /// The boot the statuses were written in: a reboot completes `reboot_pending`.
    #[serde(default)]
    pub boot_id: Option<String>,
    #[serde(default)]
    pub items: BTreeMap<String, LastReport>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastReport {
    pub status: ItemStatus,
    pub version: String,
    /// The manifest revision it was reported for.
    #[serde(default)]
    pub revision: u64,
    #[serde(default)]
    pub detail: Option<String>,
}

impl Reported {
    /// Reads the file; after a reboot, what waited for one is installed.
    pub fn load(state_dir: &Path, boot_id: Option<&str>) -> Reported {
        let mut r: Reported = std::fs::read_to_string(state_dir.join(STATE_FILE))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if boot_id.is_some() && r.boot_id.as_deref() != boot_id {
            for item in r.items.values_mut() {
                if item.status == ItemStatus::RebootPending {
                    item.status = ItemStatus::Installed;
                }
            }
            r.boot_id = boot_id.map(str::to_string);
        }
        r
    }

    /// Whether `item` in status `status` was already reported exactly so for `revision`.
    fn unchanged(&self, r: &ItemReport, revision: u64) -> bool {
        self.items.get(&r.package_id).is_some_and(|l| {
            l.revision == revision
                && l.status == r.status
                && l.version == r.version
                && l.detail == r.detail
                && !r.drift
                && r.log.is_none()
        })
    }
}

/// The running reconciler.
pub struct Reconciler {
    seen: watch::Sender<Option<u64>>,
    stop: watch::Sender<Option<StopReason>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reconciler {
    pub fn start(client: AgentClient, settings: ReconcileSettings) -> Reconciler {
        let (seen, seen_rx) = watch::channel(None);
        let (stop, stop_rx) = watch::channel(None);
        let task = tokio::spawn(run(client, settings, seen_rx, stop_rx));
        Reconciler { seen, stop, task }
    }

    /// A check-in named the device's current manifest revision.
    pub fn revision(&self, revision: Option<u64>) {
        if revision.is_some() {
            self.seen.send_if_modified(|r| {
                let changed = *r != revision;
                *r = revision;
                changed
            });
        }
    }

    /// Stops: an installer still running is killed (its item is reconciled again next start).
    pub async fn shutdown(self, budget: Duration) {
        let _ = self.stop.send(Some(StopReason::Shutdown));
        let abort = self.task.abort_handle();
        if tokio::time::timeout(budget, self.task).await.is_err() {
            abort.abort();
        }
    }
}

struct Worker {
    client: AgentClient,
    settings: ReconcileSettings,
    held: Option<ManifestPayload>,
    reported: Reported,
    /// Reports not yet accepted by the server, the latest per package.
    unsent: BTreeMap<String, ItemReport>,
    /// The revision whose completion the server has acknowledged.
    acked: Option<u64>,
    stop: watch::Receiver<Option<StopReason>>,
}

async fn run(
    client: AgentClient,
    settings: ReconcileSettings,
    mut seen: watch::Receiver<Option<u64>>,
    stop: watch::Receiver<Option<StopReason>>,
) {
    let held = load_manifest(
        &settings.state_dir,
        &settings.signing_key,
        &settings.device_id,
    );
    let boot = crate::jobs::reboot::read_boot_id(&settings.boot_id_path);
    let reported = Reported::load(&settings.state_dir, boot.as_deref());
    let mut w = Worker {
        client,
        settings,
        held,
        reported,
        unsent: BTreeMap::new(),
        acked: None,
        stop: stop.clone(),
    };
    let mut stop = stop;
    // A held manifest is reconciled at start (the node may have changed while the agent was
    // down); without one, the first check-in brings it.
    let mut due = tokio::time::Instant::now();
    loop {
        let wake = w.held.is_some();
        tokio::select! {
            r = seen.changed() => if r.is_err() { return },
            _ = tokio::time::sleep_until(due), if wake => {}
            _ = stop.changed() => return,
        }
        if stop.borrow().is_some() {
            return;
        }
        let want = *seen.borrow();
        if want.is_some() && want != w.held.as_ref().map(|m| m.revision) {
            w.fetch().await;
        }
        if w.held.is_some() {
            w.reconcile().await;
        }
        let interval = w
            .held
            .as_ref()
            .map(|m| Duration::from_secs(m.reconcile_interval_secs.clamp(1, 86_400)))
            .unwrap_or(DEFAULT_INTERVAL);
        due = tokio::time::Instant::now() + interval;
    }
}

/// Keeps the tail of an item's narration and installer output.
#[derive(Default)]
struct LogTail(String);

impl LogTail {
    fn push(&mut self, s: &str) {
        self.0.push_str(s);
        let max = limits::MAX_ITEM_LOG_BYTES;
        if self.0.len() > max {
            let mut cut = self.0.len() - max + 64;
            while !self.0.is_char_boundary(cut) {
                cut += 1;
            }
            self.0 = format!("[…]\n{}", &self.0[cut..]);
        }
    }
}

fn clip(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Worker {
    async fn fetch(&mut self) {
        match self.client.manifest().await {
            Ok(Some(signed)) => match verify_manifest(
                &signed,
                &self.settings.signing_key,
                &self.settings.device_id,
            ) {
                Ok(m) => {
                    info!(
                        revision = m.revision,
                        items = m.items.len(),
                        "manifest received"
                    );
                    if let Ok(text) = serde_json::to_vec(&signed)
                        && let Err(e) =
                            write_atomic(&self.settings.state_dir.join(MANIFEST_FILE), &text)
                    {
                        warn!(error = %e, "cannot keep the manifest in the state directory");
                    }
                    self.held = Some(m);
                }
                Err(e) => warn!(error = %e, "manifest refused"),
            },
            Ok(None) => debug!("the server has no manifest for this device"),
            Err(e) => warn!(error = %e, "fetching the manifest failed; keeping the one held"),
        }
    }

    fn stopping(&self) -> bool {
        self.stop.borrow().is_some()
    }

    async fn reconcile(&mut self) {
        let Some(m) = self.held.clone() else { return };
        // Removals first: an uninstall may make room for what is installed next.
        let mut order: Vec<&ManifestItem> = m
            .items
            .iter()
            .filter(|i| i.intent == ItemIntent::Absent)
            .collect();
        order.extend(m.items.iter().filter(|i| i.intent != ItemIntent::Absent));
        for item in order {
            if self.stopping() {
                return;
            }
            let Some(report) = self.item(&m, item).await else {
                return;
            };
            self.send(report).await;
        }
        self.flush(m.revision, true).await;
    }

    /// Queues a report and sends what is queued.
    async fn send(&mut self, report: ItemReport) {
        let revision = self.held.as_ref().map(|m| m.revision).unwrap_or(0);
        // A periodic pass that finds everything as reported sends nothing but its
        // acknowledgement.
        if self.reported.unchanged(&report, revision) {
            return;
        }
        self.reported.items.insert(
            report.package_id.clone(),
            LastReport {
                status: report.status,
                version: report.version.clone(),
                revision,
                detail: report.detail.clone(),
            },
        );
        if let Ok(text) = serde_json::to_vec(&self.reported) {
            let _ = write_atomic(&self.settings.state_dir.join(STATE_FILE), &text);
        }
        self.unsent.insert(report.package_id.clone(), report);
        self.flush(revision, false).await;
    }

    async fn flush(&mut self, revision: u64, complete: bool) {
        let items: Vec<ItemReport> = self.unsent.values().cloned().collect();
        if items.is_empty() && (!complete || self.acked == Some(revision)) {
            return;
        }
        let report = ManifestReport {
            revision,
            items,
            complete,
        };
        match self.client.report_items(&report).await {
            Ok(()) => {
                self.unsent.clear();
                if complete {
                    self.acked = Some(revision);
                }
            }
            Err(e) => {
                debug!(error = %e, kept = self.unsent.len(), "status report not sent; kept for later")
            }
        }
    }

    /// Reconciles one item; `None` when the agent is stopping.
    async fn item(&mut self, m: &ManifestPayload, item: &ManifestItem) -> Option<ItemReport> {
        let base = |status: ItemStatus, detail: Option<String>| ItemReport {
            package_id: item.package_id.clone(),
            version: item.version.clone(),
            status,
            detail: detail.map(|d| clip(&d, limits::MAX_ITEM_DETAIL_BYTES)),
            exit_code: None,
            log: None,
            progress: None,
            drift: false,
            at_ms: now_ms(),
        };
        let Some(main) = item.plan.steps.last() else {
            return Some(base(
                ItemStatus::Waiting,
                Some(
                    item.hold
                        .clone()
                        .unwrap_or_else(|| "the server sent no plan".into()),
                ),
            ));
        };
        let last = self.reported.items.get(&item.package_id);
        // Drift is a change of what this very version looked like; a new version to install
        // is an upgrade, not drift.
        let last_same = last.filter(|l| l.version == item.version).map(|l| l.status);
        let last = last.map(|l| l.status);
        let present = match item.intent {
            ItemIntent::Absent => {
                let mut any = Ok(false);
                for s in &item.plan.steps {
                    match self.detect(&s.spec.detection).await {
                        Ok(true) => {
                            any = Ok(true);
                            break;
                        }
                        Ok(false) => {}
                        Err(e) => {
                            any = Err(e);
                            break;
                        }
                    }
                }
                any
            }
            _ => self.detect(&main.spec.detection).await,
        };
        let present = match present {
            Ok(p) => p,
            Err(e) => {
                return Some(base(
                    ItemStatus::Failed,
                    Some(format!(
                        "detection could not be evaluated, so nothing was changed: {e}"
                    )),
                ));
            }
        };
        let (wanted, drift) = match (item.intent, present) {
            (ItemIntent::Present, true) | (ItemIntent::Available, true) => {
                let status = if last == Some(ItemStatus::RebootPending) {
                    ItemStatus::RebootPending
                } else {
                    ItemStatus::Installed
                };
                return Some(base(status, None));
            }
            (ItemIntent::Available, false) => return Some(base(ItemStatus::Available, None)),
            (ItemIntent::Absent, false) => return Some(base(ItemStatus::Removed, None)),
            (ItemIntent::Present, false) => (
                true,
                matches!(
                    last_same,
                    Some(ItemStatus::Installed | ItemStatus::RebootPending)
                ),
            ),
            (ItemIntent::Absent, true) => (false, last == Some(ItemStatus::Removed)),
        };
        if let Some(hold) = &item.hold {
            let mut r = base(ItemStatus::Waiting, Some(hold.clone()));
            r.drift = drift;
            return Some(r);
        }
        let mut sources: Vec<DownloadSource> = m.sources.clone();
        if item.network.site_sources_only {
            sources.retain(|s| !matches!(s, DownloadSource::Server));
        }
        let downloads = wanted && item.plan.steps.iter().any(|s| !s.artifacts.is_empty());
        if downloads {
            if sources.is_empty() {
                return Some(base(
                    ItemStatus::Failed,
                    Some(
                        "the deployment downloads only from site sources, and none serves this \
                         device"
                            .into(),
                    ),
                ));
            }
            if item.network.skip_metered
                && capstan_agent_platform::network::connection_metered().await
                    == capstan_agent_platform::network::Metered::Yes
            {
                return Some(base(
                    ItemStatus::Waiting,
                    Some("the connection is metered; the download waits (network policy)".into()),
                ));
            }
        }
        if drift {
            info!(package = %item.package_name, "drift: the package changed outside Capstan; repairing");
        }
        let mut start = base(
            if wanted {
                ItemStatus::Installing
            } else {
                ItemStatus::Uninstalling
            },
            None,
        );
        start.drift = drift;
        self.send(start).await;
        self.execute(m, item, &item.plan, sources, wanted, drift)
            .await
    }

    async fn detect(&self, rule: &capstan_proto::software::Detection) -> Result<bool, String> {
        crate::software::detect(&self.settings.software, rule)
            .await
            .map(|(present, _)| present)
    }

    async fn execute(
        &mut self,
        m: &ManifestPayload,
        item: &ManifestItem,
        plan: &SoftwarePlan,
        sources: Vec<DownloadSource>,
        install: bool,
        drift: bool,
    ) -> Option<ItemReport> {
        let run_id = format!("manifest-{}-{}", m.revision, item.package_id);
        let action = if install {
            JobAction::SoftwareInstall {
                package: item.package_name.clone(),
                version: Some(item.version.clone()),
                force: false,
                plan: Some(plan.clone()),
            }
        } else {
            JobAction::SoftwareUninstall {
                package: item.package_name.clone(),
                version: Some(item.version.clone()),
                plan: Some(plan.clone()),
            }
        };
        let payload = RunPayload {
            run_id: run_id.clone(),
            job_id: "manifest".into(),
            device_id: self.settings.device_id.clone(),
            attempt: 1,
            idempotency_key: format!("{run_id}:1"),
            spec: JobSpec {
                action,
                timeout_secs: capstan_proto::jobs::limits::MAX_TIMEOUT_SECS,
                env: Default::default(),
                working_dir: None,
                run_as: None,
                pre_script: None,
                post_script: None,
                post_script_always: false,
                reboot_exit_codes: Vec::new(),
            },
            expires_at_ms: i64::MAX,
            sources,
        };
        // Phases arrive from inside the executor; the latest is forwarded to the server at
        // most once a second.
        let latest: Arc<Mutex<Option<Phase>>> = Arc::new(Mutex::new(None));
        let mut ctx = self.settings.software.clone();
        ctx.max_bytes_per_sec = item.network.max_bytes_per_sec;
        let sink = latest.clone();
        ctx.phase = Some(Arc::new(move |p| {
            if let Ok(mut l) = sink.lock() {
                *l = Some(p);
            }
        }));
        let (tx, mut rx) = mpsc::unbounded_channel::<OutputChunk>();
        let stop = self.stop.clone();
        let exec = self.settings.exec.clone();
        let run = tokio::spawn(async move {
            crate::software::execute(&ctx, &payload, &exec, &tx, stop).await
        });
        let mut log = LogTail::default();
        let mut ticker = tokio::time::interval(PROGRESS_EVERY);
        let mut reported: Option<Phase> = None;
        let mut run = std::pin::pin!(run);
        let result = loop {
            tokio::select! {
                r = &mut run => break r,
                Some(c) = rx.recv() => log.push(&c.data),
                _ = ticker.tick() => {
                    let now = latest.lock().ok().and_then(|l| *l);
                    if now != reported && let Some(p) = now {
                        reported = Some(p);
                        let (status, progress) = match p {
                            Phase::Downloading { received, total } => {
                                (ItemStatus::Downloading, Some(Progress { received, total }))
                            }
                            Phase::Installing => (ItemStatus::Installing, None),
                            Phase::Uninstalling => (ItemStatus::Uninstalling, None),
                        };
                        let r = ItemReport {
                            package_id: item.package_id.clone(),
                            version: item.version.clone(),
                            status,
                            detail: None,
                            exit_code: None,
                            log: None,
                            progress,
                            drift,
                            at_ms: now_ms(),
                        };
                        self.send(r).await;
                    }
                }
            }
        };
        while let Ok(c) = rx.try_recv() {
            log.push(&c.data);
        }
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                return Some(ItemReport {
                    package_id: item.package_id.clone(),
                    version: item.version.clone(),
                    status: ItemStatus::Failed,
                    detail: Some(format!("the installer task failed: {e}")),
                    exit_code: None,
                    log: Some(log.0),
                    progress: None,
                    drift,
                    at_ms: now_ms(),
                });
            }
        };
        if matches!(
            r.outcome,
            AttemptOutcome::Interrupted | AttemptOutcome::Cancelled
        ) && self.stopping()
        {
            return None;
        }
        let error = r.error.clone().unwrap_or_default();
        let status = match r.outcome {
            AttemptOutcome::Succeeded if r.reboot_requested || error.contains("reboot") => {
                ItemStatus::RebootPending
            }
            AttemptOutcome::Succeeded if install => ItemStatus::Installed,
            AttemptOutcome::Succeeded => ItemStatus::Removed,
            _ if error.contains("not applicable: ") => ItemStatus::NotApplicable,
            _ => ItemStatus::Failed,
        };
        let detail = match status {
            ItemStatus::NotApplicable => error
                .split_once("not applicable: ")
                .map(|(_, why)| why.to_string()),
            ItemStatus::Installed | ItemStatus::Removed => None,
            _ => r.error.clone(),
        };
        Some(ItemReport {
            package_id: item.package_id.clone(),
            version: item.version.clone(),
            status,
            detail: detail.map(|d| clip(&d, limits::MAX_ITEM_DETAIL_BYTES)),
            exit_code: r.exit_code,
            log: Some(log.0),
            progress: None,
            drift,
            at_ms: now_ms(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn signed(key: &SigningKey, payload: &ManifestPayload) -> SignedManifest {
        let text = serde_json::to_string(payload).unwrap();
        SignedManifest {
            signature: hex::encode(key.sign(text.as_bytes()).to_bytes()),
            payload: text,
        }
    }

    fn manifest(device: &str) -> ManifestPayload {
        ManifestPayload {
            device_id: device.into(),
            revision: 3,
            compiled_at_ms: 1,
            items: Vec::new(),
            sources: vec![DownloadSource::Server],
            reconcile_interval_secs: 60,
        }
    }

    #[test]
    fn manifests_are_verified_before_use() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let other = SigningKey::from_bytes(&[8; 32]);
        let good = signed(&key, &manifest("dev-1"));
        assert_eq!(
            verify_manifest(&good, &key.verifying_key(), "dev-1")
                .unwrap()
                .revision,
            3
        );
        // Another key, another device, a changed payload, garbage.
        assert!(matches!(
            verify_manifest(
                &signed(&other, &manifest("dev-1")),
                &key.verifying_key(),
                "dev-1"
            ),
            Err(ManifestRefusal::BadSignature(_))
        ));
        assert_eq!(
            verify_manifest(&good, &key.verifying_key(), "dev-2"),
            Err(ManifestRefusal::OtherDevice("dev-1".into()))
        );
        let mut tampered = good.clone();
        tampered.payload = tampered.payload.replace("\"revision\":3", "\"revision\":4");
        assert!(matches!(
            verify_manifest(&tampered, &key.verifying_key(), "dev-1"),
            Err(ManifestRefusal::BadSignature(_))
        ));
        let mut junk = good;
        junk.signature = "zz".into();
        assert!(matches!(
            verify_manifest(&junk, &key.verifying_key(), "dev-1"),
            Err(ManifestRefusal::BadSignature(_))
        ));
    }

    #[test]
    fn stored_manifests_are_verified_again() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let good = signed(&key, &manifest("dev-1"));
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_vec(&good).unwrap(),
        )
        .unwrap();
        assert!(load_manifest(dir.path(), &key.verifying_key(), "dev-1").is_some());
        let mut bad = good;
        bad.payload = bad.payload.replace("dev-1", "dev-1 ");
        std::fs::write(
            dir.path().join(MANIFEST_FILE),
            serde_json::to_vec(&bad).unwrap(),
        )
        .unwrap();
        assert!(load_manifest(dir.path(), &key.verifying_key(), "dev-1").is_none());
    }

    #[test]
    fn a_reboot_completes_reboot_pending_and_unchanged_reports_are_not_resent() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reported {
            boot_id: Some("boot-1".into()),
            items: BTreeMap::new(),
        };
        let last = |status| LastReport {
            status,
            version: "1.0".into(),
            revision: 4,
            detail: None,
        };
        r.items.insert("a".into(), last(ItemStatus::RebootPending));
        r.items.insert("b".into(), last(ItemStatus::Failed));
        std::fs::write(dir.path().join(STATE_FILE), serde_json::to_vec(&r).unwrap()).unwrap();
        // Same boot: still pending.
        let same = Reported::load(dir.path(), Some("boot-1"));
        assert_eq!(same.items["a"].status, ItemStatus::RebootPending);
        // After a reboot: installed; other statuses untouched.
        let after = Reported::load(dir.path(), Some("boot-2"));
        assert_eq!(after.items["a"].status, ItemStatus::Installed);
        assert_eq!(after.items["b"].status, ItemStatus::Failed);
        assert_eq!(after.boot_id.as_deref(), Some("boot-2"));

        let report = |status, drift| ItemReport {
            package_id: "b".into(),
            version: "1.0".into(),
            status,
            detail: None,
            exit_code: None,
            log: None,
            progress: None,
            drift,
            at_ms: 1,
        };
        assert!(after.unchanged(&report(ItemStatus::Failed, false), 4));
        assert!(
            !after.unchanged(&report(ItemStatus::Failed, false), 5),
            "new revision"
        );
        assert!(!after.unchanged(&report(ItemStatus::Installed, false), 4));
        assert!(
            !after.unchanged(&report(ItemStatus::Failed, true), 4),
            "drift"
        );
        // A missing or unreadable file is an empty history.
        std::fs::write(dir.path().join(STATE_FILE), b"{not json").unwrap();
        assert!(Reported::load(dir.path(), Some("x")).items.is_empty());
    }

    #[test]
    fn log_tail_keeps_the_end_within_the_limit() {
        let mut t = LogTail::default();
        for i in 0..5000 {
            t.push(&format!("line {i} é\n"));
        }
        assert!(t.0.len() <= limits::MAX_ITEM_LOG_BYTES + 8);
        assert!(t.0.starts_with("[…]"));
        assert!(t.0.ends_with("line 4999 é\n"));
    }
}

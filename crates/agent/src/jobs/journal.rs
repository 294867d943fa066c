//! The job journal in the state directory (`jobs-journal.json`): every attempt's idempotency
//! key is written *before* its process starts, then its result (the outbox until the server
//! acknowledged it), or a reboot intent with the boot id from before the reboot. This is what
//! makes delivery safe to repeat: a key that is in the journal is never started again, and
//! what a crash or a reboot cut short is reported from here after the restart.
//!
//! The file is small and rewritten whole on every change (temporary file, fsync, rename, mode
//! 0600). Acknowledged entries stay so a re-delivered key is recognised, but are pruned by age
//! and count. A file that cannot be parsed is moved aside, loudly, rather than stopping the
//! agent.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use capstan_proto::jobs::{AttemptOutcome, RunFinished};
use serde::{Deserialize, Serialize};

use crate::state::{ensure_state_dir, write_private_atomic};

pub const JOURNAL_FILE: &str = "jobs-journal.json";
const FORMAT_VERSION: u32 = 1;

/// Reason of an attempt found started but unfinished after a restart.
pub const INTERRUPTED_REASON: &str =
    "interrupted: the agent stopped while the attempt ran (crash, kill or power loss)";
/// Reason of a reboot confirmed by a new boot id.
pub const REBOOTED_REASON: &str = "rebooted; boot id changed";

/// How long acknowledged entries are kept, and how many at most.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub max_age: Duration,
    pub max_entries: usize,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age: Duration::from_secs(30 * 24 * 3600),
            max_entries: 10_000,
        }
    }
}

/// Where an attempt stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum EntryState {
    /// The process is about to start or running; no result yet.
    Started,
    /// The attempt succeeded and the machine is being rebooted; `result` is reported once a
    /// different boot id proves the reboot happened.
    Rebooting {
        boot_id: String,
        result: RunFinished,
    },
    /// Finished; the result waits in the outbox for the server's acknowledgement.
    Finished { result: RunFinished },
    /// The server has the result (or refused it for good); kept to recognise the key.
    Acknowledged { result: RunFinished },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub run_id: String,
    pub attempt: u32,
    pub recorded_at_ms: i64,
    pub updated_at_ms: i64,
    pub state: EntryState,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileForm {
    version: u32,
    /// By idempotency key.
    entries: BTreeMap<String, Entry>,
}

/// A result waiting to be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub key: String,
    pub run_id: String,
    pub result: RunFinished,
}

/// What opening the journal found.
#[derive(Debug, Default)]
pub struct OpenReport {
    /// The unreadable file was moved here.
    pub moved_aside: Option<PathBuf>,
    pub parse_error: Option<String>,
}

/// The journal, loaded in memory and written through on every change.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    entries: BTreeMap<String, Entry>,
    retention: Retention,
}

impl Journal {
    pub fn path_in(state_dir: &Path) -> PathBuf {
        state_dir.join(JOURNAL_FILE)
    }

    /// Load the journal of `state_dir` (empty if there is none). An unparsable file is renamed
    /// to `jobs-journal.json.corrupt-<ms>` and an empty journal is used.
    pub fn open(state_dir: &Path, retention: Retention) -> io::Result<(Self, OpenReport)> {
        let path = Self::path_in(state_dir);
        let mut report = OpenReport::default();
        let entries = match std::fs::read(&path) {
            Ok(bytes) => match serde_json::from_slice::<FileForm>(&bytes) {
                Ok(form) if form.version == FORMAT_VERSION => form.entries,
                Ok(form) => {
                    report.parse_error = Some(format!("unknown format version {}", form.version));
                    report.moved_aside = Some(move_aside(&path)?);
                    BTreeMap::new()
                }
                Err(e) => {
                    report.parse_error = Some(e.to_string());
                    report.moved_aside = Some(move_aside(&path)?);
                    BTreeMap::new()
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("read {}: {e}", path.display()),
                ));
            }
        };
        Ok((
            Self {
                path,
                entries,
                retention,
            },
            report,
        ))
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Attempts recorded as started without a result: `(run id, attempt)`.
    pub fn unfinished(&self) -> Vec<(String, u32)> {
        self.entries
            .values()
            .filter(|e| e.state == EntryState::Started)
            .map(|e| (e.run_id.clone(), e.attempt))
            .collect()
    }

    /// Settle what the previous process left behind: an attempt started without a result
    /// becomes `interrupted` (it is never run again); a reboot intent becomes `succeeded`
    /// when the boot id changed and `failed` when it did not. Returns how many entries were
    /// settled.
    pub fn recover(&mut self, boot_id: Option<&str>, now_ms: i64) -> io::Result<usize> {
        let mut settled = 0;
        for entry in self.entries.values_mut() {
            let result = match &entry.state {
                EntryState::Started => Some(interrupted_result(
                    entry.attempt,
                    entry.recorded_at_ms,
                    now_ms,
                    INTERRUPTED_REASON,
                )),
                EntryState::Rebooting {
                    boot_id: before,
                    result,
                } => Some(after_reboot(result, before, boot_id, now_ms)),
                _ => None,
            };
            if let Some(result) = result {
                entry.state = EntryState::Finished { result };
                entry.updated_at_ms = now_ms;
                settled += 1;
            }
        }
        self.prune(now_ms);
        self.save()?;
        Ok(settled)
    }

    /// The key is about to be started. Must be durable before the process starts.
    pub fn record_started(
        &mut self,
        key: &str,
        run_id: &str,
        attempt: u32,
        now_ms: i64,
    ) -> io::Result<()> {
        self.entries.insert(
            key.to_string(),
            Entry {
                run_id: run_id.to_string(),
                attempt,
                recorded_at_ms: now_ms,
                updated_at_ms: now_ms,
                state: EntryState::Started,
            },
        );
        self.prune(now_ms);
        let saved = self.save();
        if saved.is_err() {
            // Not durable means not started: forget it, so memory and disk agree.
            self.entries.remove(key);
        }
        saved
    }

    /// The attempt succeeded and the machine is about to reboot; `result` is what is reported
    /// after the reboot.
    pub fn record_rebooting(
        &mut self,
        key: &str,
        boot_id: &str,
        result: RunFinished,
        now_ms: i64,
    ) -> io::Result<()> {
        self.set(
            key,
            EntryState::Rebooting {
                boot_id: boot_id.to_string(),
                result,
            },
            now_ms,
        )
    }

    /// The attempt's final result, now in the outbox.
    pub fn record_result(&mut self, key: &str, result: RunFinished, now_ms: i64) -> io::Result<()> {
        self.set(key, EntryState::Finished { result }, now_ms)
    }

    /// The server has the result (or refused it for good).
    pub fn mark_acknowledged(&mut self, key: &str, now_ms: i64) -> io::Result<()> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(());
        };
        let EntryState::Finished { result } = &entry.state else {
            return Ok(());
        };
        let result = result.clone();
        self.set(key, EntryState::Acknowledged { result }, now_ms)
    }

    /// Put an acknowledged result back into the outbox (the server delivered the key again,
    /// so it evidently does not have the result). Returns whether there was a result.
    pub fn resend(&mut self, key: &str, now_ms: i64) -> io::Result<bool> {
        let Some(entry) = self.entries.get(key) else {
            return Ok(false);
        };
        match &entry.state {
            EntryState::Acknowledged { result } => {
                let result = result.clone();
                self.set(key, EntryState::Finished { result }, now_ms)?;
                Ok(true)
            }
            EntryState::Finished { .. } => Ok(true),
            _ => Ok(false),
        }
    }

    /// Results waiting for the server, oldest first.
    pub fn outbox(&self) -> Vec<Pending> {
        let mut pending: Vec<(i64, Pending)> = self
            .entries
            .iter()
            .filter_map(|(key, e)| match &e.state {
                EntryState::Finished { result } => Some((
                    e.updated_at_ms,
                    Pending {
                        key: key.clone(),
                        run_id: e.run_id.clone(),
                        result: result.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        pending.sort_by_key(|(at, _)| *at);
        pending.into_iter().map(|(_, p)| p).collect()
    }

    fn set(&mut self, key: &str, state: EntryState, now_ms: i64) -> io::Result<()> {
        let Some(entry) = self.entries.get_mut(key) else {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("attempt {key} is not in the journal"),
            ));
        };
        entry.state = state;
        entry.updated_at_ms = now_ms;
        self.save()
    }

    /// Drop acknowledged entries that are too old, then the oldest acknowledged ones beyond
    /// the count limit. Entries that still matter (started, rebooting, unsent) are never
    /// dropped.
    fn prune(&mut self, now_ms: i64) {
        let max_age_ms = i64::try_from(self.retention.max_age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(max_age_ms);
        self.entries.retain(|_, e| {
            !matches!(e.state, EntryState::Acknowledged { .. }) || e.updated_at_ms >= cutoff
        });
        if self.entries.len() <= self.retention.max_entries {
            return;
        }
        let mut acked: Vec<(i64, String)> = self
            .entries
            .iter()
            .filter(|(_, e)| matches!(e.state, EntryState::Acknowledged { .. }))
            .map(|(k, e)| (e.updated_at_ms, k.clone()))
            .collect();
        acked.sort();
        let excess = self.entries.len() - self.retention.max_entries;
        for (_, key) in acked.into_iter().take(excess) {
            self.entries.remove(&key);
        }
    }

    fn save(&self) -> io::Result<()> {
        let form = FileForm {
            version: FORMAT_VERSION,
            entries: self.entries.clone(),
        };
        let bytes = serde_json::to_vec(&form).map_err(io::Error::other)?;
        if let Some(dir) = self.path.parent() {
            ensure_state_dir(dir)?;
        }
        write_private_atomic(&self.path, &bytes)
    }
}

fn move_aside(path: &Path) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(JOURNAL_FILE);
    let target = path.with_file_name(format!("{name}.corrupt-{}", super::now_ms()));
    std::fs::rename(path, &target).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "move the unreadable {} aside to {}: {e}",
                path.display(),
                target.display()
            ),
        )
    })?;
    Ok(target)
}

/// The result of an attempt the agent lost.
pub fn interrupted_result(
    attempt: u32,
    started_at_ms: i64,
    now_ms: i64,
    reason: &str,
) -> RunFinished {
    RunFinished {
        attempt,
        outcome: AttemptOutcome::Interrupted,
        exit_code: None,
        error: Some(reason.to_string()),
        started_at_ms: Some(started_at_ms),
        finished_at_ms: now_ms,
        stdout_bytes: 0,
        stderr_bytes: 0,
        stdout_truncated: false,
        stderr_truncated: false,
    }
}

/// The final result of an attempt that rebooted the machine: the attempt's own result when
/// the boot id changed, a failure otherwise.
pub fn after_reboot(
    result: &RunFinished,
    boot_id_before: &str,
    boot_id_now: Option<&str>,
    now_ms: i64,
) -> RunFinished {
    let mut out = result.clone();
    out.finished_at_ms = now_ms;
    match boot_id_now {
        Some(now) if now != boot_id_before => {
            out.outcome = AttemptOutcome::Succeeded;
            out.error = Some(REBOOTED_REASON.to_string());
        }
        Some(_) => {
            out.outcome = AttemptOutcome::Failed;
            out.error = Some(
                "the reboot did not happen: the boot id is unchanged (the reboot command \
                 failed, or the agent was restarted without a reboot)"
                    .to_string(),
            );
        }
        None => {
            out.outcome = AttemptOutcome::Failed;
            out.error =
                Some("cannot tell whether the machine rebooted: no boot id available".to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(outcome: AttemptOutcome) -> RunFinished {
        RunFinished {
            attempt: 1,
            outcome,
            exit_code: Some(0),
            error: None,
            started_at_ms: Some(10),
            finished_at_ms: 20,
            stdout_bytes: 5,
            stderr_bytes: 0,
            stdout_truncated: false,
            stderr_truncated: false,
        }
    }

    fn open(dir: &Path) -> Journal {
        let (journal, report) = Journal::open(dir, Retention::default()).unwrap();
        assert!(report.moved_aside.is_none(), "{report:?}");
        journal
    }

    #[test]
    fn an_attempt_started_before_a_crash_is_reported_interrupted_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut j = open(dir.path());
            j.record_started("r1:1", "r1", 1, 100).unwrap();
            // The process "crashes" here: nothing else is written.
        }
        let mut j = open(dir.path());
        assert_eq!(j.unfinished(), [("r1".to_string(), 1)]);
        assert_eq!(j.recover(Some("boot-a"), 500).unwrap(), 1);
        assert!(j.unfinished().is_empty());
        let out = j.outbox();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, "r1:1");
        assert_eq!(out[0].run_id, "r1");
        assert_eq!(out[0].result.outcome, AttemptOutcome::Interrupted);
        assert_eq!(out[0].result.started_at_ms, Some(100));
        assert_eq!(out[0].result.finished_at_ms, 500);
        assert!(
            out[0]
                .result
                .error
                .as_deref()
                .unwrap()
                .contains("interrupted")
        );
        // Settled results survive another restart unchanged.
        let j = open(dir.path());
        assert_eq!(j.outbox().len(), 1);
    }

    #[test]
    fn reboot_intents_settle_by_boot_id() {
        // (boot id after restart, expected outcome, error contains)
        let cases = [
            (
                Some("boot-b"),
                AttemptOutcome::Succeeded,
                "rebooted; boot id changed",
            ),
            (Some("boot-a"), AttemptOutcome::Failed, "did not happen"),
            (None, AttemptOutcome::Failed, "no boot id"),
        ];
        for (now_boot, outcome, needle) in cases {
            let dir = tempfile::tempdir().unwrap();
            {
                let mut j = open(dir.path());
                j.record_started("r2:3", "r2", 3, 100).unwrap();
                let mut r = result(AttemptOutcome::Succeeded);
                r.attempt = 3;
                r.exit_code = Some(194);
                j.record_rebooting("r2:3", "boot-a", r, 200).unwrap();
            }
            let mut j = open(dir.path());
            j.recover(now_boot, 900).unwrap();
            let out = j.outbox();
            assert_eq!(out.len(), 1, "{now_boot:?}");
            let r = &out[0].result;
            assert_eq!(r.outcome, outcome, "{now_boot:?}");
            assert!(r.error.as_deref().unwrap().contains(needle), "{r:?}");
            assert_eq!(r.exit_code, Some(194));
            assert_eq!(r.attempt, 3);
            assert_eq!(r.finished_at_ms, 900);
        }
    }

    #[test]
    fn outbox_then_acknowledged_then_resent_when_delivered_again() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(dir.path());
        j.record_started("a:1", "a", 1, 1).unwrap();
        j.record_result("a:1", result(AttemptOutcome::Succeeded), 2)
            .unwrap();
        assert_eq!(j.outbox().len(), 1);
        j.mark_acknowledged("a:1", 3).unwrap();
        assert!(j.outbox().is_empty());
        let j2 = open(dir.path());
        assert!(matches!(
            j2.get("a:1").unwrap().state,
            EntryState::Acknowledged { .. }
        ));
        assert!(j.resend("a:1", 4).unwrap());
        assert_eq!(j.outbox()[0].result, result(AttemptOutcome::Succeeded));
        assert!(!j.resend("unknown:1", 4).unwrap());
        // Recovery leaves finished and acknowledged entries alone.
        j.mark_acknowledged("a:1", 5).unwrap();
        assert_eq!(j.recover(Some("x"), 6).unwrap(), 0);
    }

    fn acked(j: &mut Journal, key: &str, at: i64) {
        j.record_started(key, key, 1, at).unwrap();
        j.record_result(key, result(AttemptOutcome::Succeeded), at)
            .unwrap();
        j.mark_acknowledged(key, at).unwrap();
    }

    #[test]
    fn acknowledged_entries_are_pruned_by_count_oldest_first_but_pending_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_age: Duration::from_secs(3600),
            max_entries: 3,
        };
        let (mut j, _) = Journal::open(dir.path(), retention).unwrap();
        for i in 0..3 {
            acked(&mut j, &format!("old{i}:1"), i);
        }
        j.record_started("busy:1", "busy", 1, 10).unwrap();
        assert!(j.get("old0:1").is_none() && j.get("old1:1").is_some());
        j.record_started("unsent:1", "unsent", 1, 11).unwrap();
        j.record_result("unsent:1", result(AttemptOutcome::Failed), 11)
            .unwrap();
        j.record_started("new:1", "new", 1, 12).unwrap();
        // Over the limit with nothing acknowledged left to drop: pending entries all stay.
        j.record_started("newer:1", "newer", 1, 13).unwrap();
        let mut keys: Vec<&String> = j.entries.keys().collect();
        keys.sort();
        assert_eq!(keys, ["busy:1", "new:1", "newer:1", "unsent:1"]);
        // What was pruned stays pruned on disk.
        let (reloaded, _) = Journal::open(dir.path(), retention).unwrap();
        assert_eq!(reloaded.len(), 4);
    }

    #[test]
    fn acknowledged_entries_are_pruned_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_age: Duration::from_secs(1),
            max_entries: 100,
        };
        let (mut j, _) = Journal::open(dir.path(), retention).unwrap();
        acked(&mut j, "old:1", 0);
        acked(&mut j, "recent:1", 4_500);
        j.record_started("unsent:1", "unsent", 1, 0).unwrap();
        j.record_started("now:1", "now", 1, 5_000).unwrap();
        assert!(j.get("old:1").is_none());
        assert!(j.get("recent:1").is_some());
        assert!(j.get("unsent:1").is_some());
    }

    #[test]
    fn a_corrupt_journal_is_moved_aside_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = Journal::path_in(dir.path());
        for garbage in [
            "{\"version\":1,\"entries\":",
            "\u{0}\u{1}binary",
            "{\"version\":99,\"entries\":{}}",
        ] {
            std::fs::write(&path, garbage).unwrap();
            let (mut j, report) = Journal::open(dir.path(), Retention::default()).unwrap();
            let aside = report.moved_aside.expect("moved aside");
            assert!(report.parse_error.is_some());
            assert_eq!(std::fs::read_to_string(&aside).unwrap(), garbage);
            assert_eq!(j.len(), 0);
            assert!(!path.exists());
            // The fresh journal works.
            j.record_started("k:1", "k", 1, 1).unwrap();
            assert!(open(dir.path()).get("k:1").is_some());
            std::fs::remove_file(&aside).unwrap();
        }
    }

    #[cfg(unix)]
    #[test]
    fn the_journal_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(dir.path());
        j.record_started("k:1", "k", 1, 1).unwrap();
        let mode = std::fs::metadata(Journal::path_in(dir.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn updating_an_unknown_key_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = open(dir.path());
        assert!(
            j.record_result("nope:1", result(AttemptOutcome::Failed), 1)
                .is_err()
        );
    }
}

//! What one device's manifest must contain, decided from the assignments that reach it, the
//! device's maintenance windows, the time, and what Capstan already did on it. Pure: the
//! compiler ([`super::compile`]) loads the inputs and resolves the chosen versions to plans.
//!
//! **Conflict rule** (several assignments of one package reach one device), in order:
//! 1. an assignment to the device itself beats one through a group;
//! 2. then the stronger intent: required, then uninstall, then available;
//! 3. then the higher version ("latest" counts as the version it resolves to);
//! 4. then the older assignment.
//!
//! The losers are reported as conflicts with the step that decided, so the operator sees them.

use std::collections::{BTreeMap, HashMap};

use capstan_proto::deploy::{Intent, ItemIntent, NetworkPolicy, WindowPolicy};
use capstan_store::StateBrief;

/// One assignment as the decision needs it.
#[derive(Debug, Clone)]
pub struct AssignmentFacts {
    pub id: String,
    pub package_id: String,
    /// What the pin or "latest" resolves to now; `None` when the package has no versions.
    pub version: Option<String>,
    /// Pinned to a version (not "latest").
    pub pinned: bool,
    pub intent: Intent,
    pub leave_installed: bool,
    pub to_device: bool,
    pub available_from: Option<i64>,
    pub deadline: Option<i64>,
    pub window_policy: WindowPolicy,
    pub network: NetworkPolicy,
    pub paused: bool,
    pub created_at: i64,
}

/// The device's maintenance windows at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Windows {
    /// No window applies: nothing waits.
    None,
    /// Open until the given time.
    Open { closes_at: Option<i64> },
    /// Closed until the given time.
    Closed { opens_at: Option<i64> },
}

/// One decided manifest item (before its plan is resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decided {
    pub package_id: String,
    pub version: String,
    pub intent: ItemIntent,
    /// Absent items from a removed assignment uninstall whatever version is present; items of
    /// an assignment pinned to a version act on that version only.
    pub any_version: bool,
    pub hold: Option<String>,
    pub assignment_id: Option<String>,
    pub leave_installed: bool,
    pub network: NetworkPolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    pub package_id: String,
    pub winner: String,
    pub loser: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub items: Vec<Decided>,
    pub conflicts: Vec<Conflict>,
    /// The earliest time at which the same inputs decide differently (a window, an
    /// available-from time or a deadline passes).
    pub next_eval: Option<i64>,
}

fn intent_rank(i: Intent) -> u8 {
    match i {
        Intent::Required => 0,
        Intent::Uninstall => 1,
        Intent::Available => 2,
    }
}

/// The intent in force at `now`: an available deployment past its deadline is required.
fn effective_intent(a: &AssignmentFacts, now: i64) -> Intent {
    match (a.intent, a.deadline) {
        (Intent::Available, Some(d)) if d <= now => Intent::Required,
        (i, _) => i,
    }
}

fn soonest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, y) => x.or(y),
    }
}

/// `iso` formatting of a Unix-ms time for hold reasons (UTC, minutes).
pub fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

/// Orders two assignments of one package: `Less` when `a` wins.
fn order(
    a: &AssignmentFacts,
    b: &AssignmentFacts,
    now: i64,
    compare: &dyn Fn(&str, &str, &str) -> std::cmp::Ordering,
) -> (std::cmp::Ordering, &'static str) {
    use std::cmp::Ordering::Equal;
    let by_target = b.to_device.cmp(&a.to_device);
    if by_target != Equal {
        return (
            by_target,
            "an assignment to the device beats one through a group",
        );
    }
    let by_intent =
        intent_rank(effective_intent(a, now)).cmp(&intent_rank(effective_intent(b, now)));
    if by_intent != Equal {
        return (
            by_intent,
            "the stronger intent wins (required, then uninstall, then available)",
        );
    }
    let by_version = match (&a.version, &b.version) {
        (Some(x), Some(y)) => compare(&a.package_id, y, x),
        _ => Equal,
    };
    if by_version != Equal {
        return (by_version, "the higher version wins");
    }
    (
        (a.created_at, &a.id).cmp(&(b.created_at, &b.id)),
        "the older assignment wins",
    )
}

/// Decides a device's items. `assignments` are those that reach the device (directly or
/// through its groups); `states` its software rows; `compare` orders two versions of a
/// package by its scheme.
pub fn decide(
    assignments: &[&AssignmentFacts],
    states: &[&StateBrief],
    windows: Windows,
    now: i64,
    compare: &dyn Fn(&str, &str, &str) -> std::cmp::Ordering,
) -> Decision {
    let mut out = Decision::default();
    let mut by_package: BTreeMap<&str, Vec<&AssignmentFacts>> = BTreeMap::new();
    for a in assignments {
        if a.version.is_none() {
            continue;
        }
        by_package.entry(&a.package_id).or_default().push(a);
    }
    let state_of: HashMap<&str, &StateBrief> =
        states.iter().map(|s| (s.package_id.as_str(), *s)).collect();
    let window_hold = || match windows {
        Windows::Closed { opens_at } => Some(match opens_at {
            Some(t) => format!("waiting for a maintenance window (opens {})", when(t)),
            None => "waiting for a maintenance window".to_string(),
        }),
        _ => None,
    };
    let window_change = match windows {
        Windows::None => None,
        Windows::Open { closes_at } => closes_at,
        Windows::Closed { opens_at } => opens_at,
    };
    let mut uses_window = false;
    for (package, list) in &by_package {
        let mut ranked = list.clone();
        ranked.sort_by(|a, b| order(a, b, now, compare).0);
        let winner = ranked[0];
        for loser in &ranked[1..] {
            out.conflicts.push(Conflict {
                package_id: package.to_string(),
                winner: winner.id.clone(),
                loser: loser.id.clone(),
                reason: order(winner, loser, now, compare).1.to_string(),
            });
        }
        let a = winner;
        let version = a.version.clone().unwrap_or_default();
        let intent = effective_intent(a, now);
        if a.intent == Intent::Available
            && let Some(d) = a.deadline.filter(|d| *d > now)
        {
            out.next_eval = soonest(out.next_eval, Some(d));
        }
        let not_yet = a.available_from.filter(|t| *t > now);
        if let Some(t) = not_yet {
            out.next_eval = soonest(out.next_eval, Some(t));
            if intent == Intent::Available {
                // Nothing is offered before its time.
                continue;
            }
        }
        let requested = state_of
            .get(package)
            .is_some_and(|s| s.requested_at.is_some());
        let item_intent = match intent {
            Intent::Required => ItemIntent::Present,
            Intent::Uninstall => ItemIntent::Absent,
            Intent::Available if requested => ItemIntent::Present,
            Intent::Available => ItemIntent::Available,
        };
        let hold = if a.paused {
            Some("the deployment is paused".to_string())
        } else if let Some(t) = not_yet {
            Some(format!("scheduled: available from {}", when(t)))
        } else if item_intent != ItemIntent::Available
            && !requested
            && a.window_policy == WindowPolicy::Respect
        {
            uses_window = true;
            window_hold()
        } else {
            None
        };
        out.items.push(Decided {
            package_id: package.to_string(),
            version,
            intent: item_intent,
            any_version: item_intent == ItemIntent::Absent && !a.pinned,
            hold,
            assignment_id: Some(a.id.clone()),
            leave_installed: a.leave_installed,
            network: a.network.clone(),
        });
    }
    // What Capstan installed and no assignment wants any more is removed, unless the last
    // assignment said to leave it.
    for s in states {
        if by_package.contains_key(s.package_id.as_str())
            || !s.managed
            || s.leave_installed
            || s.status == "removed"
        {
            continue;
        }
        let Some(version) = s.version.clone() else {
            continue;
        };
        uses_window = true;
        out.items.push(Decided {
            package_id: s.package_id.clone(),
            version,
            intent: ItemIntent::Absent,
            any_version: true,
            hold: window_hold(),
            assignment_id: None,
            leave_installed: false,
            network: NetworkPolicy::default(),
        });
    }
    if uses_window {
        out.next_eval = soonest(out.next_eval, window_change);
    }
    out
}

#[cfg(test)]
mod tests;

//! The decision table: conflicts by the documented rule, schedules, windows, pausing,
//! requests, and removal of what no assignment wants any more.

use super::*;

const NOW: i64 = 1_800_000_000_000;

fn facts(id: &str, intent: Intent, version: &str) -> AssignmentFacts {
    AssignmentFacts {
        id: id.into(),
        package_id: "pkg".into(),
        version: Some(version.into()),
        pinned: false,
        intent,
        leave_installed: false,
        to_device: false,
        available_from: None,
        deadline: None,
        window_policy: WindowPolicy::Respect,
        network: NetworkPolicy::default(),
        paused: false,
        created_at: 1,
    }
}

fn state(package: &str, status: &str, managed: bool) -> StateBrief {
    StateBrief {
        device_id: "d".into(),
        package_id: package.into(),
        version: Some("1.0".into()),
        desired: None,
        status: status.into(),
        managed,
        leave_installed: false,
        requested_at: None,
    }
}

fn numeric(_: &str, a: &str, b: &str) -> std::cmp::Ordering {
    capstan_core::version::compare(capstan_core::version::Scheme::Dpkg, a, b)
}

fn run(a: &[AssignmentFacts], s: &[StateBrief], w: Windows) -> Decision {
    let a: Vec<&AssignmentFacts> = a.iter().collect();
    let s: Vec<&StateBrief> = s.iter().collect();
    decide(&a, &s, w, NOW, &numeric)
}

#[test]
fn conflicts_follow_the_documented_rule_and_are_reported() {
    // (assignments, winner, reason of the first loser)
    let mut device = facts("device-avail", Intent::Available, "1.0");
    device.to_device = true;
    let cases: Vec<(Vec<AssignmentFacts>, &str, &str)> = vec![
        (
            vec![facts("group-req", Intent::Required, "2.0"), device.clone()],
            "device-avail",
            "an assignment to the device beats one through a group",
        ),
        (
            vec![
                facts("avail", Intent::Available, "3.0"),
                facts("uninst", Intent::Uninstall, "1.0"),
                facts("req", Intent::Required, "1.0"),
            ],
            "req",
            "the stronger intent wins (required, then uninstall, then available)",
        ),
        (
            vec![
                facts("old", Intent::Required, "1.9"),
                facts("new", Intent::Required, "1.10"),
            ],
            "new",
            "the higher version wins",
        ),
        (
            vec![
                AssignmentFacts {
                    created_at: 5,
                    ..facts("younger", Intent::Required, "1.0")
                },
                facts("older", Intent::Required, "1.0"),
            ],
            "older",
            "the older assignment wins",
        ),
    ];
    for (list, winner, reason) in cases {
        let d = run(&list, &[], Windows::None);
        assert_eq!(d.items.len(), 1, "{winner}");
        assert_eq!(d.items[0].assignment_id.as_deref(), Some(winner));
        assert_eq!(d.conflicts.len(), list.len() - 1, "{winner}");
        assert!(d.conflicts.iter().all(|c| c.winner == winner));
        assert_eq!(d.conflicts[0].reason, reason, "{winner}");
    }
}

#[test]
fn intents_map_to_items() {
    let d = run(&[facts("a", Intent::Required, "1.0")], &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Present);
    assert_eq!(d.items[0].hold, None);
    let d = run(&[facts("a", Intent::Available, "1.0")], &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Available);
    let d = run(&[facts("a", Intent::Uninstall, "1.0")], &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Absent);
    assert!(
        d.items[0].any_version,
        "latest uninstall removes any version"
    );
    let pinned = AssignmentFacts {
        pinned: true,
        ..facts("a", Intent::Uninstall, "1.0")
    };
    assert!(!run(&[pinned], &[], Windows::None).items[0].any_version);
    // A package without versions has nothing to decide.
    let none = AssignmentFacts {
        version: None,
        ..facts("a", Intent::Required, "1.0")
    };
    assert!(run(&[none], &[], Windows::None).items.is_empty());
}

#[test]
fn schedules_hold_and_set_the_next_evaluation() {
    let later = NOW + 3_600_000;
    // Required before available-from: listed, held, re-evaluated then.
    let a = AssignmentFacts {
        available_from: Some(later),
        ..facts("a", Intent::Required, "1.0")
    };
    let d = run(&[a], &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Present);
    assert!(d.items[0].hold.as_deref().unwrap().starts_with("scheduled"));
    assert_eq!(d.next_eval, Some(later));
    // Available before available-from: not offered at all yet.
    let a = AssignmentFacts {
        available_from: Some(later),
        ..facts("a", Intent::Available, "1.0")
    };
    let d = run(&[a], &[], Windows::None);
    assert!(d.items.is_empty());
    assert_eq!(d.next_eval, Some(later));
    // Before the deadline available, after it required.
    let a = AssignmentFacts {
        deadline: Some(later),
        ..facts("a", Intent::Available, "1.0")
    };
    let d = run(std::slice::from_ref(&a), &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Available);
    assert_eq!(d.next_eval, Some(later));
    let past = AssignmentFacts {
        deadline: Some(NOW - 1),
        ..a
    };
    let d = run(&[past], &[], Windows::None);
    assert_eq!(d.items[0].intent, ItemIntent::Present);
    assert_eq!(d.next_eval, None);
}

#[test]
fn windows_hold_required_changes_unless_ignored() {
    let opens = NOW + 600_000;
    let closed = Windows::Closed {
        opens_at: Some(opens),
    };
    let d = run(&[facts("a", Intent::Required, "1.0")], &[], closed);
    assert!(
        d.items[0]
            .hold
            .as_deref()
            .unwrap()
            .starts_with("waiting for a maintenance window")
    );
    assert_eq!(d.next_eval, Some(opens));
    let d = run(&[facts("a", Intent::Uninstall, "1.0")], &[], closed);
    assert!(d.items[0].hold.is_some());
    // Available items are not held (nothing happens until someone asks).
    let d = run(&[facts("a", Intent::Available, "1.0")], &[], closed);
    assert_eq!(d.items[0].hold, None);
    assert_eq!(d.next_eval, None);
    let ignore = AssignmentFacts {
        window_policy: WindowPolicy::Ignore,
        ..facts("a", Intent::Required, "1.0")
    };
    let d = run(&[ignore], &[], closed);
    assert_eq!(d.items[0].hold, None);
    // Open: no hold, re-evaluated when it closes.
    let open = Windows::Open {
        closes_at: Some(opens),
    };
    let d = run(&[facts("a", Intent::Required, "1.0")], &[], open);
    assert_eq!(d.items[0].hold, None);
    assert_eq!(d.next_eval, Some(opens));
}

#[test]
fn paused_deployments_hold_and_requests_install_available_packages() {
    let a = AssignmentFacts {
        paused: true,
        ..facts("a", Intent::Required, "1.0")
    };
    let d = run(&[a], &[], Windows::None);
    assert_eq!(d.items[0].hold.as_deref(), Some("the deployment is paused"));
    let mut asked = state("pkg", "available", false);
    asked.requested_at = Some(NOW - 5);
    let d = run(
        &[facts("a", Intent::Available, "1.0")],
        &[asked],
        Windows::Closed { opens_at: None },
    );
    assert_eq!(d.items[0].intent, ItemIntent::Present);
    assert_eq!(d.items[0].hold, None, "someone asked for it now");
}

#[test]
fn what_capstan_installed_is_removed_when_no_assignment_wants_it() {
    let installed = state("gone", "installed", true);
    let d = run(&[], std::slice::from_ref(&installed), Windows::None);
    assert_eq!(d.items.len(), 1);
    assert_eq!(d.items[0].intent, ItemIntent::Absent);
    assert!(d.items[0].any_version);
    assert_eq!(d.items[0].assignment_id, None);
    // Not managed, left installed on purpose, or already removed: nothing.
    for s in [
        state("gone", "installed", false),
        StateBrief {
            leave_installed: true,
            ..installed.clone()
        },
        state("gone", "removed", true),
    ] {
        assert!(run(&[], &[s], Windows::None).items.is_empty());
    }
    // Removal waits for a window too.
    let d = run(
        &[],
        &[installed],
        Windows::Closed {
            opens_at: Some(NOW + 1),
        },
    );
    assert!(d.items[0].hold.is_some());
    assert_eq!(d.next_eval, Some(NOW + 1));
}

//! The storage suite: every case runs on SQLite and on a real PostgreSQL (a throwaway cluster
//! the harness starts, or `CAPSTAN_TEST_DATABASE_URL`), so both backends keep identical
//! behaviour. Nothing here is skipped when PostgreSQL is "unavailable": the harness starts it.

use std::sync::Arc;

use capstan_store::*;
use serde_json::json;

mod common;
use common::on_both;

on_both!(
    migrations_are_recorded_and_idempotent,
    users_and_sessions,
    api_tokens,
    enrollment_limits,
    concurrent_enrollment_never_exceeds_max_uses,
    reenrollment_reuses_the_device,
    checkin_and_revocation,
    inventory_history_is_atomic_and_paged,
    device_list_filters_sorts_and_pages,
    delete_cascades_and_is_audited,
    settings_initialise_once,
    notifications_reach_subscribers_on_postgres,
    last_enabled_admin_is_never_removed,
    concurrent_changes_never_remove_every_admin,
    deleting_a_user_cascades_and_is_audited,
    password_change_ends_the_other_sessions,
    audit_log_filters_and_pages,
    group_tree_refuses_cycles_and_counts_descendants,
    group_membership_is_idempotent_timelined_and_filterable,
    bulk_tags_change_timeline_and_filter_exactly,
    custom_fields_round_trip_every_type_and_filter,
    dynamic_membership_changes_are_recorded_once,
    batched_job_reports_behave_like_one_at_a_time,
    compiled_manifests_are_written_in_batches_and_skip_what_moved,
);

fn audit(action: &str) -> AuditEntry {
    AuditEntry {
        at: 1,
        actor: "user:test".into(),
        action: action.into(),
        target: None,
        details: json!({}),
    }
}

fn id() -> String {
    uuid::Uuid::now_v7().to_string()
}

async fn migrations_are_recorded_and_idempotent(s: &Store) {
    let versions: Vec<i64> = MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(s.applied_migrations().await.unwrap(), versions);
    s.migrate().await.unwrap();
    assert_eq!(s.applied_migrations().await.unwrap(), versions);
    s.ping().await.unwrap();
}

fn new_user(name: &str) -> NewUser {
    NewUser {
        id: id(),
        username: name.into(),
        password_hash: "h".into(),
        role: "viewer".into(),
        created_at: 5,
    }
}

async fn users_and_sessions(s: &Store) {
    assert!(s.bootstrap_admin(&new_user("admin")).await.unwrap());
    assert!(
        !s.bootstrap_admin(&new_user("admin2")).await.unwrap(),
        "bootstrap only on an empty database"
    );
    let u = new_user("alice");
    s.create_user(&u, Some(&audit("user.create")))
        .await
        .unwrap();
    match s.create_user(&new_user("alice"), None).await {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("duplicate username must conflict, got {other:?}"),
    }
    assert_eq!(s.count_users().await.unwrap(), 2);
    let row = s.user_by_username("alice").await.unwrap().unwrap();
    assert_eq!(row.id, u.id);
    assert!(!row.disabled);
    assert!(
        s.user_by_username("ALICE").await.unwrap().is_none(),
        "usernames are exact"
    );

    let sess = SessionRow {
        id: id(),
        user_id: u.id.clone(),
        secret_hash: "x".into(),
        created_at: 10,
        expires_at: 100,
        last_used_at: 10,
    };
    s.create_session(&sess).await.unwrap();
    s.touch_session(&sess.id, 50, 500).await.unwrap();
    let got = s.session(&sess.id).await.unwrap().unwrap();
    assert_eq!((got.last_used_at, got.expires_at), (50, 500));
    assert_eq!(s.purge_expired_sessions(400).await.unwrap(), 0);
    assert_eq!(s.purge_expired_sessions(600).await.unwrap(), 1);
    assert!(s.session(&sess.id).await.unwrap().is_none());
    let audit_rows = s.audit_log(10).await.unwrap();
    assert_eq!(
        audit_rows.len(),
        1,
        "one audited create, the bootstrap is not an operator action"
    );
}

async fn api_tokens(s: &Store) {
    let a = new_user("a");
    let b = new_user("b");
    s.create_user(&a, None).await.unwrap();
    s.create_user(&b, None).await.unwrap();
    let mk = |user: &str, name: &str| ApiTokenRow {
        id: id(),
        user_id: user.into(),
        name: name.into(),
        secret_hash: "h".into(),
        created_at: 1,
        expires_at: Some(99),
        last_used_at: None,
        revoked_at: None,
    };
    let t1 = mk(&a.id, "ci");
    s.create_api_token(&t1, &audit("api_token.create"))
        .await
        .unwrap();
    s.create_api_token(&mk(&b.id, "other"), &audit("api_token.create"))
        .await
        .unwrap();
    assert_eq!(s.list_api_tokens(Some(&a.id)).await.unwrap().len(), 1);
    assert_eq!(s.list_api_tokens(None).await.unwrap().len(), 2);
    s.touch_api_token(&t1.id, 100_000).await.unwrap();
    assert_eq!(
        s.api_token(&t1.id).await.unwrap().unwrap().last_used_at,
        Some(100_000)
    );
    s.revoke_api_token(&t1.id, 7, &audit("api_token.revoke"))
        .await
        .unwrap();
    s.revoke_api_token(&t1.id, 8, &audit("api_token.revoke"))
        .await
        .unwrap();
    assert_eq!(
        s.api_token(&t1.id).await.unwrap().unwrap().revoked_at,
        Some(7),
        "first revocation time is kept"
    );
    assert!(matches!(
        s.revoke_api_token("nope", 1, &audit("x")).await,
        Err(StoreError::NotFound)
    ));
}

fn token(max_uses: Option<i64>, expires_at: i64) -> NewEnrollmentToken {
    NewEnrollmentToken {
        id: id(),
        name: "lab".into(),
        secret_hash: "h".into(),
        created_at: 1,
        created_by: "user:test".into(),
        expires_at,
        max_uses,
        default_tags: vec!["lab".into(), "linux".into()],
    }
}

fn enroll_input(token_id: &str, identity: &str, now: i64) -> EnrollInput {
    EnrollInput {
        token_id: token_id.into(),
        now,
        new_device_id: id(),
        secret_hash: format!("secret-{identity}"),
        identity_key: identity.into(),
        identity_source: "instance".into(),
        hostname: format!("host-{identity}"),
        os_family: "linux".into(),
        agent_version: "0.1.0".into(),
    }
}

async fn enrollment_limits(s: &Store) {
    let t = token(Some(2), 1_000);
    s.create_enrollment_token(&t, &audit("enrollment_token.create"))
        .await
        .unwrap();
    s.enroll_device(&enroll_input(&t.id, "m1", 10))
        .await
        .unwrap();
    s.enroll_device(&enroll_input(&t.id, "m2", 10))
        .await
        .unwrap();
    match s.enroll_device(&enroll_input(&t.id, "m3", 10)).await {
        Err(EnrollError::Exhausted(2)) => {}
        other => panic!("third use must be refused, got {other:?}"),
    }
    let row = s.enrollment_token(&t.id).await.unwrap().unwrap();
    assert_eq!(row.uses, 2);
    assert_eq!(row.state(10), "exhausted");
    assert_eq!(row.tags(), vec!["lab".to_string(), "linux".to_string()]);

    let expired = token(None, 1_000);
    s.create_enrollment_token(&expired, &audit("x"))
        .await
        .unwrap();
    assert!(matches!(
        s.enroll_device(&enroll_input(&expired.id, "m4", 1_000))
            .await,
        Err(EnrollError::Expired)
    ));

    let revoked = token(None, 10_000);
    s.create_enrollment_token(&revoked, &audit("x"))
        .await
        .unwrap();
    s.revoke_enrollment_token(&revoked.id, 5, &audit("x"))
        .await
        .unwrap();
    assert!(matches!(
        s.enroll_device(&enroll_input(&revoked.id, "m5", 10)).await,
        Err(EnrollError::Invalid)
    ));
    assert!(matches!(
        s.enroll_device(&enroll_input("unknown", "m6", 10)).await,
        Err(EnrollError::Invalid)
    ));
    // Refused enrollments store nothing.
    let (devices, total) = s
        .list_devices(&DeviceFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((devices.len(), total), (2, 2));
    assert_eq!(s.list_enrollment_tokens().await.unwrap().len(), 3);
}

async fn concurrent_enrollment_never_exceeds_max_uses(s: &Store) {
    let t = token(Some(5), 1_000_000);
    s.create_enrollment_token(&t, &audit("x")).await.unwrap();
    let s = Arc::new(s.clone());
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        let tid = t.id.clone();
        tasks.push(tokio::spawn(async move {
            s.enroll_device(&enroll_input(&tid, &format!("c{i}"), 10))
                .await
        }));
    }
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(EnrollError::Exhausted(_)) => {}
            Err(e) => panic!("unexpected {e:?}: concurrent enrollment must serialise, not fail"),
        }
    }
    let row = s.enrollment_token(&t.id).await.unwrap().unwrap();
    assert_eq!(
        row.uses, ok,
        "uses counter must equal successful enrollments"
    );
    assert_eq!(
        ok, 5,
        "a 5-use token enrolls exactly 5 of 20 concurrent machines"
    );
    let (_, total) = s
        .list_devices(&DeviceFilter {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, ok);
}

async fn reenrollment_reuses_the_device(s: &Store) {
    let t = token(None, 1_000_000);
    s.create_enrollment_token(&t, &audit("x")).await.unwrap();
    let first = s
        .enroll_device(&enroll_input(&t.id, "same", 10))
        .await
        .unwrap();
    assert!(!first.reenrolled);
    s.revoke_device(&first.device_id, 15, &audit("device.revoke"))
        .await
        .unwrap();
    let mut again = enroll_input(&t.id, "same", 20);
    again.secret_hash = "new-secret".into();
    let second = s.enroll_device(&again).await.unwrap();
    assert!(second.reenrolled);
    assert_eq!(second.device_id, first.device_id, "no duplicate device");
    let auth = s.device_auth(&first.device_id).await.unwrap().unwrap();
    assert_eq!(auth.secret_hash, "new-secret", "old credential replaced");
    assert_eq!(
        auth.revoked_at, None,
        "re-enrolling with a valid token restores the device"
    );
    let kinds: Vec<String> = s
        .timeline(&first.device_id, None, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.kind)
        .collect();
    assert_eq!(kinds, vec!["reenrolled", "revoked", "enrolled"]);
    let (_, total) = s
        .list_devices(&DeviceFilter {
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(total, 1);
}

async fn enrolled(s: &Store, identity: &str, now: i64) -> String {
    let t = token(None, i64::MAX);
    s.create_enrollment_token(&t, &audit("x")).await.unwrap();
    s.enroll_device(&enroll_input(&t.id, identity, now))
        .await
        .unwrap()
        .device_id
}

async fn checkin_and_revocation(s: &Store) {
    let d = enrolled(s, "ck", 10).await;
    let (refresh, digest) = s
        .record_checkin(&d, 20, "0.2.0", Some("boot-1"), Some("{\"load_1\":0.5}"))
        .await
        .unwrap();
    assert_eq!((refresh, digest), (None, None));
    s.request_inventory_refresh(&d, 25, &audit("device.refresh_inventory"))
        .await
        .unwrap();
    let (refresh, _) = s
        .record_checkin(&d, 30, "0.2.0", Some("boot-1"), None)
        .await
        .unwrap();
    assert_eq!(refresh, Some(25));
    let row = s.device(&d).await.unwrap().unwrap();
    assert_eq!(row.last_seen_at, Some(30));
    assert_eq!(row.agent_version.as_deref(), Some("0.2.0"));
    assert_eq!(
        row.performance.as_deref(),
        Some("{\"load_1\":0.5}"),
        "a check-in without a snapshot keeps the last one"
    );
    s.revoke_device(&d, 40, &audit("device.revoke"))
        .await
        .unwrap();
    assert!(matches!(
        s.record_checkin(&d, 50, "0.2.0", None, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.request_inventory_refresh(&d, 50, &audit("x")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.revoke_device("nope", 1, &audit("x")).await,
        Err(StoreError::NotFound)
    ));
}

fn change(field: &str) -> NewTimelineEntry {
    NewTimelineEntry {
        kind: "inventory_change".into(),
        category: Some("software".into()),
        field: Some(field.into()),
        change: Some("added".into()),
        old_value: None,
        new_value: Some("\"1.0\"".into()),
        summary: format!("software added: {field}"),
    }
}

async fn inventory_history_is_atomic_and_paged(s: &Store) {
    let d = enrolled(s, "inv", 10).await;
    s.request_inventory_refresh(&d, 11, &audit("x"))
        .await
        .unwrap();
    s.store_inventory(
        &d,
        None,
        "d1",
        "{\"a\":1}",
        "renamed",
        Some("Debian GNU/Linux"),
        Some("12"),
        &[],
        100,
    )
    .await
    .unwrap();
    let row = s.device(&d).await.unwrap().unwrap();
    assert_eq!(row.hostname, "renamed");
    assert_eq!(row.inventory_digest.as_deref(), Some("d1"));
    assert_eq!(
        row.refresh_requested_at, None,
        "an arriving inventory satisfies the refresh request"
    );
    // A second "first" inventory (a racing upload) conflicts and writes nothing.
    assert!(matches!(
        s.store_inventory(&d, None, "dx", "{}", "h", None, None, &[change("x")], 101)
            .await,
        Err(StoreError::Conflict(_))
    ));
    // Replacing the wrong digest conflicts and writes nothing.
    assert!(matches!(
        s.store_inventory(
            &d,
            Some("stale"),
            "d2",
            "{}",
            "h",
            None,
            None,
            &[change("y")],
            102
        )
        .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(s.inventory(&d).await.unwrap().unwrap().digest, "d1");
    let entries: Vec<NewTimelineEntry> = (0..7).map(|i| change(&format!("pkg{i}"))).collect();
    s.store_inventory(
        &d,
        Some("d1"),
        "d2",
        "{\"a\":2}",
        "renamed",
        None,
        None,
        &entries,
        200,
    )
    .await
    .unwrap();
    let inv = s.inventory(&d).await.unwrap().unwrap();
    assert_eq!(
        (inv.digest.as_str(), inv.document.as_str(), inv.updated_at),
        ("d2", "{\"a\":2}", 200)
    );

    // enrolled + refresh_requested + 7 changes = 9 entries; page by 4, newest first.
    let page1 = s.timeline(&d, None, None, 4).await.unwrap();
    assert_eq!(page1.len(), 4);
    assert_eq!(page1[0].field.as_deref(), Some("pkg6"));
    let page2 = s.timeline(&d, Some(page1[3].id), None, 4).await.unwrap();
    let page3 = s.timeline(&d, Some(page2[3].id), None, 4).await.unwrap();
    assert_eq!(page2.len(), 4);
    assert_eq!(
        page3.iter().map(|r| r.kind.as_str()).collect::<Vec<_>>(),
        vec!["enrolled"]
    );
    let mut ids: Vec<i64> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .map(|r| r.id)
        .collect();
    let before = ids.clone();
    ids.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(ids, before, "strictly newest first across pages");
    assert_eq!(
        s.timeline(&d, None, Some("inventory_change"), 100)
            .await
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        s.timeline(&d, None, Some("enrolled"), 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn device_list_filters_sorts_and_pages(s: &Store) {
    let names = ["web-01", "Web_02", "db-01", "100%-disk"];
    let mut ids = Vec::new();
    for (i, n) in names.iter().enumerate() {
        let d = enrolled(s, &format!("list{i}"), 10 + i as i64).await;
        s.store_inventory(&d, None, "x", "{}", n, None, None, &[], 10)
            .await
            .unwrap();
        ids.push(d);
    }
    // web-01 and db-01 seen recently, others long ago.
    s.record_checkin(&ids[0], 1_000, "1", None, None)
        .await
        .unwrap();
    s.record_checkin(&ids[2], 2_000, "1", None, None)
        .await
        .unwrap();
    let base = DeviceFilter {
        limit: 100,
        online_cutoff: 500,
        ..Default::default()
    };
    let names_of = |rows: &[DeviceRow]| rows.iter().map(|r| r.hostname.clone()).collect::<Vec<_>>();

    let (rows, total) = s
        .list_devices(&DeviceFilter {
            search: Some("WEB".into()),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (names_of(&rows), total),
        (vec!["web-01".to_string(), "Web_02".to_string()], 2)
    );
    let (rows, _) = s
        .list_devices(&DeviceFilter {
            search: Some("b_".into()),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        names_of(&rows),
        vec!["Web_02"],
        "_ is literal, not a wildcard"
    );
    let (rows, _) = s
        .list_devices(&DeviceFilter {
            search: Some("100%".into()),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(names_of(&rows), vec!["100%-disk"]);

    let (rows, total) = s
        .list_devices(&DeviceFilter {
            online: Some(true),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (names_of(&rows), total),
        (vec!["db-01".to_string(), "web-01".to_string()], 2)
    );
    let (_, total) = s
        .list_devices(&DeviceFilter {
            online: Some(false),
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(total, 2);

    let (rows, _) = s
        .list_devices(&DeviceFilter {
            sort: DeviceSort::LastSeen,
            descending: true,
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        names_of(&rows)[..2],
        ["db-01".to_string(), "web-01".to_string()]
    );
    let (rows, total) = s
        .list_devices(&DeviceFilter {
            limit: 2,
            offset: 2,
            ..base.clone()
        })
        .await
        .unwrap();
    assert_eq!(total, 4);
    assert_eq!(rows.len(), 2);
    let (all, _) = s.list_devices(&base).await.unwrap();
    assert_eq!(
        names_of(&all[2..]),
        names_of(&rows),
        "offset pages continue the same order"
    );
}

async fn delete_cascades_and_is_audited(s: &Store) {
    let d = enrolled(s, "del", 10).await;
    s.store_inventory(&d, None, "x", "{}", "h", None, None, &[change("p")], 10)
        .await
        .unwrap();
    s.delete_device(&d, &audit("device.delete")).await.unwrap();
    assert!(s.device(&d).await.unwrap().is_none());
    assert!(s.device_auth(&d).await.unwrap().is_none());
    assert!(s.inventory(&d).await.unwrap().is_none());
    assert!(s.timeline(&d, None, None, 10).await.unwrap().is_empty());
    assert!(matches!(
        s.delete_device(&d, &audit("device.delete")).await,
        Err(StoreError::NotFound)
    ));
    let log = s.audit_log(100).await.unwrap();
    assert_eq!(
        log.iter().filter(|r| r.action == "device.delete").count(),
        1,
        "a failed delete is not audited"
    );
}

async fn settings_initialise_once(s: &Store) {
    assert_eq!(s.setting("k").await.unwrap(), None);
    assert_eq!(s.setting_get_or_init("k", "first").await.unwrap(), "first");
    assert_eq!(s.setting_get_or_init("k", "second").await.unwrap(), "first");
}

async fn notifications_reach_subscribers_on_postgres(s: &Store) {
    let sub = s.subscribe(WAKE_CHANNEL).await.unwrap();
    match (s.backend(), sub) {
        (Backend::Sqlite, None) => {
            // One process, nobody to tell: publishing is a harmless no-op.
            s.publish(WAKE_CHANNEL, "r1:d1").await.unwrap();
        }
        (Backend::Postgres, Some(mut sub)) => {
            s.publish(WAKE_CHANNEL, "r1:d1").await.unwrap();
            s.publish(WAKE_CHANNEL, "r2:d2").await.unwrap();
            let first = tokio::time::timeout(std::time::Duration::from_secs(10), sub.recv())
                .await
                .unwrap()
                .unwrap();
            let second = tokio::time::timeout(std::time::Duration::from_secs(10), sub.recv())
                .await
                .unwrap()
                .unwrap();
            assert_eq!((first.as_str(), second.as_str()), ("r1:d1", "r2:d2"));
        }
        (backend, sub) => panic!("{backend:?} subscription {sub:?}"),
    }
}

fn user_with_role(name: &str, role: &str) -> NewUser {
    NewUser {
        role: role.into(),
        ..new_user(name)
    }
}

fn session_for(user_id: &str) -> SessionRow {
    SessionRow {
        id: id(),
        user_id: user_id.into(),
        secret_hash: "x".into(),
        created_at: 1,
        expires_at: i64::MAX,
        last_used_at: 1,
    }
}

async fn enabled_admins(s: &Store) -> usize {
    s.list_users()
        .await
        .unwrap()
        .iter()
        .filter(|u| u.role == "admin" && !u.disabled)
        .count()
}

fn is_last_admin_conflict<T: std::fmt::Debug>(r: &Result<T>) -> bool {
    matches!(r, Err(StoreError::Conflict(m)) if m.contains("last enabled admin"))
}

async fn last_enabled_admin_is_never_removed(s: &Store) {
    let a = user_with_role("root", "admin");
    let b = new_user("bob");
    s.create_user(&a, None).await.unwrap();
    s.create_user(&b, None).await.unwrap();
    let demote = UserUpdate {
        role: Some("operator".into()),
        ..Default::default()
    };
    let disable = UserUpdate {
        disabled: Some(true),
        ..Default::default()
    };
    assert!(is_last_admin_conflict(
        &s.update_user(&a.id, &demote, &audit("user.update")).await
    ));
    assert!(is_last_admin_conflict(
        &s.update_user(&a.id, &disable, &audit("user.update")).await
    ));
    assert!(is_last_admin_conflict(
        &s.delete_user(&a.id, &audit("user.delete")).await
    ));
    let row = s.user(&a.id).await.unwrap().unwrap();
    assert_eq!((row.role.as_str(), row.disabled), ("admin", false));
    // A password reset keeps the admin an admin: allowed.
    s.update_user(
        &a.id,
        &UserUpdate {
            password_hash: Some("h2".into()),
            ..Default::default()
        },
        &audit("user.update"),
    )
    .await
    .unwrap();

    // With a second admin the first may go; then the second is the last one.
    let sess = session_for(&b.id);
    s.create_session(&sess).await.unwrap();
    let promoted = s
        .update_user(
            &b.id,
            &UserUpdate {
                role: Some("admin".into()),
                ..Default::default()
            },
            &audit("user.update"),
        )
        .await
        .unwrap();
    assert_eq!(promoted.role, "admin");
    assert!(
        s.session(&sess.id).await.unwrap().is_none(),
        "a role change ends the user's sessions"
    );
    s.update_user(&a.id, &disable, &audit("user.update"))
        .await
        .unwrap();
    assert!(is_last_admin_conflict(
        &s.update_user(&b.id, &demote, &audit("user.update")).await
    ));
    // A disabled admin does not count.
    assert!(is_last_admin_conflict(
        &s.delete_user(&b.id, &audit("user.delete")).await
    ));
    s.update_user(
        &a.id,
        &UserUpdate {
            disabled: Some(false),
            ..Default::default()
        },
        &audit("user.update"),
    )
    .await
    .unwrap();
    s.delete_user(&b.id, &audit("user.delete")).await.unwrap();
    assert_eq!(enabled_admins(s).await, 1);
    assert!(matches!(
        s.update_user("nope", &demote, &audit("user.update")).await,
        Err(StoreError::NotFound)
    ));

    let log = s.audit_log(100).await.unwrap();
    let updates: Vec<serde_json::Value> = log
        .iter()
        .filter(|r| r.action == "user.update")
        .map(|r| serde_json::from_str(&r.details).unwrap())
        .collect();
    assert_eq!(updates.len(), 4, "refused changes are not audited");
    // Newest first: a re-enabled, a disabled, b promoted, a's password reset.
    assert_eq!(
        updates[0]["before"],
        json!({"role": "admin", "disabled": true})
    );
    assert_eq!(
        updates[0]["after"],
        json!({"role": "admin", "disabled": false})
    );
    assert_eq!(updates[2]["username"], "bob");
    assert_eq!(updates[2]["after"]["role"], "admin");
    assert_eq!(updates[2]["sessions_ended"], 1);
    assert_eq!(updates[3]["password_reset"], true);
    assert!(
        !log.iter().any(|r| r.details.contains("h2")),
        "hashes never reach the audit log"
    );
}

async fn concurrent_changes_never_remove_every_admin(s: &Store) {
    let s = Arc::new(s.clone());
    let mut admins: Vec<String> = Vec::new();
    for round in 0..4 {
        // Top up to five enabled admins, then try to remove all five at once, each in its
        // own way; exactly one must be refused whatever the interleaving.
        while admins.len() < 5 {
            let u = user_with_role(&format!("adm{round}-{}", admins.len()), "admin");
            s.create_user(&u, None).await.unwrap();
            admins.push(u.id);
        }
        let mut tasks = Vec::new();
        for (i, target) in admins.iter().enumerate() {
            let s = s.clone();
            let target = target.clone();
            tasks.push(tokio::spawn(async move {
                let r = match i % 3 {
                    0 => s
                        .delete_user(&target, &audit("user.delete"))
                        .await
                        .map(drop),
                    1 => s
                        .update_user(
                            &target,
                            &UserUpdate {
                                role: Some("viewer".into()),
                                ..Default::default()
                            },
                            &audit("user.update"),
                        )
                        .await
                        .map(drop),
                    _ => s
                        .update_user(
                            &target,
                            &UserUpdate {
                                disabled: Some(true),
                                ..Default::default()
                            },
                            &audit("user.update"),
                        )
                        .await
                        .map(drop),
                };
                (target, r)
            }));
        }
        let mut refused = Vec::new();
        for task in tasks {
            let (target, r) = task.await.unwrap();
            match r {
                Ok(()) => {}
                Err(StoreError::Conflict(_)) => refused.push(target),
                Err(e) => panic!("unexpected {e:?}: concurrent changes must serialise"),
            }
        }
        assert_eq!(refused.len(), 1, "round {round}: exactly one admin remains");
        assert_eq!(enabled_admins(&s).await, 1, "round {round}");
        admins = refused;
    }
}

async fn deleting_a_user_cascades_and_is_audited(s: &Store) {
    let admin = user_with_role("root", "admin");
    let u = user_with_role("leaver", "operator");
    s.create_user(&admin, None).await.unwrap();
    s.create_user(&u, None).await.unwrap();
    let sess = session_for(&u.id);
    s.create_session(&sess).await.unwrap();
    let tok = ApiTokenRow {
        id: id(),
        user_id: u.id.clone(),
        name: "ci".into(),
        secret_hash: "h".into(),
        created_at: 1,
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    s.create_api_token(&tok, &audit("api_token.create"))
        .await
        .unwrap();
    let other = session_for(&admin.id);
    s.create_session(&other).await.unwrap();

    let gone = s.delete_user(&u.id, &audit("user.delete")).await.unwrap();
    assert_eq!(gone.username, "leaver");
    assert!(s.user(&u.id).await.unwrap().is_none());
    assert!(s.session(&sess.id).await.unwrap().is_none());
    assert!(s.api_token(&tok.id).await.unwrap().is_none());
    assert!(
        s.session(&other.id).await.unwrap().is_some(),
        "other users' sessions stay"
    );
    assert!(matches!(
        s.delete_user(&u.id, &audit("user.delete")).await,
        Err(StoreError::NotFound)
    ));
    let log = s.audit_log(100).await.unwrap();
    let deletes: Vec<&AuditRow> = log.iter().filter(|r| r.action == "user.delete").collect();
    assert_eq!(deletes.len(), 1, "a failed delete is not audited");
    let details: serde_json::Value = serde_json::from_str(&deletes[0].details).unwrap();
    assert_eq!(
        details,
        json!({"username": "leaver", "role": "operator", "disabled": false})
    );
    // The name is free again.
    s.create_user(&user_with_role("leaver", "viewer"), None)
        .await
        .unwrap();
}

async fn password_change_ends_the_other_sessions(s: &Store) {
    let u = new_user("pat");
    let other = new_user("other");
    s.create_user(&u, None).await.unwrap();
    s.create_user(&other, None).await.unwrap();
    let sessions: Vec<SessionRow> = (0..3).map(|_| session_for(&u.id)).collect();
    for sess in &sessions {
        s.create_session(sess).await.unwrap();
    }
    let bystander = session_for(&other.id);
    s.create_session(&bystander).await.unwrap();

    let ended = s
        .set_password(
            &u.id,
            "new-hash",
            Some(&sessions[0].id),
            &audit("user.password_change"),
        )
        .await
        .unwrap();
    assert_eq!(ended, 2);
    assert_eq!(
        s.user(&u.id).await.unwrap().unwrap().password_hash,
        "new-hash"
    );
    assert!(s.session(&sessions[0].id).await.unwrap().is_some());
    assert!(s.session(&sessions[1].id).await.unwrap().is_none());
    assert!(s.session(&sessions[2].id).await.unwrap().is_none());
    assert!(s.session(&bystander.id).await.unwrap().is_some());
    // Without a session to keep (an API token changed it) every session ends.
    assert_eq!(
        s.set_password(&u.id, "h3", None, &audit("user.password_change"))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(
        s.set_password("nope", "h", None, &audit("user.password_change"))
            .await,
        Err(StoreError::NotFound)
    ));
    let log = s
        .audit_entries(&AuditFilter {
            action: Some("user.password_change".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&log[1].details).unwrap(),
        json!({"sessions_ended": 2})
    );
}

async fn audit_log_filters_and_pages(s: &Store) {
    for i in 0..7 {
        let mut a = audit(if i % 2 == 0 {
            "device.delete"
        } else {
            "user.create"
        });
        a.actor = format!("user:{}", if i < 4 { "ann" } else { "ben" });
        a.target = Some(format!("t{i}"));
        a.details = json!({"i": i});
        s.create_user(&new_user(&format!("audited{i}")), Some(&a))
            .await
            .unwrap();
    }
    let all = s.audit_log(100).await.unwrap();
    assert_eq!(all.len(), 7);
    assert_eq!(all[0].target.as_deref(), Some("t6"), "newest first");

    let page1 = s
        .audit_entries(&AuditFilter {
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let page2 = s
        .audit_entries(&AuditFilter {
            before: Some(page1[2].id),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let page3 = s
        .audit_entries(&AuditFilter {
            before: Some(page2[2].id),
            limit: 3,
            ..Default::default()
        })
        .await
        .unwrap();
    let targets: Vec<&str> = page1
        .iter()
        .chain(&page2)
        .chain(&page3)
        .filter_map(|r| r.target.as_deref())
        .collect();
    assert_eq!(targets, ["t6", "t5", "t4", "t3", "t2", "t1", "t0"]);

    let by_ben = s
        .audit_entries(&AuditFilter {
            actor: Some("user:ben".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_ben.len(), 3);
    let ann_deletes = s
        .audit_entries(&AuditFilter {
            actor: Some("user:ann".into()),
            action: Some("device.delete".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        ann_deletes
            .iter()
            .filter_map(|r| r.target.as_deref())
            .collect::<Vec<_>>(),
        ["t2", "t0"]
    );
    assert!(
        s.audit_entries(&AuditFilter {
            actor: Some("user:%".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty(),
        "filters are exact, not patterns"
    );
}

fn new_group(name: &str, parent: Option<&str>) -> NewGroup {
    NewGroup {
        id: id(),
        name: name.into(),
        description: format!("{name} devices"),
        parent_id: parent.map(str::to_string),
        now: 5,
    }
}

fn in_group(group: &str) -> DeviceFilter {
    DeviceFilter {
        group_id: Some(group.into()),
        limit: 100,
        ..Default::default()
    }
}

async fn hostnames(s: &Store, f: &DeviceFilter) -> Vec<String> {
    let (rows, total) = s.list_devices(f).await.unwrap();
    assert_eq!(total as usize, rows.len(), "count and page agree");
    rows.into_iter().map(|r| r.hostname).collect()
}

async fn group_tree_refuses_cycles_and_counts_descendants(s: &Store) {
    let root = new_group("Europe", None);
    let de = new_group("Germany", Some(&root.id));
    let ber = new_group("Berlin", Some(&de.id));
    for g in [&root, &de, &ber] {
        s.create_group(g, &audit("group.create")).await.unwrap();
    }
    assert!(
        matches!(
            s.create_group(&new_group("EUROPE", None), &audit("x"))
                .await,
            Err(StoreError::Conflict(_))
        ),
        "names are unique regardless of case"
    );
    assert!(matches!(
        s.create_group(&new_group("Orphan", Some("nope")), &audit("x"))
            .await,
        Err(StoreError::Invalid(_))
    ));
    for bad_parent in [&root.id, &de.id, &ber.id] {
        let r = s
            .update_group(
                &root.id,
                &GroupUpdate {
                    parent_id: Some(Some(bad_parent.clone())),
                    ..Default::default()
                },
                6,
                &audit("group.update"),
            )
            .await;
        assert!(
            matches!(r, Err(StoreError::Conflict(_))),
            "parent {bad_parent} must be refused, got {r:?}"
        );
    }
    assert_eq!(s.group(&root.id).await.unwrap().unwrap().parent_id, None);

    let a = enrolled(s, "g-a", 1).await;
    let b = enrolled(s, "g-b", 1).await;
    s.change_group_members(
        &ber.id,
        std::slice::from_ref(&a),
        true,
        7,
        &audit("group.members_add"),
    )
    .await
    .unwrap();
    s.change_group_members(&de.id, &[a.clone(), b.clone()], true, 7, &audit("x"))
        .await
        .unwrap();
    let counts: Vec<(String, i64, i64)> = s
        .list_groups()
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.group.name, g.direct_members, g.members))
        .collect();
    assert_eq!(
        counts,
        vec![
            ("Berlin".to_string(), 1, 1),
            ("Europe".to_string(), 0, 2),
            ("Germany".to_string(), 2, 2),
        ],
        "a device in two subgroups counts once"
    );
    let one = s.group_with_counts(&root.id).await.unwrap().unwrap();
    assert_eq!((one.direct_members, one.members), (0, 2));
    assert_eq!(hostnames(s, &in_group(&root.id)).await.len(), 2);
    assert_eq!(hostnames(s, &in_group(&ber.id)).await, vec!["host-g-a"]);

    // Moving Berlin to the top level takes its members out of Europe's reach only if they
    // are not also members elsewhere below Europe.
    s.change_group_members(&de.id, std::slice::from_ref(&a), false, 8, &audit("x"))
        .await
        .unwrap();
    s.update_group(
        &ber.id,
        &GroupUpdate {
            name: Some("Berlin-Mitte".into()),
            parent_id: Some(None),
            ..Default::default()
        },
        9,
        &audit("group.update"),
    )
    .await
    .unwrap();
    let moved = s.group(&ber.id).await.unwrap().unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.parent_id),
        ("Berlin-Mitte", None)
    );
    assert_eq!(moved.description, "Berlin devices", "untouched fields stay");
    assert_eq!(hostnames(s, &in_group(&root.id)).await, vec!["host-g-b"]);
    assert_eq!(
        s.group_by_id_or_name("berlin-mitte")
            .await
            .unwrap()
            .map(|g| g.id),
        Some(ber.id.clone())
    );

    assert!(
        matches!(
            s.delete_group(&root.id, 10, &audit("group.delete")).await,
            Err(StoreError::Conflict(_))
        ),
        "a group with children is not deleted"
    );
    s.delete_group(&de.id, 10, &audit("group.delete"))
        .await
        .unwrap();
    s.delete_group(&root.id, 10, &audit("group.delete"))
        .await
        .unwrap();
    let left = s.timeline(&b, None, Some("group_left"), 10).await.unwrap();
    assert_eq!(left.len(), 1, "deleting a group is a membership change");
    assert!(left[0].summary.contains("Germany"), "{}", left[0].summary);
    assert!(matches!(
        s.delete_group(&root.id, 11, &audit("x")).await,
        Err(StoreError::NotFound)
    ));
}

async fn group_membership_is_idempotent_timelined_and_filterable(s: &Store) {
    let g = new_group("Pilot", None);
    s.create_group(&g, &audit("group.create")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(enrolled(s, &format!("m{i}"), 1).await);
    }
    let audits_before = s.audit_log(1000).await.unwrap().len();
    match s
        .resolve_devices(&DeviceSelection {
            ids: Some(vec![ids[0].clone(), "ghost-1".into(), "ghost-2".into()]),
            filter: None,
        })
        .await
    {
        Err(StoreError::UnknownDevices(u)) => assert_eq!(u, vec!["ghost-1", "ghost-2"]),
        other => panic!("unknown ids must fail, got {other:?}"),
    }
    let by_filter = s
        .resolve_devices(&DeviceSelection {
            ids: Some(vec![ids[0].clone()]),
            filter: Some(DeviceFilter {
                search: Some("host-m1".into()),
                ..Default::default()
            }),
        })
        .await
        .unwrap();
    let mut expect = vec![ids[0].clone(), ids[1].clone()];
    expect.sort();
    assert_eq!(by_filter, expect, "ids and filter are united");

    assert_eq!(
        s.change_group_members(&g.id, &by_filter, true, 5, &audit("group.members_add"))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.change_group_members(&g.id, &ids, true, 6, &audit("group.members_add"))
            .await
            .unwrap(),
        1,
        "only the device not yet a member changes"
    );
    for d in &ids {
        let joined = s.timeline(d, None, Some("group_joined"), 10).await.unwrap();
        assert_eq!(joined.len(), 1, "one entry per actual change");
        assert!(joined[0].summary.contains("Pilot"));
    }
    assert_eq!(
        s.audit_log(1000).await.unwrap().len(),
        audits_before + 2,
        "one audit row per request"
    );
    let groups = s.device_groups(&ids[0]).await.unwrap();
    assert_eq!(
        groups,
        vec![MembershipRow {
            id: g.id.clone(),
            name: "Pilot".into(),
            source: "static".into()
        }]
    );
    assert_eq!(
        s.change_group_members(&g.id, &ids[..1], false, 7, &audit("group.members_remove"))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.change_group_members(&g.id, &ids[..1], false, 8, &audit("group.members_remove"))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        hostnames(s, &in_group(&g.id)).await,
        vec!["host-m1", "host-m2"]
    );
    assert!(matches!(
        s.change_group_members("nope", &ids, true, 9, &audit("x"))
            .await,
        Err(StoreError::NotFound)
    ));
    // Many devices in one request (more than one IN-list chunk).
    let many: Vec<String> = (0..1200).map(|i| format!("not-a-device-{i}")).collect();
    assert_eq!(
        s.change_group_members(&g.id, &many, true, 10, &audit("x"))
            .await
            .unwrap(),
        0,
        "ids that vanished between resolving and changing are skipped"
    );
}

async fn bulk_tags_change_timeline_and_filter_exactly(s: &Store) {
    let a = enrolled(s, "t-a", 1).await;
    let b = enrolled(s, "t-b", 1).await;
    let tags = |v: &[&str]| v.iter().map(|t| t.to_string()).collect::<Vec<_>>();
    // enrolled() devices carry the token's tags lab and linux.
    assert_eq!(
        s.change_tags(
            &[a.clone(), b.clone()],
            &tags(&["web", "lab"]),
            true,
            5,
            &audit("tags.add")
        )
        .await
        .unwrap(),
        2
    );
    assert_eq!(
        s.change_tags(
            std::slice::from_ref(&a),
            &tags(&["web"]),
            true,
            6,
            &audit("tags.add")
        )
        .await
        .unwrap(),
        0,
        "adding a present tag changes nothing"
    );
    assert_eq!(
        s.device(&a).await.unwrap().unwrap().tags(),
        vec!["lab", "linux", "web"]
    );
    let added = s.timeline(&a, None, Some("tag_added"), 10).await.unwrap();
    assert_eq!(added.len(), 1, "lab was present, only web is new");
    assert_eq!(added[0].field.as_deref(), Some("web"));
    s.change_tags(
        std::slice::from_ref(&b),
        &tags(&["web", "Web-2"]),
        false,
        7,
        &audit("tags.remove"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.timeline(&b, None, Some("tag_removed"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    let by_tag = |t: &str| DeviceFilter {
        tag: Some(t.into()),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(hostnames(s, &by_tag("web")).await, vec!["host-t-a"]);
    assert_eq!(hostnames(s, &by_tag("lab")).await.len(), 2);
    assert!(
        hostnames(s, &by_tag("WEB")).await.is_empty(),
        "tags are exact"
    );
    assert!(
        hostnames(s, &by_tag("we")).await.is_empty(),
        "no substring match"
    );
}

fn field(name: &str, ty: &str, default: Option<&str>) -> FieldRow {
    FieldRow {
        name: name.into(),
        field_type: ty.into(),
        enum_values: if ty == "enum" {
            json!(["gold", "silver"]).to_string()
        } else {
            "[]".into()
        },
        default_value: default.map(str::to_string),
        required: false,
        description: String::new(),
        created_at: 1,
        updated_at: 1,
    }
}

async fn custom_fields_round_trip_every_type_and_filter(s: &Store) {
    let d = enrolled(s, "f-a", 1).await;
    let other = enrolled(s, "f-b", 1).await;
    let cases = [
        ("owner", "string", "\"ops team \\u00e9\""),
        ("rack_u", "number", "42.5"),
        ("critical", "boolean", "true"),
        ("warranty_end", "date", "1767225600000"),
        ("tier", "enum", "\"gold\""),
    ];
    for (name, ty, value) in cases {
        s.create_field(&field(name, ty, None), &audit("custom_field.create"))
            .await
            .unwrap();
        s.set_field_value(&d, name, ty, value, 5, &audit("device.custom_field_set"))
            .await
            .unwrap();
    }
    assert!(matches!(
        s.create_field(&field("owner", "string", None), &audit("x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let stored: Vec<(String, String)> = s
        .device_field_values(&d)
        .await
        .unwrap()
        .into_iter()
        .map(|v| (v.field_name, v.value))
        .collect();
    let mut expected: Vec<(String, String)> = cases
        .iter()
        .map(|(n, _, v)| (n.to_string(), v.to_string()))
        .collect();
    expected.sort();
    assert_eq!(stored, expected, "every type round-trips byte for byte");
    assert_eq!(
        s.timeline(&d, None, Some("custom_field_set"), 10)
            .await
            .unwrap()
            .len(),
        5
    );

    // A write under a type that is no longer the field's is refused.
    assert!(matches!(
        s.set_field_value(&other, "rack_u", "string", "\"x\"", 6, &audit("x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.set_field_value(&other, "nope", "string", "\"x\"", 6, &audit("x"))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_field_value("ghost", "owner", "string", "\"x\"", 6, &audit("x"))
            .await,
        Err(StoreError::NotFound)
    ));

    // Type change while values exist: refused; enum values in use cannot be dropped.
    assert!(matches!(
        s.update_field(&field("rack_u", "string", None), None, &audit("x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut narrower = field("tier", "enum", None);
    narrower.enum_values = json!(["silver"]).to_string();
    assert!(matches!(
        s.update_field(&narrower, Some(&["\"silver\"".to_string()]), &audit("x"))
            .await,
        Err(StoreError::Conflict(_))
    ));
    let mut with_default = field("tier", "enum", Some("\"silver\""));
    with_default.description = "support tier".into();
    s.update_field(
        &with_default,
        Some(&["\"gold\"".to_string(), "\"silver\"".to_string()]),
        &audit("custom_field.update"),
    )
    .await
    .unwrap();
    let row = s.field("tier").await.unwrap().unwrap();
    assert_eq!(row.default_value.as_deref(), Some("\"silver\""));
    assert_eq!(row.enum_values(), vec!["gold", "silver"]);

    let by_field = |name: &str, value: &str, matches_default: bool| DeviceFilter {
        field: Some(FieldMatch {
            name: name.into(),
            value_json: value.into(),
            matches_default,
        }),
        limit: 100,
        ..Default::default()
    };
    assert_eq!(
        hostnames(s, &by_field("tier", "\"gold\"", false)).await,
        vec!["host-f-a"]
    );
    assert_eq!(
        hostnames(s, &by_field("tier", "\"silver\"", true)).await,
        vec!["host-f-b"],
        "a device without a value matches through the default"
    );
    assert_eq!(
        hostnames(s, &by_field("critical", "true", false)).await,
        vec!["host-f-a"]
    );

    s.unset_field_value(&d, "tier", 7, &audit("device.custom_field_unset"))
        .await
        .unwrap();
    assert_eq!(
        hostnames(s, &by_field("tier", "\"silver\"", true))
            .await
            .len(),
        2
    );
    assert_eq!(
        s.timeline(&d, None, Some("custom_field_unset"), 10)
            .await
            .unwrap()
            .len(),
        1
    );
    s.update_field(&field("tier", "number", None), None, &audit("x"))
        .await
        .unwrap();
    assert_eq!(
        s.field("tier").await.unwrap().unwrap().field_type,
        "number",
        "no values left: type may change"
    );
    s.delete_field("owner", &audit("custom_field.delete"))
        .await
        .unwrap();
    assert!(
        s.device_field_values(&d)
            .await
            .unwrap()
            .iter()
            .all(|v| v.field_name != "owner"),
        "values go with their definition"
    );
    assert!(matches!(
        s.delete_field("owner", &audit("x")).await,
        Err(StoreError::NotFound)
    ));
}

async fn dynamic_membership_changes_are_recorded_once(s: &Store) {
    let dev = enrolled(s, "dyn-1", 10).await;
    let dynamic = new_group("Dyn", None);
    s.create_dynamic_group(&dynamic, r#"{"tag":"a"}"#, &audit("group.create"))
        .await
        .unwrap();
    let parent = new_group("Parent", None);
    s.create_group(&parent, &audit("group.create"))
        .await
        .unwrap();
    let child = new_group("Child", Some(&parent.id));
    s.create_group(&child, &audit("group.create"))
        .await
        .unwrap();
    let stored = s.group(&dynamic.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.kind.as_str(), stored.rule.as_deref()),
        ("dynamic", Some(r#"{"tag":"a"}"#))
    );

    // Static membership of a child counts for its ancestors.
    s.change_group_members(&child.id, std::slice::from_ref(&dev), true, 20, &audit("m"))
        .await
        .unwrap();
    let mut expected = vec![parent.id.clone(), child.id.clone()];
    expected.sort();
    assert_eq!(s.static_group_closure(&dev).await.unwrap(), expected);

    let join = vec![(dynamic.id.clone(), "Dyn".to_string())];
    s.apply_dynamic_membership(&dev, &join, &[], 25)
        .await
        .unwrap();
    let other = enrolled(s, "dyn-2", 11).await;
    let mut batch = s
        .device_facts_batch(&[dev.clone(), other.clone(), "missing".into()])
        .await
        .unwrap();
    batch.sort_by(|a, b| a.device.id.cmp(&b.device.id));
    let summary: Vec<(&str, Vec<String>, Vec<String>, bool)> = batch
        .iter()
        .map(|r| {
            let mut statics = r.static_groups.clone();
            statics.sort();
            (
                r.device.id.as_str(),
                statics,
                r.dynamic_groups.clone(),
                r.inventory.is_some(),
            )
        })
        .collect();
    let mut want = vec![
        (
            dev.as_str(),
            expected.clone(),
            vec![dynamic.id.clone()],
            false,
        ),
        (other.as_str(), vec![], vec![], false),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(summary, want);
    s.delete_device(&other, &audit("device.delete"))
        .await
        .unwrap();
    // Undo the batch setup's join without leaving a trace in the checks below.
    s.apply_dynamic_membership(&dev, &[], &join, 26)
        .await
        .unwrap();
    let out = s
        .apply_dynamic_membership(&dev, &join, &[], 30)
        .await
        .unwrap();
    assert_eq!(out.joined, vec![dynamic.id.clone()]);
    // Repeating (or a concurrent replica doing the same) changes nothing and records nothing.
    let (a, b) = tokio::join!(
        s.apply_dynamic_membership(&dev, &join, &[], 31),
        s.apply_dynamic_membership(&dev, &join, &[], 32)
    );
    assert_eq!(a.unwrap().joined.len() + b.unwrap().joined.len(), 0);
    assert_eq!(
        s.dynamic_memberships(&dev).await.unwrap(),
        vec![dynamic.id.clone()]
    );
    // Static groups are never joined or left by the evaluation.
    let out = s
        .apply_dynamic_membership(&dev, &[], &[(child.id.clone(), "Child".into())], 33)
        .await
        .unwrap();
    assert!(out.left.is_empty());
    let out = s
        .apply_dynamic_membership(&dev, &[(parent.id.clone(), "Parent".into())], &[], 33)
        .await
        .unwrap();
    assert!(
        out.joined.is_empty(),
        "a static group is not joined dynamically"
    );
    let out = s
        .apply_dynamic_membership(&dev, &[], &join, 40)
        .await
        .unwrap();
    assert_eq!(out.left, vec![dynamic.id.clone()]);
    assert!(s.dynamic_memberships(&dev).await.unwrap().is_empty());

    // Leaving out the batch setup's join and leave (at 25 and 26).
    let events: Vec<EventRow> = s
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| !(25..=26).contains(&e.at))
        .collect();
    let kinds: Vec<(&str, i64, &str, Option<&str>)> = events
        .iter()
        .map(|e| {
            (
                e.kind.as_str(),
                e.at,
                e.subject.as_str(),
                e.object.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            (
                "group.member_added",
                20,
                dev.as_str(),
                Some(child.id.as_str())
            ),
            (
                "group.member_added",
                30,
                dev.as_str(),
                Some(dynamic.id.as_str())
            ),
            (
                "group.member_removed",
                40,
                dev.as_str(),
                Some(dynamic.id.as_str())
            ),
        ]
    );
    assert!(events[0].id < events[1].id && events[1].id < events[2].id);
    let data: serde_json::Value = serde_json::from_str(&events[0].data).unwrap();
    assert_eq!(data["source"], "static");
    let data: serde_json::Value = serde_json::from_str(&events[1].data).unwrap();
    assert_eq!(
        (data["group_name"].as_str(), data["source"].as_str()),
        (Some("Dyn"), Some("dynamic"))
    );
    assert_eq!(s.events_after(events[1].id, 10).await.unwrap().len(), 1);
    let summaries: Vec<String> = s
        .timeline(&dev, None, None, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.field.as_deref() == Some(dynamic.id.as_str()) && !(25..=26).contains(&r.at))
        .map(|r| r.summary)
        .collect();
    assert_eq!(
        summaries,
        ["left group Dyn (dynamic)", "joined group Dyn (dynamic)"]
    );

    // The rule is replaced only on dynamic groups.
    s.set_group_rule(
        &dynamic.id,
        r#"{"tag":"b"}"#,
        50,
        &audit("group.rule_change"),
    )
    .await
    .unwrap();
    assert_eq!(
        s.group(&dynamic.id).await.unwrap().unwrap().rule.as_deref(),
        Some(r#"{"tag":"b"}"#)
    );
    assert!(matches!(
        s.set_group_rule(&parent.id, "{}", 50, &audit("x")).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        s.set_group_rule("nope", "{}", 50, &audit("x")).await,
        Err(StoreError::NotFound)
    ));
    let ids = s.device_ids_after("", 10).await.unwrap();
    assert_eq!(ids, vec![dev.clone()]);
    assert!(s.device_ids_after(&dev, 10).await.unwrap().is_empty());

    // Deleting a group is a leave for each member, in the event log as well.
    s.apply_dynamic_membership(&dev, &join, &[], 60)
        .await
        .unwrap();
    s.delete_group(&dynamic.id, 70, &audit("group.delete"))
        .await
        .unwrap();
    let last = s.events_after(0, 100).await.unwrap().pop().unwrap();
    assert_eq!(
        (
            last.kind.as_str(),
            last.at,
            last.subject.as_str(),
            last.object.as_deref()
        ),
        (
            "group.member_removed",
            70,
            dev.as_str(),
            Some(dynamic.id.as_str())
        )
    );
    assert!(s.dynamic_memberships(&dev).await.unwrap().is_empty());
}

fn job_row(id: &str, retry: serde_json::Value) -> capstan_store::JobRow {
    capstan_store::JobRow {
        id: id.into(),
        name: "t".into(),
        kind: "command".into(),
        spec: json!({"action": {"type": "command", "argv": ["true"]}}).to_string(),
        targets: "{}".into(),
        retry: retry.to_string(),
        script_id: None,
        script_version: None,
        created_by: "user:test".into(),
        created_at: 1_000,
        expires_at: 10_000_000,
        timeout_secs: 60,
        cancelled_at: None,
    }
}

fn finished(
    attempt: u32,
    outcome: capstan_proto::jobs::AttemptOutcome,
) -> capstan_proto::jobs::RunFinished {
    capstan_proto::jobs::RunFinished {
        attempt,
        outcome,
        exit_code: Some(1),
        error: None,
        started_at_ms: Some(1_500),
        finished_at_ms: 2_000,
        stdout_bytes: 0,
        stderr_bytes: 0,
        stdout_truncated: false,
        stderr_truncated: false,
    }
}

/// Several devices' claims, starts and finishes in one batch each: every item gets the answer
/// it would get alone — a repeated report changes nothing, another device's run is not found,
/// and two failures of one device count for its circuit breaker in order.
async fn batched_job_reports_behave_like_one_at_a_time(s: &Store) {
    use capstan_proto::jobs::AttemptOutcome::{Failed, Succeeded};
    use capstan_store::{FinishReport, NewJob, StartReport, StoreError};
    let a = enrolled(s, "batch-a", 100).await;
    let b = enrolled(s, "batch-b", 100).await;
    let retry = json!({"max_attempts": 3, "backoff_secs": 0, "max_backoff_secs": 0,
                       "retry_on": ["failed"]});
    let (j1, j2) = (id(), id());
    for j in [&j1, &j2] {
        s.create_job(
            &NewJob {
                job: job_row(j, retry.clone()),
                devices: vec![a.clone(), b.clone()],
                follow_groups: vec![],
            },
            &audit("job.create"),
        )
        .await
        .unwrap();
    }
    // Pending is reported by the check-in itself; a check-in that asks to claims in the same
    // write, at most the limit, and says whether more are left.
    let checkin = |device: &str, claim_runs: bool| capstan_store::CheckinRecord {
        device_id: device.into(),
        agent_version: "1".into(),
        boot_id: None,
        performance: None,
        claim_runs,
    };
    let rec = s
        .record_checkins_batch(&[checkin(&a, false), checkin("nope", true)], 2_000, 50)
        .await
        .unwrap();
    let first = rec[0].as_ref().unwrap();
    assert!(first.runs_pending);
    assert!(first.claimed.is_empty(), "not asked to claim");
    assert!(matches!(rec[1], Err(StoreError::NotFound)));
    let rec = s
        .record_checkins_batch(&[checkin(&b, true), checkin(&a, true)], 2_000, 1)
        .await
        .unwrap();
    let (rb, ra) = (rec[0].as_ref().unwrap(), rec[1].as_ref().unwrap());
    assert_eq!(
        (ra.claimed.len(), ra.runs_pending),
        (1, true),
        "limit 1 of 2"
    );
    assert_eq!(rb.claimed.len(), 1);
    let history = s
        .job_history_after(&rb.claimed[0].job_id, 0, 100)
        .await
        .unwrap();
    assert!(
        history
            .iter()
            .any(|h| h.run_id == rb.claimed[0].run_id && h.state == "delivered"),
        "the check-in's claim is recorded as a delivery: {history:?}"
    );

    let claimed = s
        .claim_runs_batch(&[a.clone(), b.clone(), "nope".into()], 2_000, 50)
        .await
        .unwrap();
    assert_eq!(claimed.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 0]);
    // Re-claiming hands the same attempts out again (not started yet).
    let again = s
        .claim_runs_batch(std::slice::from_ref(&a), 2_001, 50)
        .await
        .unwrap();
    assert_eq!(again[0].len(), 2);
    let runs_a: Vec<String> = claimed[0].iter().map(|c| c.run_id.clone()).collect();
    let run_b = claimed[1][0].run_id.clone();
    let job_b = claimed[1][0].job_id.clone();
    let job_of = |run: &str| {
        claimed[0]
            .iter()
            .find(|c| c.run_id == run)
            .unwrap()
            .job_id
            .clone()
    };
    let start = |device: &str, run: &str| StartReport {
        device_id: device.into(),
        run_id: run.into(),
        attempt: 1,
        started_at: 2_100,
    };
    let started = s
        .start_runs_batch(
            &[
                start(&a, &runs_a[0]),
                start(&a, &runs_a[0]),
                start(&a, &runs_a[1]),
                start(&a, &run_b),
            ],
            2_100,
        )
        .await
        .unwrap();
    assert!(matches!(started[0], Ok(c) if !c.cancel));
    assert!(
        matches!(started[1], Ok(c) if !c.cancel),
        "a repeated start is harmless"
    );
    assert!(matches!(started[2], Ok(c) if !c.cancel));
    assert!(
        matches!(started[3], Err(StoreError::NotFound)),
        "b's run is not a's"
    );
    assert_eq!(
        s.run(&job_of(&runs_a[0]), &runs_a[0])
            .await
            .unwrap()
            .unwrap()
            .state,
        "running"
    );

    // Two failures of device a in one batch with threshold 2: the first is retried, the second
    // opens the breaker and is held. The repeated report changes nothing.
    let fin = |run: &str, attempt, outcome| FinishReport {
        device_id: a.clone(),
        run_id: run.into(),
        report: finished(attempt, outcome),
    };
    let out = s
        .finish_runs_batch(
            &[
                fin(&runs_a[0], 1, Failed),
                fin(&runs_a[0], 1, Failed),
                fin(&runs_a[1], 1, Failed),
            ],
            2,
            3_000,
        )
        .await
        .unwrap();
    let o0 = out[0].as_ref().unwrap();
    assert_eq!(
        (o0.state, o0.changed, o0.retry_at),
        (capstan_proto::jobs::RunState::Queued, true, Some(3_000))
    );
    assert!(!out[1].as_ref().unwrap().changed);
    let o2 = out[2].as_ref().unwrap();
    assert_eq!(
        (o2.state, o2.breaker_opened),
        (capstan_proto::jobs::RunState::Failed, true)
    );
    let held = s
        .run(&job_of(&runs_a[1]), &runs_a[1])
        .await
        .unwrap()
        .unwrap();
    assert!(held.held && held.reason.unwrap().contains("circuit breaker"));
    let br = s.breaker(&a).await.unwrap().unwrap();
    assert_eq!(
        (br.consecutive_failures, br.opened_at, br.held_runs),
        (2, Some(3_000), 1)
    );
    let history = s.run_history(&runs_a[0]).await.unwrap();
    let states: Vec<(i64, &str)> = history
        .iter()
        .map(|h| (h.attempt, h.state.as_str()))
        .collect();
    assert_eq!(
        states,
        [
            (1, "queued"),
            (1, "delivered"),
            (1, "running"),
            (1, "failed"),
            (2, "queued")
        ]
    );
    // A finish for an attempt that does not exist is refused; b's run is untouched.
    let bad = s
        .finish_runs_batch(
            &[FinishReport {
                device_id: b.clone(),
                run_id: run_b.clone(),
                report: finished(5, Succeeded),
            }],
            2,
            3_100,
        )
        .await
        .unwrap();
    assert!(matches!(bad[0], Err(StoreError::Invalid(_))));
    assert_eq!(
        s.run(&job_b, &run_b).await.unwrap().unwrap().state,
        "delivered"
    );
}

fn compiled(
    device: &str,
    previous: Option<i64>,
    revision: i64,
    items: Vec<DesiredItem>,
) -> CompiledManifest {
    CompiledManifest {
        device_id: device.into(),
        previous_revision: previous,
        revision,
        digest: format!("d{revision}"),
        payload: format!("{{\"revision\":{revision}}}"),
        items,
        next_eval: Some(1000 + revision),
        left: Vec::new(),
    }
}

async fn compiled_manifests_are_written_in_batches_and_skip_what_moved(s: &Store) {
    // 250 devices: more than one multi-row statement of each kind.
    let mut devices = Vec::new();
    for i in 0..250 {
        devices.push(enrolled(s, &format!("m{i}"), 10).await);
    }
    let pkg = PackageRow {
        id: id(),
        name: "tool".into(),
        display_name: "Tool".into(),
        publisher: None,
        description: None,
        created_at: 1,
        updated_at: 1,
        version_count: 0,
        latest_version: None,
    };
    s.create_package(&pkg, &audit("package.create"))
        .await
        .unwrap();
    let item = |desired: &str, version: &str, hold: Option<&str>| DesiredItem {
        package_id: pkg.id.clone(),
        version: version.into(),
        desired: desired.into(),
        assignment_id: None,
        leave_installed: false,
        hold: hold.map(str::to_string),
    };
    let mut first: Vec<CompiledManifest> = devices
        .iter()
        .map(|d| compiled(d, None, 1, vec![item("present", "1.0", None)]))
        .collect();
    // A device that no longer exists is skipped, not an error.
    first.push(compiled("no-such-device", None, 1, vec![]));
    let written = s.write_compiled(&first, &[], 50).await.unwrap();
    assert_eq!(written.len(), 250);
    let revs = s.manifest_revisions(&devices).await.unwrap();
    assert!(revs.values().all(|r| *r == 1));
    let m = s.manifest(&devices[0]).await.unwrap().unwrap();
    assert_eq!((m.next_eval_at, m.digest.as_str()), (Some(1001), "d1"));
    let rows = s.device_software(&devices[7]).await.unwrap();
    assert_eq!(
        (rows[0].status.as_str(), rows[0].desired.as_deref()),
        ("planned", Some("present"))
    );

    // The agent reports; a recompile with the same version keeps the report, a new version or
    // a hold starts over, and a write against a moved revision is skipped.
    s.record_item_reports(
        &devices[0],
        1,
        true,
        &[ItemReportRow {
            package_id: pkg.id.clone(),
            version: "1.0".into(),
            status: "installed".into(),
            detail: None,
            exit_code: None,
            log: None,
            progress: None,
            drift: false,
            at: 60,
        }],
        60,
    )
    .await
    .unwrap();
    let second = vec![
        compiled(&devices[0], Some(1), 2, vec![item("present", "1.0", None)]),
        compiled(&devices[1], Some(1), 2, vec![item("present", "2.0", None)]),
        compiled(
            &devices[2],
            Some(1),
            2,
            vec![item("present", "1.0", Some("window"))],
        ),
        compiled(&devices[3], Some(7), 8, vec![]),
        CompiledManifest {
            left: vec![pkg.id.clone()],
            ..compiled(&devices[4], Some(1), 2, vec![])
        },
    ];
    let written = s
        .write_compiled(&second, &[(devices[5].clone(), Some(42))], 70)
        .await
        .unwrap();
    assert_eq!(
        written.len(),
        4,
        "the moved revision is skipped: {written:?}"
    );
    assert!(!written.contains(&devices[3]));
    let status = |rows: Vec<SoftwareStateRow>| {
        (
            rows[0].status.clone(),
            rows[0].version.clone(),
            rows[0].desired.clone(),
            rows[0].detail.clone(),
        )
    };
    assert_eq!(
        status(s.device_software(&devices[0]).await.unwrap()),
        (
            "installed".into(),
            Some("1.0".into()),
            Some("present".into()),
            None
        )
    );
    assert_eq!(
        status(s.device_software(&devices[1]).await.unwrap()).0,
        "planned",
        "a new version starts over"
    );
    assert_eq!(
        status(s.device_software(&devices[2]).await.unwrap()),
        (
            "waiting".into(),
            Some("1.0".into()),
            Some("present".into()),
            Some("window".into())
        )
    );
    assert_eq!(
        status(s.device_software(&devices[4]).await.unwrap()).2,
        None,
        "left the manifest: no desired state"
    );
    assert_eq!(s.manifest(&devices[3]).await.unwrap().unwrap().revision, 1);
    assert_eq!(
        s.manifest(&devices[5]).await.unwrap().unwrap().next_eval_at,
        Some(42)
    );
    assert_eq!(s.manifests_due(50).await.unwrap(), vec![devices[5].clone()]);
}

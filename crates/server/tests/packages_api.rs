//! API tests of the package catalogue against the real router, on SQLite or PostgreSQL
//! (`CAPSTAN_API_TEST_DB`): uploads of real `.deb` files parsed into pre-filled versions,
//! version validation with paths, software jobs resolved into plans (dependencies first,
//! superseded versions removed, cycles refused), the agent's artifact download, and what may
//! not be deleted while in use.

mod common;

use std::path::Path;
use std::process::Command;

use axum::http::{Method, StatusCode};
use common::{T, apt_version, assert_error, setup};
use serde_json::{Value, json};

const GET: Method = Method::GET;
const POST: Method = Method::POST;
const PUT: Method = Method::PUT;
const PATCH: Method = Method::PATCH;
const DELETE: Method = Method::DELETE;

/// A real `.deb` built with `dpkg-deb`.
fn deb(dir: &Path, name: &str, version: &str) -> Vec<u8> {
    let root = dir.join(format!("{name}-{version}"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: Tests <t@example.invalid>\nDescription: test package\n long text\n"
        ),
    )
    .unwrap();
    let out = dir.join(format!("{name}_{version}.deb"));
    let st = Command::new("dpkg-deb")
        .args(["--root-owner-group", "--build"])
        .arg(&root)
        .arg(&out)
        .output()
        .unwrap();
    assert!(st.status.success(), "{st:?}");
    std::fs::read(out).unwrap()
}

async fn upload(
    t: &T,
    token: &str,
    file_name: &str,
    bytes: Vec<u8>,
    create: bool,
) -> (StatusCode, Value) {
    t.raw(
        POST,
        &format!("/api/v1/packages/upload?file_name={file_name}&create={create}"),
        Some(token),
        Some("application/octet-stream"),
        bytes,
    )
    .await
}

#[tokio::test]
async fn an_uploaded_deb_becomes_a_prefilled_version() {
    let t = setup().await;
    let admin = t.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = deb(dir.path(), "hello-tool", "1:2.10-3");
    let (s, up) = upload(&t, &admin, "hello.deb", bytes.clone(), false).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    assert_eq!(up["metadata"]["format"], "deb");
    assert_eq!(up["metadata"]["version"], "1:2.10-3");
    assert_eq!(up["package"], "hello-tool");
    assert!(up.get("created").is_none(), "{up}");
    let suggested = &up["suggested"];
    assert_eq!(suggested["artifacts"][0]["arch"], "x86_64");
    assert_eq!(suggested["artifacts"][0]["platform"], "linux");
    assert_eq!(suggested["artifacts"][0]["file_name"], "hello.deb");
    assert_eq!(suggested["spec"]["package_id"], "hello-tool");
    assert_eq!(
        suggested["spec"]["detection"],
        json!({"type": "package", "manager": "dpkg", "name": "hello-tool",
               "version": {"op": "gte", "version": "1:2.10-3"}})
    );
    // Nothing but the blob exists yet.
    let pkgs = t
        .ok(StatusCode::OK, GET, "/api/v1/packages", &admin, None)
        .await;
    assert_eq!(pkgs["total"], 0);

    // With create=true the package and version appear, defaults filled in.
    let (s, up) = upload(&t, &admin, "hello.deb", bytes, true).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    let v = &up["created"];
    assert_eq!(
        v["spec"]["install_command"],
        json!(["dpkg", "--install", "{file}"])
    );
    assert_eq!(
        v["spec"]["uninstall_command"],
        json!(["dpkg", "--remove", "{package}"])
    );
    assert_eq!(v["spec"]["success_exit_codes"], json!([0]));
    assert_eq!(v["artifacts"][0]["size"], up["size"]);
    let p = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/packages/hello-tool",
            &admin,
            None,
        )
        .await;
    assert_eq!(p["version_count"], 1);
    assert_eq!(p["latest_version"], "1:2.10-3");
    assert_eq!(p["description"], "test package");
    // Same version again: a conflict, and the answer says so.
    let dir2 = tempfile::tempdir().unwrap();
    let again = deb(dir2.path(), "hello-tool", "1:2.10-3");
    let r = upload(&t, &admin, "hello.deb", again, true).await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn versions_are_validated_with_paths_and_nothing_partial_is_stored() {
    let t = setup().await;
    let admin = t.admin().await;
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/packages",
        &admin,
        Some(json!({"name": "tool"})),
    )
    .await;
    let bad = [
        (
            json!({"version": "1", "spec": {"installer_type": "deb", "detection": {"type": "file_exists", "path": "/x"}}}),
            vec!["/artifacts", "/spec/package_id"],
        ),
        (
            json!({"version": "1", "artifacts": [{"platform": "linux", "arch": "any", "sha256": "0".repeat(64), "file_name": "../x"}],
                   "spec": {"installer_type": "exe", "detection": {"type": "file_exists", "path": "relative"}}}),
            vec![
                "/artifacts/0/file_name",
                "/spec/install_command",
                "/spec/detection/path",
            ],
        ),
        (
            json!({"version": "bad version", "spec": {"installer_type": "package_manager",
                   "manager_package": {"manager": "apt", "name": "-oops"},
                   "install_command": ["x", "{nope}"],
                   "soft_reboot_exit_codes": [0],
                   "detection": {"type": "all", "rules": []}}}),
            vec![
                "/version",
                "/spec/manager_package/name",
                "/spec/install_command/1",
                "/spec/soft_reboot_exit_codes",
                "/spec/detection/rules",
            ],
        ),
    ];
    for (body, paths) in bad {
        let (s, v) = t
            .call(
                POST,
                "/api/v1/packages/tool/versions",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}: {v}");
        let got: Vec<&str> = v["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["path"].as_str().unwrap())
            .collect();
        for p in paths {
            assert!(got.contains(&p), "{p} missing in {got:?} for {body}");
        }
    }
    // An artifact whose blob the depot does not hold.
    let r = t
        .call(POST, "/api/v1/packages/tool/versions", Some(&admin), Some(json!({
            "version": "1",
            "artifacts": [{"platform": "linux", "arch": "any", "sha256": "a".repeat(64), "file_name": "t.deb"}],
            "spec": {"installer_type": "deb", "package_id": "tool", "detection": {"type": "file_exists", "path": "/x"}}})))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    let v = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/packages/tool/versions",
            &admin,
            None,
        )
        .await;
    assert_eq!(v, json!([]), "nothing was stored");
    // Names with shell metacharacters are not package names.
    for name in ["x;rm -rf /", "$(reboot)", "-rf", "Upper", ""] {
        let r = t
            .call(
                POST,
                "/api/v1/packages",
                Some(&admin),
                Some(json!({"name": name})),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    }
}

#[tokio::test]
async fn software_jobs_resolve_dependencies_supersedence_and_refuse_cycles() {
    let t = setup().await;
    let admin = t.admin().await;
    let (device, device_token) = t.device(&admin, "node-1").await;
    for name in ["app", "lib", "base", "old-app"] {
        t.ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/packages",
            &admin,
            Some(json!({"name": name})),
        )
        .await;
    }
    let add = |pkg: &str, body: Value| {
        let path = format!("/api/v1/packages/{pkg}/versions");
        (path, body)
    };
    for (path, body) in [
        add("base", apt_version("1", "base", json!([]), json!([]))),
        add(
            "lib",
            apt_version("1", "lib", json!([{"package": "base"}]), json!([])),
        ),
        add(
            "old-app",
            apt_version("0.9", "old-app", json!([]), json!([])),
        ),
        add(
            "app",
            apt_version(
                "2",
                "app",
                json!([{"package": "lib", "version": "1"}, {"package": "base"}]),
                json!([{"package": "old-app", "version": "0.9", "mode": "uninstall_first"},
                       {"package": "old-app", "version": "0.8", "mode": "uninstall_first"}]),
            ),
        ),
    ] {
        t.ok(StatusCode::CREATED, POST, &path, &admin, Some(body))
            .await;
    }
    let job = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/software/install",
            &admin,
            Some(json!({"package": "app", "targets": {"devices": [device]}})),
        )
        .await;
    assert_eq!(job["kind"], "software_install");
    let plan = &job["spec"]["action"]["plan"]["steps"];
    let steps: Vec<String> = plan
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{} {} {}",
                s["operation"].as_str().unwrap(),
                s["package"].as_str().unwrap(),
                s["version"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            "install base 1",
            "install lib 1",
            "uninstall_if_present old-app 0.9",
            "install app 2"
        ],
        "dependencies depth-first and once, the superseded version before, a missing one skipped"
    );
    assert_eq!(
        plan[3]["spec"]["install_command"],
        json!(["apt-get", "install", "--yes", "--allow-downgrades", "app"])
    );

    // The agent gets the plan signed, with the server as its download source.
    let (s, claim) = t
        .call(POST, "/agent/v1/runs/claim", Some(&device_token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let payload: Value =
        serde_json::from_str(claim["runs"][0]["payload"].as_str().unwrap()).unwrap();
    assert_eq!(payload["sources"], json!([{"kind": "server"}]));
    assert_eq!(
        payload["spec"]["action"]["plan"]["steps"][3]["package"],
        "app"
    );

    // A dependency cycle is refused with its path.
    t.ok(
        StatusCode::OK,
        PUT,
        "/api/v1/packages/base/versions/1",
        &admin,
        Some(json!({"installer_type": "package_manager",
                    "manager_package": {"manager": "apt", "name": "base"},
                    "dependencies": [{"package": "app"}],
                    "detection": {"type": "package", "manager": "dpkg", "name": "base"}})),
    )
    .await;
    let r = t
        .call(
            POST,
            "/api/v1/software/install",
            Some(&admin),
            Some(json!({"package": "app", "targets": {"devices": [device]}})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        r.1["message"].as_str().unwrap().contains("cycle"),
        "{}",
        r.1
    );

    // Unknown packages and versions, and plans sent by clients, are refused.
    for body in [
        json!({"package": "nope", "targets": {"devices": [device]}}),
        json!({"package": "app", "version": "9", "targets": {"devices": [device]}}),
    ] {
        let r = t
            .call(POST, "/api/v1/software/install", Some(&admin), Some(body))
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    }
    let r = t
        .call(POST, "/api/v1/jobs", Some(&admin), Some(json!({
            "spec": {"action": {"type": "software_install", "package": "app", "plan": {"steps": []}}},
            "targets": {"devices": [device]}})))
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    // Uninstall resolves the newest version by default.
    let job = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/software/uninstall",
            &admin,
            Some(json!({"package": "old-app", "targets": {"devices": [device]}})),
        )
        .await;
    assert_eq!(
        job["spec"]["action"]["plan"]["steps"][0]["operation"],
        "uninstall"
    );
    assert_eq!(job["spec"]["action"]["version"], "0.9");
}

#[tokio::test]
async fn agents_download_artifacts_only_and_blobs_in_use_stay() {
    let t = setup().await;
    let admin = t.admin().await;
    let (_device, device_token) = t.device(&admin, "node-1").await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = deb(dir.path(), "pkg-a", "1.0");
    let (s, up) = upload(&t, &admin, "a.deb", bytes.clone(), true).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    let sha = up["sha256"].as_str().unwrap().to_string();
    // A plain blob that is not an artifact.
    let (s, plain) = t
        .raw(
            POST,
            "/api/v1/depot/blobs",
            Some(&admin),
            Some("application/octet-stream"),
            b"secret notes".to_vec(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{plain}");

    let path = format!("/agent/v1/depot/blobs/{sha}");
    let (s, _) = t.call(GET, &path, None, None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, body) = t.call(GET, &path, Some(&device_token), None).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    let other = format!(
        "/agent/v1/depot/blobs/{}",
        plain["sha256"].as_str().unwrap()
    );
    let r = t.call(GET, &other, Some(&device_token), None).await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
    let r = t
        .call(
            GET,
            "/agent/v1/depot/blobs/..%2f..%2fetc",
            Some(&device_token),
            None,
        )
        .await;
    assert_eq!(r.0, StatusCode::BAD_REQUEST, "{}", r.1);
    // An operator's admin token is not a device credential.
    let (s, _) = t.call(GET, &path, Some(&admin), None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    // In use: the blob stays; after the version is gone it can go.
    let r = t
        .call(
            DELETE,
            &format!("/api/v1/depot/blobs/{sha}"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    assert!(
        r.1["message"].as_str().unwrap().contains("pkg-a 1.0"),
        "{}",
        r.1
    );
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        "/api/v1/packages/pkg-a/versions/1.0",
        &admin,
        None,
    )
    .await;
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        &format!("/api/v1/depot/blobs/{sha}"),
        &admin,
        None,
    )
    .await;
}

#[tokio::test]
async fn catalogue_listing_search_edit_delete_and_permissions() {
    let t = setup().await;
    let admin = t.admin().await;
    let viewer = t.user(&admin, "vera", "viewer").await;
    for (name, display) in [
        ("firefox", "Mozilla Firefox"),
        ("7zip", "7-Zip"),
        ("nginx", "nginx"),
    ] {
        t.ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/packages",
            &admin,
            Some(json!({"name": name, "display_name": display, "publisher": "x"})),
        )
        .await;
    }
    let r = t
        .call(
            POST,
            "/api/v1/packages",
            Some(&admin),
            Some(json!({"name": "nginx"})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");
    let page = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/packages?search=FIRE",
            &viewer,
            None,
        )
        .await;
    assert_eq!(page["total"], 1);
    assert_eq!(page["items"][0]["name"], "firefox");
    let page = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/packages?search=%25",
            &viewer,
            None,
        )
        .await;
    assert_eq!(page["total"], 0, "% is a literal, not a wildcard");
    let page = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/packages?limit=2",
            &viewer,
            None,
        )
        .await;
    let names: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["display_name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["7-Zip", "Mozilla Firefox"]);
    assert_eq!(page["total"], 3);
    // Viewers read, never write.
    let r = t
        .call(
            POST,
            "/api/v1/packages",
            Some(&viewer),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = t
        .call(DELETE, "/api/v1/packages/nginx", Some(&viewer), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    let r = t
        .call(
            POST,
            "/api/v1/software/install",
            Some(&viewer),
            Some(json!({"package": "nginx", "targets": {"groups": ["all"]}})),
        )
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    // Edit: publisher cleared with null, description set.
    let p = t
        .ok(
            StatusCode::OK,
            PATCH,
            "/api/v1/packages/nginx",
            &admin,
            Some(json!({"publisher": null, "description": "web server"})),
        )
        .await;
    assert_eq!(p.get("publisher"), None, "{p}");
    assert_eq!(p["description"], "web server");
    assert_eq!(p["display_name"], "nginx");
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        "/api/v1/packages/nginx",
        &admin,
        None,
    )
    .await;
    let r = t
        .call(GET, "/api/v1/packages/nginx", Some(&admin), None)
        .await;
    assert_error(&r, StatusCode::NOT_FOUND, "not_found");
}

/// A source's status once no copy is pending any more (at most 10 s).
async fn settled_status(t: &T, admin: &str, source: &str) -> Value {
    let path = format!("/api/v1/depot/sources/{source}/status");
    let mut status = Value::Null;
    for _ in 0..200 {
        status = t.ok(StatusCode::OK, GET, &path, admin, None).await;
        if status["pending"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    status
}

/// The sources a device's software run names, in order, as `kind:name`.
async fn claimed_sources(t: &T, admin: &str, device: &str, token: &str) -> Vec<String> {
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/software/install",
        admin,
        Some(json!({"package": "pkg-s", "targets": {"devices": [device]}})),
    )
    .await;
    let (s, claim) = t
        .call(POST, "/agent/v1/runs/claim", Some(token), None)
        .await;
    assert_eq!(s, StatusCode::OK, "{claim}");
    let payload: Value =
        serde_json::from_str(claim["runs"][0]["payload"].as_str().unwrap()).unwrap();
    payload["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["kind"].as_str().unwrap(),
                s["name"].as_str().unwrap_or("-")
            )
        })
        .collect()
}

#[tokio::test]
async fn depot_sources_scope_order_sync_status_and_drift() {
    let t = setup().await;
    let admin = t.admin().await;
    let (dev_a, tok_a) = t.device(&admin, "site-a-1").await;
    let (dev_b, tok_b) = t.device(&admin, "elsewhere").await;
    let g = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "site-a"})),
        )
        .await;
    let child = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/groups",
            &admin,
            Some(json!({"name": "site-a-floor-2", "parent_id": g["id"]})),
        )
        .await;
    t.ok(
        StatusCode::OK,
        POST,
        &format!("/api/v1/groups/{}/members", child["id"].as_str().unwrap()),
        &admin,
        Some(json!({"device_ids": [dev_a]})),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = deb(dir.path(), "pkg-s", "1.0");
    let (s, up) = upload(&t, &admin, "s.deb", bytes.clone(), true).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    let sha = up["sha256"].as_str().unwrap().to_string();
    let share = tempfile::tempdir().unwrap();
    let share_path = share.path().display().to_string();

    // Validation, each refused with nothing stored.
    for (body, code) in [
        (
            json!({"name": "Bad Name", "kind": "path", "location": "/x"}),
            "validation_failed",
        ),
        (
            json!({"name": "m", "kind": "http", "location": "/not/a/url"}),
            "validation_failed",
        ),
        (
            json!({"name": "m", "kind": "path", "location": "relative/dir"}),
            "validation_failed",
        ),
        (
            json!({"name": "m", "kind": "path", "location": "/x", "sync_path": "/does/not/exist"}),
            "validation_failed",
        ),
        (
            json!({"name": "m", "kind": "path", "location": "/x", "groups": ["no-such-group"]}),
            "validation_failed",
        ),
        (
            json!({"name": "m", "kind": "path", "location": "/x", "priority": -1}),
            "validation_failed",
        ),
    ] {
        let r = t
            .call(
                POST,
                "/api/v1/depot/sources",
                Some(&admin),
                Some(body.clone()),
            )
            .await;
        assert_error(&r, StatusCode::BAD_REQUEST, code);
    }
    assert_eq!(
        t.ok(StatusCode::OK, GET, "/api/v1/depot/sources", &admin, None)
            .await,
        json!([])
    );

    let s = t
        .ok(
            StatusCode::CREATED,
            POST,
            "/api/v1/depot/sources",
            &admin,
            Some(
                json!({"name": "share-a", "kind": "path", "location": share_path,
                        "sync_path": share_path, "priority": 10, "groups": ["site-a"]}),
            ),
        )
        .await;
    assert_eq!(s["groups"][0]["name"], "site-a");
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/depot/sources",
        &admin,
        Some(json!({"name": "mirror", "kind": "http", "location": "http://127.0.0.1:9/depot/"})),
    )
    .await;
    let r = t
        .call(
            POST,
            "/api/v1/depot/sources",
            Some(&admin),
            Some(json!({"name": "mirror", "kind": "path", "location": "/x"})),
        )
        .await;
    assert_error(&r, StatusCode::CONFLICT, "conflict");

    // A device in a descendant of site-a gets the share first; another device does not.
    assert_eq!(
        claimed_sources(&t, &admin, &dev_a, &tok_a).await,
        ["path:share-a", "http:mirror", "server:-"]
    );
    assert_eq!(
        claimed_sources(&t, &admin, &dev_b, &tok_b).await,
        ["http:mirror", "server:-"]
    );
    // An exclusive (air-gapped) source: its devices never fall back to the server.
    t.ok(
        StatusCode::OK,
        PATCH,
        "/api/v1/depot/sources/share-a",
        &admin,
        Some(json!({"exclusive": true})),
    )
    .await;
    assert_eq!(
        claimed_sources(&t, &admin, &dev_a, &tok_a).await,
        ["path:share-a", "http:mirror"]
    );
    assert_eq!(
        claimed_sources(&t, &admin, &dev_b, &tok_b).await,
        ["http:mirror", "server:-"]
    );

    // Sync: copied, verified, recorded; a second sync has nothing to do.
    let r = t
        .ok(
            StatusCode::ACCEPTED,
            POST,
            "/api/v1/depot/sources/share-a/sync",
            &admin,
            Some(json!({"package": "pkg-s"})),
        )
        .await;
    assert_eq!(r["queued"], json!([sha]));
    let status = settled_status(&t, &admin, "share-a").await;
    assert_eq!(status["synced"], 1, "{status}");
    assert_eq!(std::fs::read(share.path().join(&sha)).unwrap(), bytes);
    let r = t
        .ok(
            StatusCode::ACCEPTED,
            POST,
            "/api/v1/depot/sources/share-a/sync",
            &admin,
            Some(json!({"package": "pkg-s", "version": "1.0"})),
        )
        .await;
    assert_eq!(r["queued"], json!([]));
    assert_eq!(r["already_synced"], json!([sha]));
    // The server cannot write to the mirror.
    let r = t
        .call(
            POST,
            "/api/v1/depot/sources/mirror/sync",
            Some(&admin),
            Some(json!({"package": "pkg-s"})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");

    // Drift: the mirror lacks the version, the share has it.
    let drift = t
        .ok(StatusCode::OK, GET, "/api/v1/depot/drift", &admin, None)
        .await;
    assert_eq!(
        drift["rows"],
        json!([{"package": "pkg-s", "version": "1.0", "lacking": ["mirror"], "complete": ["share-a"]}])
    );
    // A file removed behind our back is found by a verifying status and shows in the drift.
    std::fs::remove_file(share.path().join(&sha)).unwrap();
    let status = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/depot/sources/share-a/status?verify=true",
            &admin,
            None,
        )
        .await;
    assert_eq!(status["artifacts"][0]["state"], "missing", "{status}");
    assert_eq!(status["lacking"], 1);
    let drift = t
        .ok(StatusCode::OK, GET, "/api/v1/depot/drift", &admin, None)
        .await;
    assert_eq!(drift["rows"][0]["lacking"], json!(["share-a", "mirror"]));
    // The unreachable mirror is reported as failed when verified, not silently fine.
    let status = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/depot/sources/mirror/status?verify=true",
            &admin,
            None,
        )
        .await;
    assert_eq!(status["artifacts"][0]["state"], "failed", "{status}");

    // Viewers see sources but cannot change them.
    let viewer = t.user(&admin, "vic", "viewer").await;
    t.ok(StatusCode::OK, GET, "/api/v1/depot/sources", &viewer, None)
        .await;
    let r = t
        .call(DELETE, "/api/v1/depot/sources/mirror", Some(&viewer), None)
        .await;
    assert_error(&r, StatusCode::FORBIDDEN, "forbidden");
    t.ok(
        StatusCode::NO_CONTENT,
        DELETE,
        "/api/v1/depot/sources/mirror",
        &admin,
        None,
    )
    .await;
    assert_eq!(
        claimed_sources(&t, &admin, &dev_b, &tok_b).await,
        ["server:-"]
    );
}

/// An S3 server (`s3s-fs`, signatures checked) on 127.0.0.1 with the buckets `buckets`,
/// stored as directories under the returned temp dir; it runs on the test's runtime.
async fn s3_server(buckets: &[&str]) -> (tempfile::TempDir, capstan_server::config::S3Settings) {
    let root = tempfile::tempdir().unwrap();
    for b in buckets {
        std::fs::create_dir(root.path().join(b)).unwrap();
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let settings = capstan_server::config::S3Settings {
        bucket: buckets[0].into(),
        endpoint: Some(format!("http://{}", listener.local_addr().unwrap())),
        region: "us-east-1".into(),
        prefix: "depot".into(),
        allow_http: true,
        access_key_id: Some("capstan-test-key".into()),
        secret_access_key: Some("capstan-test-secret".into()),
        session_token: None,
    };
    let mut builder =
        s3s::service::S3ServiceBuilder::new(s3s_fs::FileSystem::new(root.path()).unwrap());
    builder.set_auth(s3s::auth::SimpleAuth::from_single(
        "capstan-test-key",
        "capstan-test-secret",
    ));
    let service = builder.build();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let service = service.clone();
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(socket);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    (root, settings)
}

#[tokio::test]
async fn a_source_in_another_s3_bucket_is_synced_verified_and_checked() {
    let (root, settings) = s3_server(&["capstan-depot", "site-b"]).await;
    let s = settings.clone();
    let t = common::setup_with(move |c| {
        c.depot_backend = capstan_server::config::DepotBackend::S3(s);
    })
    .await;
    let admin = t.admin().await;
    let dir = tempfile::tempdir().unwrap();
    let small = deb(dir.path(), "pkg-b", "1.0");
    let (s, up) = upload(&t, &admin, "b.deb", small.clone(), true).await;
    assert_eq!(s, StatusCode::CREATED, "{up}");
    let sha = up["sha256"].as_str().unwrap().to_string();
    // A version with a large artifact too, so the copy goes in parts.
    let mut big = vec![0u8; 17 << 20];
    getrandom::fill(&mut big).unwrap();
    let (s, blob) = t
        .raw(
            POST,
            "/api/v1/depot/blobs",
            Some(&admin),
            Some("application/octet-stream"),
            big.clone(),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{blob}");
    let big_sha = blob["sha256"].as_str().unwrap().to_string();
    let mut req = up["suggested"].clone();
    req["version"] = json!("2.0");
    req["artifacts"] =
        json!([{"platform": "linux", "arch": "any", "sha256": big_sha, "file_name": "big.deb"}]);
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/packages/pkg-b/versions",
        &admin,
        Some(req),
    )
    .await;

    // A bucket the server cannot reach is refused when the source is configured.
    let r = t
        .call(
            POST,
            "/api/v1/depot/sources",
            Some(&admin),
            Some(json!({
            "name": "nowhere", "kind": "http", "location": "http://127.0.0.1:9/x",
            "sync_path": "s3://no-such-bucket/mirror"})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");
    assert!(
        r.1["message"].as_str().unwrap().contains("cannot reach"),
        "{}",
        r.1
    );
    let r = t
        .call(
            POST,
            "/api/v1/depot/sources",
            Some(&admin),
            Some(json!({
            "name": "nowhere", "kind": "http", "location": "http://127.0.0.1:9/x",
            "sync_path": "s3://Bad_Bucket/x"})),
        )
        .await;
    assert_error(&r, StatusCode::BAD_REQUEST, "validation_failed");

    // Agents read the bucket over HTTP; the server writes it with S3 credentials.
    t.ok(
        StatusCode::CREATED,
        POST,
        "/api/v1/depot/sources",
        &admin,
        Some(json!({
        "name": "site-b", "kind": "http", "location": "https://site-b.example.invalid/mirror",
        "sync_path": "s3://site-b/mirror/"})),
    )
    .await;
    let r = t
        .ok(
            StatusCode::ACCEPTED,
            POST,
            "/api/v1/depot/sources/site-b/sync",
            &admin,
            Some(json!({"package": "pkg-b"})),
        )
        .await;
    assert_eq!(r["queued"].as_array().unwrap().len(), 2, "{r}");
    let status = settled_status(&t, &admin, "site-b").await;
    assert_eq!(status["synced"], 2, "{status}");
    let bucket = root.path().join("site-b/mirror");
    assert_eq!(std::fs::read(bucket.join(&sha)).unwrap(), small);
    assert_eq!(std::fs::read(bucket.join(&big_sha)).unwrap(), big);
    let r = t
        .ok(
            StatusCode::ACCEPTED,
            POST,
            "/api/v1/depot/sources/site-b/sync",
            &admin,
            Some(json!({"package": "pkg-b"})),
        )
        .await;
    assert_eq!(
        r["queued"],
        json!([]),
        "checked in the bucket, nothing to copy again"
    );
    // An object removed from the bucket is found by a verifying status.
    std::fs::remove_file(bucket.join(&sha)).unwrap();
    let status = t
        .ok(
            StatusCode::OK,
            GET,
            "/api/v1/depot/sources/site-b/status?verify=true",
            &admin,
            None,
        )
        .await;
    let states: Vec<(&str, &str)> = status["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["version"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("1.0", "missing"), ("2.0", "synced")], "{status}");
    let drift = t
        .ok(StatusCode::OK, GET, "/api/v1/depot/drift", &admin, None)
        .await;
    assert_eq!(drift["rows"][0]["version"], "1.0");
    assert_eq!(drift["rows"][0]["lacking"], json!(["site-b"]));
}

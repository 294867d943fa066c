//! `capstan packages …` and `capstan software …` end to end: the real `capstan` binary against
//! the real server router, in-process on a loopback port over a fresh SQLite database, with
//! real `.deb` files built by `dpkg-deb`. Uploads stream from disk; what the server stored is
//! checked through the API as well as through the CLI's own output.

use std::path::{Path, PathBuf};

use capstan_client::agent::AgentClient;
use capstan_client::tls::ClientOptions;
use capstan_proto::agent::{DeviceIdentity, EnrollRequest};
use capstan_proto::api::CreateEnrollmentTokenRequest;
use capstan_proto::software::{PackageInfo, UploadAnalysis, VersionInfo};
use serde_json::Value;

mod common;
use common::{Server, has_line, stderr, stdout};

/// The largest upload the test server takes; the big package in `streams_large_files` is
/// between one chunk of the CLI's body stream and this.
const UPLOAD_LIMIT: u64 = 2 << 20;

async fn start() -> Server {
    common::start_with(
        |c| c.max_upload_bytes = UPLOAD_LIMIT,
        // The ticker expires runs nobody picked up, as in the real server.
        |state| {
            tokio::spawn(capstan_server::jobs::run_ticker(state));
        },
    )
    .await
}

/// A real `.deb` built with `dpkg-deb`, carrying `payload` bytes of incompressible data (so
/// the file is about that large).
fn deb(dir: &Path, name: &str, version: &str, payload: usize) -> PathBuf {
    let root = dir.join(format!("{name}-{version}-root"));
    std::fs::create_dir_all(root.join("DEBIAN")).unwrap();
    std::fs::create_dir_all(root.join("usr/share/doc").join(name)).unwrap();
    std::fs::write(
        root.join("DEBIAN/control"),
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n\
             Maintainer: CLI Tests <cli@example.invalid>\nDescription: package of the CLI tests\n \
             long text\n"
        ),
    )
    .unwrap();
    // xorshift bytes: incompressible enough that the .deb keeps their size.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ payload as u64;
    let data: Vec<u8> = (0..payload)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(root.join("usr/share/doc").join(name).join("blob"), data).unwrap();
    let out = dir.join(format!("{name}_{}_amd64.deb", version.replace(':', "%3a")));
    let st = std::process::Command::new("dpkg-deb")
        .args(["-Zgzip", "--root-owner-group", "--build"])
        .arg(&root)
        .arg(&out)
        .output()
        .expect("dpkg-deb runs");
    assert!(st.status.success(), "{st:?}");
    out
}

fn sha256_of(path: &Path) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("sha256sum runs");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_list_show_edit_and_delete_a_real_deb() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = deb(dir.path(), "hello-cli", "1:2.10-3", 0);
    let path = file.to_str().unwrap();

    // Without --create: the analysis, nothing in the catalogue.
    let a: UploadAnalysis = s.json(&["packages", "upload", path]).await;
    assert_eq!(a.sha256, sha256_of(&file));
    assert_eq!(a.size, std::fs::metadata(&file).unwrap().len());
    assert_eq!(a.file_name, "hello-cli_1%3a2.10-3_amd64.deb");
    assert_eq!(a.package.as_deref(), Some("hello-cli"));
    let meta = a.metadata.as_ref().unwrap();
    assert_eq!(meta["format"], "deb");
    assert_eq!(meta["version"], "1:2.10-3");
    assert_eq!(a.suggested.as_ref().unwrap().version, "1:2.10-3");
    assert!(a.created.is_none());
    assert_eq!(s.ok(&["packages", "list"]).await, "No packages.\n");

    // With --create, as a table: metadata, then the created version.
    let out = s.capstan(&["packages", "upload", path, "--create"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let created_part = text
        .split_once("\nCreated:\n")
        .map(|(_, c)| c)
        .unwrap_or_default();
    for want in [
        "Format: deb",
        "Summary: package of the CLI tests",
        "Version: 1:2.10-3",
    ] {
        assert!(has_line(&text, want), "missing {want:?} in:\n{text}");
    }
    for want in [
        "Version: 1:2.10-3",
        "Installer: deb",
        "Install: dpkg --install {file}",
        "Detection: dpkg package hello-cli >= 1:2.10-3",
    ] {
        assert!(
            has_line(created_part, want),
            "missing {want:?} under Created: in:\n{text}"
        );
    }
    assert!(
        has_line(&text, "File: hello-cli_1%3a2.10-3_amd64.deb"),
        "{text}"
    );
    assert!(!text.contains("(in "), "a time in the future: {text}");
    assert!(
        stderr(&out).contains("Created version 1:2.10-3 of package hello-cli"),
        "{}",
        stderr(&out)
    );
    // No terminal: no progress line.
    assert!(!stderr(&out).contains("Uploading"), "{}", stderr(&out));

    let list: Vec<PackageInfo> = s.json(&["packages", "list", "--search", "HELLO"]).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].latest_version.as_deref(), Some("1:2.10-3"));
    let table = s.ok(&["packages", "list"]).await;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("hello-cli"), "{table}");

    let show = s.ok(&["packages", "show", "hello-cli"]).await;
    assert!(has_line(&show, "Versions: 1 (latest 1:2.10-3)"), "{show}");
    let versions = s.ok(&["packages", "versions", "hello-cli"]).await;
    assert!(
        versions
            .lines()
            .nth(1)
            .is_some_and(|l| l
                .split_whitespace()
                .take(3)
                .eq(["1:2.10-3", "deb", "linux/x86_64"])),
        "{versions}"
    );

    // Edit the spec from what `version show -o json` printed.
    let shown: Value = s
        .json(&["packages", "version", "show", "hello-cli", "1:2.10-3"])
        .await;
    let mut edited = shown.clone();
    edited["spec"]["timeout_secs"] = 120.into();
    let spec_file = dir.path().join("spec.json");
    std::fs::write(&spec_file, edited.to_string()).unwrap();
    let text = s
        .ok(&[
            "packages",
            "version",
            "edit",
            "hello-cli",
            "1:2.10-3",
            "--spec",
            spec_file.to_str().unwrap(),
        ])
        .await;
    assert!(has_line(&text, "Timeout: 120s"), "{text}");
    let stored: VersionInfo = s.api.get_version("hello-cli", "1:2.10-3").await.unwrap();
    assert_eq!(stored.spec.timeout_secs, 120);

    // A spec that is no spec is refused before anything is sent.
    std::fs::write(&spec_file, r#"{"installer_type": "deb"}"#).unwrap();
    let out = s
        .capstan(&[
            "packages",
            "version",
            "edit",
            "hello-cli",
            "1:2.10-3",
            "--spec",
            spec_file.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("missing field `detection`")
            && stderr(&out).ends_with("(invalid_input)\n"),
        "{}",
        stderr(&out)
    );

    let p: PackageInfo = s
        .json(&[
            "packages",
            "edit",
            "hello-cli",
            "--display-name",
            "Hello CLI",
            "--clear-publisher",
        ])
        .await;
    assert_eq!(p.display_name, "Hello CLI");
    assert_eq!(p.publisher, None);

    // Destructive commands want --yes without a terminal.
    let out = s
        .capstan(&["packages", "version", "delete", "hello-cli", "1:2.10-3"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("(confirmation_required)"),
        "{}",
        stderr(&out)
    );
    s.ok(&[
        "packages",
        "version",
        "delete",
        "hello-cli",
        "1:2.10-3",
        "--yes",
    ])
    .await;
    assert_eq!(
        s.ok(&["packages", "versions", "hello-cli"]).await,
        "No versions.\n"
    );
    let out = s.capstan(&["packages", "delete", "hello-cli"]).await;
    assert_eq!(out.status.code(), Some(1));
    s.ok(&["packages", "delete", "hello-cli", "--yes"]).await;
    let out = s.capstan(&["packages", "show", "hello-cli"]).await;
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_large_files_and_reports_bad_ones() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();

    // Several chunks of the body stream, created in a package named on the command line.
    let big = deb(dir.path(), "big-cli", "2.0-1", 1_500_000);
    let a: UploadAnalysis = s
        .json(&[
            "packages",
            "upload",
            big.to_str().unwrap(),
            "--create",
            "--package",
            "renamed-cli",
        ])
        .await;
    assert!(a.size > 1_400_000, "{}", a.size);
    assert_eq!(a.sha256, sha256_of(&big));
    let created = a.created.expect("a created version");
    assert_eq!(
        (created.package.as_str(), created.version.as_str()),
        ("renamed-cli", "2.0-1")
    );
    assert_eq!(created.artifacts[0].size, a.size);
    let p = s.api.get_package("renamed-cli").await.unwrap();
    assert_eq!(p.version_count, 1);
    assert_eq!(p.description.as_deref(), Some("package of the CLI tests"));
    assert!(s.api.get_package("big-cli").await.is_err());

    // Above the server's limit: refused, and the catalogue is unchanged.
    let huge = deb(dir.path(), "huge-cli", "1", 3 << 20);
    let out = s
        .capstan(&["packages", "upload", huge.to_str().unwrap(), "--create"])
        .await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).ends_with("(payload_too_large)\n"),
        "{}",
        stderr(&out)
    );
    assert!(s.api.get_package("huge-cli").await.is_err());

    // Not a package: the server's reason.
    let junk = dir.path().join("junk.deb");
    std::fs::write(&junk, b"this is not an ar archive").unwrap();
    let out = s
        .capstan(&["packages", "upload", junk.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("nothing was stored"),
        "{}",
        stderr(&out)
    );

    // Empty and missing files never reach the server.
    let empty = dir.path().join("empty.deb");
    std::fs::write(&empty, b"").unwrap();
    let out = s
        .capstan(&["packages", "upload", empty.to_str().unwrap()])
        .await;
    assert_eq!(
        stderr(&out),
        format!(
            "error: {} is empty; nothing to upload (invalid_input)\n",
            empty.display()
        )
    );
    let out = s
        .capstan(&["packages", "upload", "/nonexistent/x.deb"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).starts_with("error: cannot read /nonexistent/x.deb:"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn software_jobs_are_created_and_watched_like_run() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = deb(dir.path(), "job-cli", "1:1.0-1", 0);
    s.ok(&["packages", "upload", file.to_str().unwrap(), "--create"])
        .await;
    // A device without an agent behind it: its run is never picked up and expires.
    let token = s
        .api
        .create_enrollment_token(&CreateEnrollmentTokenRequest {
            name: "cli tests".into(),
            expires_in_secs: None,
            max_uses: None,
            default_tags: vec![],
        })
        .await
        .unwrap()
        .token;
    let device = AgentClient::new(&s.url, &ClientOptions::default())
        .unwrap()
        .enroll(&EnrollRequest {
            token,
            identity: DeviceIdentity {
                identity_key: "ab".repeat(32),
                source: "instance".into(),
            },
            hostname: "web-01".into(),
            agent_version: "0.1.0".into(),
            os_family: "linux".into(),
            capabilities: vec![],
        })
        .await
        .unwrap()
        .device_id;

    // --no-wait -o json: the job, with the plan the server resolved for the version asked.
    let job: Value = s
        .json(&[
            "software",
            "install",
            "job-cli@1:1.0-1",
            "--device",
            &device,
            "--force",
            "--no-wait",
        ])
        .await;
    let action = &job["spec"]["action"];
    assert_eq!(action["type"], "software_install", "{job}");
    assert_eq!(action["package"], "job-cli");
    assert_eq!(action["version"], "1:1.0-1");
    assert_eq!(action["force"], true);
    assert_eq!(job["counts"]["total"], 1);

    // Watched: the run expires, the result line and summary come as for `capstan run`, and
    // the exit status says a run did not succeed.
    let out = s
        .capstan(&[
            "software",
            "uninstall",
            "job-cli",
            "--device",
            &device,
            "--expires",
            "1s",
        ])
        .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(6), "{text}\n{}", stderr(&out));
    assert!(text.starts_with("web-01: expired"), "{text}");
    let job_id = job["id"].as_str().unwrap();
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Done: 0 succeeded, 0 failed, 0 timed out, 0 cancelled, 1 expired (job ")
            && !last.contains(job_id),
        "the summary names the uninstall job, not the install: {text}"
    );
    assert!(
        stderr(&out).ends_with("(runs_failed)\n"),
        "{}",
        stderr(&out)
    );

    // A version that does not exist is the server's error, with its exit status.
    let out = s
        .capstan(&["software", "install", "job-cli@9.9", "--device", &device])
        .await;
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr(&out).contains("9.9"), "{}", stderr(&out));

    // Uninstalls cannot be forced: refused by the grammar.
    let out = s
        .capstan(&[
            "software",
            "uninstall",
            "job-cli",
            "--group",
            "g",
            "--force",
        ])
        .await;
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depot_sources_sync_report_drift_and_go() {
    let s = start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = deb(dir.path(), "sync-cli", "1:3.0-1", 300_000);
    let a: UploadAnalysis = s
        .json(&["packages", "upload", file.to_str().unwrap(), "--create"])
        .await;
    let share = tempfile::tempdir().unwrap();
    let share_path = share.path().to_str().unwrap();

    let added: Value = s
        .json(&[
            "depot",
            "sources",
            "add",
            "lab-share",
            "--path",
            share_path,
            "--sync-path",
            share_path,
            "--priority",
            "10",
        ])
        .await;
    assert_eq!(added["kind"], "path");
    assert_eq!(added["priority"], 10);
    s.ok(&[
        "depot",
        "sources",
        "add",
        "mirror",
        "--http",
        "http://127.0.0.1:9/blobs",
    ])
    .await;
    let list = s.ok(&["depot", "sources", "list"]).await;
    let names: Vec<&str> = list
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["lab-share", "mirror"], "by priority: {list}");

    // Sync and wait: the artifact is on the share, byte for byte, and recorded as synced.
    let text = s
        .ok(&[
            "depot",
            "sources",
            "sync",
            "lab-share",
            "sync-cli@1:3.0-1",
            "--wait",
        ])
        .await;
    assert!(
        has_line(&text, "Artifacts: 1 synced, 0 pending, 0 failed, 0 lacking"),
        "{text}"
    );
    let copied = share.path().join(&a.sha256);
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&file).unwrap()
    );
    let status: Value = s
        .json(&["depot", "sources", "status", "lab-share", "--verify"])
        .await;
    assert_eq!(status["synced"], 1, "{status}");
    assert_eq!(status["artifacts"][0]["state"], "synced");

    // The mirror cannot be written to: sync is refused, and drift names it.
    let out = s
        .capstan(&["depot", "sources", "sync", "mirror", "sync-cli"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("sync_path"), "{}", stderr(&out));
    let drift = s.ok(&["depot", "drift"]).await;
    let row = drift.lines().nth(1).unwrap_or_default();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["sync-cli", "1:3.0-1", "mirror", "lab-share"],
        "{drift}"
    );

    // Again: nothing to copy.
    let again = s
        .ok(&["depot", "sources", "sync", "lab-share", "sync-cli"])
        .await;
    assert!(again.starts_with("Nothing to copy"), "{again}");

    let out = s.capstan(&["depot", "sources", "remove", "mirror"]).await;
    assert!(
        stderr(&out).contains("(confirmation_required)"),
        "{}",
        stderr(&out)
    );
    s.ok(&["depot", "sources", "remove", "mirror", "--yes"])
        .await;
    assert!(
        s.ok(&["depot", "drift"])
            .await
            .starts_with("Every source holds every version (lab-share)"),
    );
    s.ok(&["depot", "sources", "remove", "lab-share", "--yes"])
        .await;
    assert!(copied.exists(), "removing a source leaves its files");
    assert_eq!(
        s.ok(&["depot", "sources", "list"]).await,
        "No depot sources: agents download from the server.\n"
    );
}

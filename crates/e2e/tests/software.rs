//! End-to-end tests of software packages: real `.deb` files built here with `dpkg-deb`, and a
//! script archive built with `tar`, uploaded to the real server, installed and removed by a real
//! agent process on this machine through `software_install` / `software_uninstall` jobs, and
//! checked with `dpkg -s` and the files the packages leave.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use capstan_testkit::{ServerOptions, wait_until};
use common::{Fx, build_deb, sh, unique};
use serde_json::{Value, json};

mod common;

async fn start() -> Fx {
    common::start(ServerOptions::default()).await
}

const PATIENCE: Duration = Duration::from_secs(90);

impl Fx {
    /// Runs a software job on one device and waits for its run to end; returns the run.
    async fn software(&self, op: &str, body: Value, device: &str) -> Value {
        let mut body = body;
        body["targets"] = json!({"devices": [device]});
        let job = self.post(&format!("/api/v1/software/{op}"), body).await;
        let job = job["id"].as_str().unwrap().to_string();
        let what = format!("software {op} job {job} to end");
        wait_until(&what, PATIENCE, || async {
            let r = self.get(&format!("/api/v1/jobs/{job}/runs/{device}")).await;
            let s = r["state"].as_str().unwrap_or("").to_string();
            anyhow::Ok(
                ["succeeded", "failed", "timed_out", "cancelled", "expired"]
                    .contains(&s.as_str())
                    .then_some(r),
            )
        })
        .await
        .unwrap()
    }
}

/// `dpkg -s` says the package is installed, at this version.
fn dpkg_version(name: &str) -> Option<String> {
    let out = sh(&format!(
        "dpkg-query -W -f='${{Status}}\\t${{Version}}' {name} 2>/dev/null"
    ));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (status, version) = text.split_once('\t')?;
    (status == "install ok installed").then(|| version.to_string())
}

/// Removes a package left behind by a failed test.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = sh(&format!("dpkg --purge {} >/dev/null 2>&1", self.0));
    }
}

fn attempt_text(run: &Value) -> String {
    let a = &run["attempts"][run["attempts"].as_array().map_or(0, |v| v.len().max(1) - 1)];
    format!(
        "{}\n--- stderr ---\n{}\n--- error: {}",
        a["stdout"].as_str().unwrap_or(""),
        a["stderr"].as_str().unwrap_or(""),
        a["error"]
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deb_is_uploaded_installed_detected_cached_and_removed_by_a_real_agent() {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("deb");
    let _cleanup = Cleanup(name.clone());
    let deb = build_deb(dir.path(), &name, "1.0-1");

    // Upload: parsed, stored, version created with a dpkg detection rule.
    let (status, up) = fx.upload(&deb, true).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["metadata"]["format"], "deb");
    assert_eq!(up["created"]["version"], "1.0-1");
    assert_eq!(up["created"]["spec"]["detection"]["type"], "package");
    assert_eq!(up["created"]["spec"]["install_command"][0], "dpkg");
    let pkg = up["package"].as_str().unwrap().to_string();
    assert_eq!(pkg, name);

    // Install: downloaded from the server, installed, verified by detection.
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("downloaded from server"), "{text}");
    assert!(text.contains("verified: installed"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("1.0-1"), "{text}");
    assert!(Path::new(&format!("/usr/share/{name}/version.txt")).exists());

    // Installing again changes nothing: detection finds it first.
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("already installed; nothing to do"), "{text}");
    assert!(!text.contains("run: dpkg"), "{text}");

    // Uninstall: gone, and verified gone.
    let run = fx
        .software("uninstall", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("verified: removed"), "{text}");
    assert_eq!(dpkg_version(&name), None);

    // A second install of the same version comes from the agent's cache.
    let run = fx
        .software(
            "install",
            json!({"package": pkg, "version": "1.0-1"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("from the cache"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("1.0-1"));

    // A newer version with uninstall-first supersedence: the old one goes, the new one comes.
    let deb2 = build_deb(dir.path(), &name, "2.0-1");
    let (status, up2) = fx.upload(&deb2, false).await;
    assert_eq!(status, 201, "{up2}");
    let mut req = up2["suggested"].clone();
    req["spec"]["supersedes"] =
        json!([{"package": pkg, "version": "1.0-1", "mode": "uninstall_first"}]);
    fx.post(&format!("/api/v1/packages/{pkg}/versions"), req)
        .await;
    let run = fx
        .software("install", json!({"package": pkg}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("step 1/2: remove superseded"), "{text}");
    assert!(text.contains("step 2/2: install"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("2.0-1"));

    // The blob of a version cannot be deleted while the version exists.
    let sha = up["sha256"].as_str().unwrap();
    let (status, body) = fx
        .req(
            reqwest::Method::DELETE,
            &format!("/api/v1/depot/blobs/{sha}"),
            None,
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("1.0-1"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_timeouts_and_failures_are_reported_as_such() {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("codes");
    let _cleanup = Cleanup(name.clone());
    let deb = build_deb(dir.path(), &name, "1.0");
    let (status, up) = fx.upload(&deb, false).await;
    assert_eq!(status, 201, "{up}");
    fx.post("/api/v1/packages", json!({"name": name})).await;
    let marker = dir.path().join("marker");
    let marker = marker.display().to_string();

    // One version per behaviour, sharing the artifact; detection = the marker file.
    let version = |v: &str, install: Value, extra: Value| {
        let mut req = up["suggested"].clone();
        req["version"] = json!(v);
        req["spec"]["install_command"] = install;
        req["spec"]["detection"] = json!({"type": "file_exists", "path": marker});
        for (k, val) in extra.as_object().unwrap() {
            req["spec"][k] = val.clone();
        }
        req
    };
    let touch_and_exit = |code: i32| json!(["sh", "-c", format!("touch {marker}; exit {code}")]);
    for req in [
        version(
            "soft",
            touch_and_exit(100),
            json!({"soft_reboot_exit_codes": [100]}),
        ),
        version("fails", touch_and_exit(17), json!({})),
        version("slow", json!(["sleep", "30"]), json!({"timeout_secs": 1})),
    ] {
        fx.post(&format!("/api/v1/packages/{name}/versions"), req)
            .await;
    }

    // A soft-reboot code: succeeded, reboot required, no reboot. (MSI's 3010 cannot be an
    // exit status on Linux, which keeps 8 bits; the mapping is the same for any code.)
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "soft"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert_eq!(run["attempts"][0]["exit_code"], 100, "{text}");
    assert!(
        run["attempts"][0]["error"]
            .as_str()
            .unwrap_or("")
            .contains("reboot required"),
        "{text}"
    );
    std::fs::remove_file(&marker).unwrap();

    // Exit 17: failed with the code, even though the file appeared.
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "fails"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "failed", "{text}");
    assert_eq!(run["attempts"][0]["exit_code"], 17, "{text}");
    std::fs::remove_file(&marker).unwrap();

    // Timeout: the installer is killed and the run says so.
    let run = fx
        .software(
            "install",
            json!({"package": name, "version": "slow"}),
            &device,
        )
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "timed_out", "{text}");
    assert!(!Path::new(&marker).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_and_leave_nothing() {
    let fx = start().await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique("bad");
    let deb = build_deb(dir.path(), &name, "1.0");
    let bytes = std::fs::read(&deb).unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated.deb",
            bytes[..bytes.len() / 2].to_vec(),
            "nothing was stored",
        ),
        (
            "garbage.deb",
            b"this is not a package at all".repeat(100),
            "nothing was stored",
        ),
        ("empty.deb", Vec::new(), "empty"),
    ];
    for (file, content, says) in cases {
        let path = dir.path().join(file);
        std::fs::write(&path, &content).unwrap();
        let (status, body) = fx.upload(&path, true).await;
        assert_eq!(status, 400, "{file}: {body}");
        assert!(
            body["message"].as_str().unwrap_or("").contains(says),
            "{file}: {body}"
        );
    }
    let blobs = fx.get("/api/v1/depot/blobs").await;
    assert_eq!(blobs["total"], 0, "no blob was kept: {blobs}");
    let pkgs = fx.get("/api/v1/packages").await;
    assert_eq!(pkgs["total"], 0, "{pkgs}");
    // Names with shell metacharacters are refused as package names.
    let (status, body) = fx
        .req(
            reqwest::Method::POST,
            "/api/v1/packages",
            Some(json!({"name": "x; rm -rf /"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = fx
        .req(
            reqwest::Method::POST,
            "/api/v1/software/install",
            Some(json!({"package": "$(reboot)", "targets": {"devices": ["x"]}})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
}

/// A throwaway nginx serving `root` on a free loopback port; stopped on drop.
struct Nginx {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    fn start(root: &Path) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let p = dir.path().display();
        let conf = format!(
            "daemon off; user root; pid {p}/nginx.pid; error_log {p}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{ access_log off; client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
               fastcgi_temp_path {p}/fastcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
               server {{ listen 127.0.0.1:{port}; root {}; location / {{ }} }} }}\n",
            root.display()
        );
        let conf_path = dir.path().join("nginx.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .spawn()
            .expect("nginx starts");
        let nginx = Nginx {
            child,
            port,
            _dir: dir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default();
        drop(nginx);
        panic!("nginx did not listen on {port}: {log}");
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // TERM, not KILL: the master then stops its workers; killed outright, it would leave
        // them serving (and holding the test's output pipes).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_fall_back_past_a_dead_mirror_and_a_corrupt_share_and_air_gapped_sites_never_use_the_server()
 {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("src");
    let _cleanup = Cleanup(name.clone());
    let deb = build_deb(dir.path(), &name, "1.0");
    let (status, up) = fx.upload(&deb, true).await;
    assert_eq!(status, 201, "{up}");
    let sha = up["sha256"].as_str().unwrap().to_string();
    let share = tempfile::tempdir().unwrap();
    let web = tempfile::tempdir().unwrap();
    let nginx = Nginx::start(web.path());

    let g = fx.post("/api/v1/groups", json!({"name": "site-a"})).await;
    fx.post(
        &format!("/api/v1/groups/{}/members", g["id"].as_str().unwrap()),
        json!({"device_ids": [device]}),
    )
    .await;
    let source = |name: &str, kind: &str, location: String, sync: Option<String>, prio: i64| {
        json!({"name": name, "kind": kind, "location": location, "sync_path": sync,
               "priority": prio, "groups": ["site-a"]})
    };
    fx.post(
        "/api/v1/depot/sources",
        source("dead", "http", "http://127.0.0.1:9/depot".into(), None, 1),
    )
    .await;
    let share_path = share.path().display().to_string();
    fx.post(
        "/api/v1/depot/sources",
        source("share", "path", share_path.clone(), Some(share_path), 5),
    )
    .await;
    let web_path = web.path().display().to_string();
    fx.post(
        "/api/v1/depot/sources",
        source(
            "mirror",
            "http",
            format!("http://127.0.0.1:{}", nginx.port),
            Some(web_path),
            10,
        ),
    )
    .await;
    for s in ["share", "mirror"] {
        fx.post(
            &format!("/api/v1/depot/sources/{s}/sync"),
            json!({"package": name}),
        )
        .await;
        wait_until(&format!("{s} synced"), PATIENCE, || async {
            let st = fx.get(&format!("/api/v1/depot/sources/{s}/status")).await;
            anyhow::Ok((st["synced"] == 1).then_some(()))
        })
        .await
        .unwrap();
    }
    // The share's copy goes bad (same size, other bytes).
    let size = std::fs::metadata(share.path().join(&sha)).unwrap().len();
    std::fs::write(share.path().join(&sha), vec![b'x'; size as usize]).unwrap();

    // Air-gapped: the mirror is exclusive, so the server is not in the list at all.
    let (s, v) = fx
        .req(
            reqwest::Method::PATCH,
            "/api/v1/depot/sources/mirror",
            Some(json!({"exclusive": true})),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("source failed: dead: unavailable"), "{text}");
    assert!(text.contains("source failed: share:"), "{text}");
    assert!(text.contains("mismatch"), "{text}");
    assert!(text.contains("downloaded from mirror"), "{text}");
    assert_eq!(dpkg_version(&name).as_deref(), Some("1.0"));
    fx.software("uninstall", json!({"package": name}), &device)
        .await;
    assert_eq!(dpkg_version(&name), None);

    // With the mirror down too, the air-gapped device fails — it never reaches for the server —
    // after the cache is gone.
    drop(nginx);
    let cache = agent.state_dir().join("cache").join(&sha);
    std::fs::remove_file(&cache).unwrap();
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "failed", "{text}");
    assert!(text.contains("download failed"), "{text}");
    assert!(
        !text.contains("server:"),
        "the server was not tried: {text}"
    );
    assert!(text.contains("mirror:"), "{text}");
    // Not exclusive any more: the server is the last resort and the install succeeds.
    fx.req(
        reqwest::Method::PATCH,
        "/api/v1/depot/sources/mirror",
        Some(json!({"exclusive": false})),
    )
    .await;
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("downloaded from server"), "{text}");
}

/// A tar.gz script archive: `capstan-package.json` and its scripts.
fn build_script_archive(dir: &Path, name: &str, marker: &str) -> PathBuf {
    let src = dir.join(format!("{name}-src"));
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::write(
        src.join("capstan-package.json"),
        json!({
            "name": name, "version": "3.1", "platform": "linux", "arch": "any",
            "install": {"interpreter": "sh", "script": "bin/install.sh", "args": [marker]},
            "uninstall": {"interpreter": "sh", "script": "bin/uninstall.sh", "args": [marker]},
            "detection": {"type": "file_exists", "path": marker}
        })
        .to_string(),
    )
    .unwrap();
    std::fs::write(
        src.join("bin/install.sh"),
        "#!/bin/sh\nset -e\ncp \"$(dirname \"$0\")/payload.txt\" \"$1\"\necho installed to \"$1\"\n",
    )
    .unwrap();
    std::fs::write(src.join("bin/uninstall.sh"), "#!/bin/sh\nrm -f \"$1\"\n").unwrap();
    std::fs::write(src.join("bin/payload.txt"), "payload 3.1\n").unwrap();
    let out = dir.join(format!("{name}.tar.gz"));
    let st = sh(&format!(
        "tar -C {} -czf {} capstan-package.json bin",
        src.display(),
        out.display()
    ));
    assert!(st.status.success(), "{st:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_archive_installs_and_uninstalls_and_hostile_archives_are_refused() {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("arch");
    let marker = dir.path().join("installed.txt").display().to_string();
    let archive = build_script_archive(dir.path(), &name, &marker);
    let (status, up) = fx.upload(&archive, true).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["metadata"]["format"], "script_archive");
    assert_eq!(
        up["created"]["spec"]["install_command"],
        json!(["sh", "{dir}/bin/install.sh", marker])
    );
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(text.contains("unpacked"), "{text}");
    assert!(text.contains(&format!("installed to {marker}")), "{text}");
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "payload 3.1\n");
    let run = fx
        .software("uninstall", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert!(!Path::new(&marker).exists(), "{text}");

    // An archive with an entry escaping its directory: refused, nothing stored.
    let evil = dir.path().join("evil");
    std::fs::create_dir_all(evil.join("a")).unwrap();
    std::fs::write(
        evil.join("capstan-package.json"),
        json!({"name": "evil", "version": "1", "platform": "linux", "arch": "any",
               "install": {"interpreter": "sh", "script": "a/x.sh"}})
        .to_string(),
    )
    .unwrap();
    std::fs::write(evil.join("a/x.sh"), "true\n").unwrap();
    let evil_tgz = dir.path().join("evil.tar.gz");
    // GNU tar keeps `../` when told to with --transform on a path it adds.
    let st = sh(&format!(
        "tar -C {} -czf {} --transform 's,^a/x.sh,../../x.sh,' capstan-package.json a/x.sh",
        evil.display(),
        evil_tgz.display()
    ));
    assert!(st.status.success(), "{st:?}");
    let listing = sh(&format!("tar -tzf {}", evil_tgz.display()));
    assert!(
        String::from_utf8_lossy(&listing.stdout).contains("../"),
        "the fixture really escapes: {listing:?}"
    );
    let blobs_before = fx.get("/api/v1/depot/blobs").await["total"].clone();
    let (status, body) = fx.upload(&evil_tgz, true).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["message"].as_str().unwrap().contains(".."), "{body}");
    assert_eq!(fx.get("/api/v1/depot/blobs").await["total"], blobs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_rpm_and_pacman_packages_install_into_test_roots_through_the_agent() {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();

    // rpm: built with rpmbuild, parsed, installed with `rpm --root` into a private root.
    let name = unique("rpm");
    let top = dir.path().join("rpmbuild");
    std::fs::create_dir_all(top.join("SPECS")).unwrap();
    std::fs::write(
        top.join("SPECS/t.spec"),
        format!(
            "Name: {name}\nVersion: 1.2\nRelease: 3\nSummary: e2e\nLicense: MIT\nBuildArch: noarch\n\
             %description\ne2e\n%install\nmkdir -p %{{buildroot}}/opt/{name}\n\
             echo hi > %{{buildroot}}/opt/{name}/hello.txt\n%files\n/opt/{name}/hello.txt\n"
        ),
    )
    .unwrap();
    let st = sh(&format!(
        "rpmbuild -bb --define '_topdir {}' {}/SPECS/t.spec",
        top.display(),
        top.display()
    ));
    assert!(st.status.success(), "{st:?}");
    let rpm = top.join(format!("RPMS/noarch/{name}-1.2-3.noarch.rpm"));
    let root = dir.path().join("rpm-root");
    std::fs::create_dir_all(&root).unwrap();
    assert!(
        sh(&format!("rpm --root {} --initdb", root.display()))
            .status
            .success()
    );
    let (status, up) = fx.upload(&rpm, false).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["metadata"]["format"], "rpm");
    assert_eq!(up["suggested"]["version"], "1.2-3");
    assert_eq!(up["suggested"]["spec"]["detection"]["manager"], "rpm");
    let mut req = up["suggested"].clone();
    let r = root.display().to_string();
    req["spec"]["install_command"] = json!(["rpm", "--root", r, "--nodeps", "--upgrade", "{file}"]);
    req["spec"]["uninstall_command"] = json!(["rpm", "--root", r, "--erase", "{package}"]);
    req["spec"]["detection"] =
        json!({"type": "file_exists", "path": format!("{r}/opt/{name}/hello.txt")});
    fx.post("/api/v1/packages", json!({"name": name})).await;
    fx.post(&format!("/api/v1/packages/{name}/versions"), req)
        .await;
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    let q = sh(&format!("rpm --root {r} -q {name}"));
    assert_eq!(
        String::from_utf8_lossy(&q.stdout).trim(),
        format!("{name}-1.2-3.noarch")
    );
    let run = fx
        .software("uninstall", json!({"package": name}), &device)
        .await;
    assert_eq!(run["state"], "succeeded", "{}", attempt_text(&run));
    assert!(!sh(&format!("rpm --root {r} -q {name}")).status.success());

    // pacman: a .pkg.tar.zst built with bsdtar, installed with `pacman --root`.
    let name = unique("pac");
    let pkg = dir.path().join("pac-pkg");
    std::fs::create_dir_all(pkg.join(format!("opt/{name}"))).unwrap();
    std::fs::write(pkg.join(format!("opt/{name}/hello.txt")), "hi\n").unwrap();
    std::fs::write(
        pkg.join(".PKGINFO"),
        format!(
            "pkgname = {name}\npkgbase = {name}\npkgver = 2.0-1\npkgdesc = e2e\n\
             builddate = 1700000000\npackager = tests\nsize = 3\narch = any\nlicense = MIT\n"
        ),
    )
    .unwrap();
    let file = dir.path().join(format!("{name}-2.0-1-any.pkg.tar.zst"));
    let st = sh(&format!(
        "cd {} && bsdtar -cf - .PKGINFO opt | zstd -q > {}",
        pkg.display(),
        file.display()
    ));
    assert!(st.status.success(), "{st:?}");
    let root = dir.path().join("pac-root");
    std::fs::create_dir_all(root.join("var/lib/pacman")).unwrap();
    let conf = dir.path().join("pacman.conf");
    std::fs::write(&conf, "[options]\nSigLevel = Never\nArchitecture = auto\n").unwrap();
    let (status, up) = fx.upload(&file, false).await;
    assert_eq!(status, 201, "{up}");
    assert_eq!(up["metadata"]["format"], "pacman");
    let r = root.display().to_string();
    let common = |op: &str| {
        json!([
            "pacman",
            "--root",
            r,
            "--dbpath",
            format!("{r}/var/lib/pacman"),
            "--config",
            conf.display().to_string(),
            "--noconfirm",
            op
        ])
    };
    let mut install = common("--upgrade");
    install.as_array_mut().unwrap().push(json!("{file}"));
    let mut remove = common("--remove");
    remove.as_array_mut().unwrap().push(json!("{package}"));
    let mut req = up["suggested"].clone();
    req["spec"]["install_command"] = install;
    req["spec"]["uninstall_command"] = remove;
    req["spec"]["detection"] =
        json!({"type": "file_exists", "path": format!("{r}/opt/{name}/hello.txt")});
    fx.post("/api/v1/packages", json!({"name": name})).await;
    fx.post(&format!("/api/v1/packages/{name}/versions"), req)
        .await;
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    let q = sh(&format!(
        "pacman --root {r} --dbpath {r}/var/lib/pacman -Q {name}"
    ));
    assert_eq!(
        String::from_utf8_lossy(&q.stdout).trim(),
        format!("{name} 2.0-1")
    );
    let run = fx
        .software("uninstall", json!({"package": name}), &device)
        .await;
    assert_eq!(run["state"], "succeeded", "{}", attempt_text(&run));
    assert!(!root.join(format!("opt/{name}/hello.txt")).exists());
}

/// A local apt repository registered for the test and removed afterwards.
struct AptRepo {
    list: PathBuf,
    dir: tempfile::TempDir,
}

impl AptRepo {
    fn new(debs: &[PathBuf]) -> AptRepo {
        let dir = tempfile::tempdir().unwrap();
        for d in debs {
            std::fs::copy(d, dir.path().join(d.file_name().unwrap())).unwrap();
        }
        let st = sh(&format!(
            "cd {} && dpkg-scanpackages --multiversion . /dev/null > Packages 2>/dev/null",
            dir.path().display()
        ));
        assert!(st.status.success(), "{st:?}");
        let list = PathBuf::from(format!(
            "/etc/apt/sources.list.d/capstan-e2e-{}.list",
            dir.path()
                .file_name()
                .unwrap()
                .to_string_lossy()
                .replace('.', "")
        ));
        std::fs::write(
            &list,
            format!("deb [trusted=yes] file:{} ./\n", dir.path().display()),
        )
        .unwrap();
        let st = sh(&format!(
            "apt-get update -qq -o Dir::Etc::sourcelist={} -o Dir::Etc::sourceparts=- -o APT::Get::List-Cleanup=0",
            list.display()
        ));
        assert!(st.status.success(), "apt-get update: {st:?}");
        AptRepo { list, dir }
    }
}

impl Drop for AptRepo {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.list);
        // apt names the index after the repository's path.
        let stem = self.dir.path().display().to_string().replace('/', "_");
        for e in std::fs::read_dir("/var/lib/apt/lists")
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apt_package_manager_version_installs_a_pinned_version_from_a_repository() {
    let _db = capstan_e2e::package_db_lock();
    let fx = start().await;
    let agent = fx.agent().await;
    let device = agent.device_id().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let name = unique("apt");
    let _cleanup = Cleanup(name.clone());
    let v1 = build_deb(dir.path(), &name, "1.0");
    let v2 = build_deb(dir.path(), &name, "2.0");
    let _repo = AptRepo::new(&[v1, v2]);
    fx.post("/api/v1/packages", json!({"name": name})).await;
    let v = fx
        .post(
            &format!("/api/v1/packages/{name}/versions"),
            json!({"version": "1.0", "spec": {
                "installer_type": "package_manager",
                "manager_package": {"manager": "apt", "name": name, "version": "1.0"},
                "detection": {"type": "package", "manager": "dpkg", "name": name,
                              "version": {"op": "eq", "version": "1.0"}}}}),
        )
        .await;
    assert_eq!(
        v["spec"]["install_command"],
        json!([
            "apt-get",
            "install",
            "--yes",
            "--allow-downgrades",
            format!("{name}=1.0")
        ])
    );
    let run = fx
        .software("install", json!({"package": name}), &device)
        .await;
    let text = attempt_text(&run);
    assert_eq!(run["state"], "succeeded", "{text}");
    assert_eq!(
        dpkg_version(&name).as_deref(),
        Some("1.0"),
        "the pin, not the newest: {text}"
    );
    let run = fx
        .software("uninstall", json!({"package": name}), &device)
        .await;
    assert_eq!(run["state"], "succeeded", "{}", attempt_text(&run));
    assert_eq!(dpkg_version(&name), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_msi_built_with_wixl_becomes_a_windows_version_with_an_msi_detection_rule() {
    let fx = start().await;
    let dir = tempfile::tempdir().unwrap();
    let wxs = dir.path().join("t.wxs");
    std::fs::write(
        &wxs,
        r#"<?xml version="1.0"?>
<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">
  <Product Id="{11111111-2222-3333-4444-555555555555}" Name="Capstan E2E Tool" Language="1033"
           Version="4.5.6" Manufacturer="Capstan Tests" UpgradeCode="{99999999-8888-7777-6666-555555555555}">
    <Package InstallerVersion="200" Compressed="yes" Platform="x64"/>
    <Media Id="1" Cabinet="t.cab" EmbedCab="yes"/>
    <Directory Id="TARGETDIR" Name="SourceDir">
      <Directory Id="ProgramFiles64Folder">
        <Directory Id="INSTALLDIR" Name="CapstanE2E">
          <Component Id="Main" Guid="{AAAAAAAA-BBBB-CCCC-DDDD-EEEEEEEEEEEE}" Win64="yes">
            <File Id="Readme" Source="readme.txt"/>
          </Component>
        </Directory>
      </Directory>
    </Directory>
    <Feature Id="All" Level="1"><ComponentRef Id="Main"/></Feature>
  </Product>
</Wix>"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("readme.txt"), "hello\n").unwrap();
    let msi = dir.path().join("tool.msi");
    let st = sh(&format!(
        "cd {} && wixl --arch x64 -o {} t.wxs",
        dir.path().display(),
        msi.display()
    ));
    assert!(st.status.success(), "wixl: {st:?}");
    let (status, up) = fx.upload(&msi, true).await;
    assert_eq!(status, 201, "{up}");
    let v = &up["created"];
    assert_eq!(up["package"], "capstan-e2e-tool");
    assert_eq!(v["version"], "4.5.6");
    assert_eq!(v["artifacts"][0]["platform"], "windows");
    assert_eq!(v["artifacts"][0]["arch"], "x86_64");
    assert_eq!(
        v["spec"]["detection"],
        json!({"type": "msi_product", "product_code": "{11111111-2222-3333-4444-555555555555}",
               "version": {"op": "gte", "version": "4.5.6"}})
    );
    assert_eq!(v["spec"]["install_command"][0], "msiexec");
    assert_eq!(v["spec"]["success_exit_codes"], json!([0, 1707]));
    assert_eq!(v["spec"]["soft_reboot_exit_codes"], json!([3010]));
    assert_eq!(v["spec"]["hard_reboot_exit_codes"], json!([1641]));
    let p = fx.get("/api/v1/packages/capstan-e2e-tool").await;
    assert_eq!(p["display_name"], "Capstan E2E Tool");
    assert_eq!(p["publisher"], "Capstan Tests");
}

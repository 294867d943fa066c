//! The `capstan` binary end to end against a scripted HTTP server on a loopback port: exit
//! statuses, the `error: <message> (<code>)` line, credentials from the environment and from
//! the file `login` writes, and the refusal to delete without confirmation. The real server is
//! exercised by the workspace's end-to-end tests; these pin the CLI's own behaviour.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    target: String,
    authorization: Option<String>,
    body: String,
}

type Handler = dyn Fn(&Seen) -> (u16, String) + Send + Sync;

/// A one-request-per-connection HTTP/1.1 server answering with `handler`.
struct FakeServer {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl FakeServer {
    fn start(handler: impl Fn(&Seen) -> (u16, String) + Send + Sync + 'static) -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let mut parts = request_line.split_whitespace();
                let method = parts.next().unwrap_or_default().to_string();
                let target = parts.next().unwrap_or_default().to_string();
                let (mut length, mut authorization) = (0usize, None);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() || line == "\r\n" || line.is_empty() {
                        break;
                    }
                    if let Some((name, value)) = line.trim_end().split_once(": ") {
                        match name.to_ascii_lowercase().as_str() {
                            "content-length" => length = value.parse().unwrap_or(0),
                            "authorization" => authorization = Some(value.to_string()),
                            _ => {}
                        }
                    }
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).ok();
                let seen = Seen {
                    method,
                    target,
                    authorization,
                    body: String::from_utf8_lossy(&body).into_owned(),
                };
                let (status, reply) = handler(&seen);
                log.lock().unwrap().push(seen);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                stream.write_all(resp.as_bytes()).ok();
            }
        });
        FakeServer { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn error_body(status: u16, code: &str, message: &str) -> (u16, String) {
    (
        status,
        serde_json::json!({"status": status, "code": code, "message": message}).to_string(),
    )
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .unwrap()
}

/// A sandbox: its own config path and HOME, no CAPSTAN_* from the developer's shell.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("conf").join("cli.toml")
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_capstan"));
        cmd.args(args)
            .env_remove("CAPSTAN_SERVER")
            .env_remove("CAPSTAN_TOKEN")
            .env_remove("CAPSTAN_FINGERPRINT")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", self.dir.path())
            .env("CAPSTAN_CONFIG", self.config())
            .envs(env.iter().copied())
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        child.wait_with_output().unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const USER: &str =
    r#"{"id":"u1","username":"alice","role":"operator","created_at_ms":1700000000000}"#;

#[test]
fn without_credentials_commands_say_how_to_log_in() {
    let sb = Sandbox::new();
    let out = sb.run(&["devices", "list"], &[], None);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "error: not logged in: run `capstan login --server URL --username NAME` or set CAPSTAN_SERVER and CAPSTAN_TOKEN (not_logged_in)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn devices_list_json_is_the_array_of_devices() {
    let server = FakeServer::start(|_| (200, fixture("devices_page.json")));
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "capt_test"),
    ];
    let out = sb.run(
        &["devices", "list", "--status", "online", "-o", "json"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().expect("a JSON array, not the page wrapper");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["hostname"], "web-01");
    let seen = server.seen();
    assert_eq!(seen[0].target, "/api/v1/devices?status=online");
    assert_eq!(seen[0].authorization.as_deref(), Some("Bearer capt_test"));
}

#[test]
fn devices_list_all_follows_every_page() {
    let server = FakeServer::start(|seen| {
        let offset: usize = seen
            .target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("offset="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let items: Vec<serde_json::Value> = (offset..(offset + 2).min(5))
            .map(|i| {
                serde_json::json!({"id": format!("d{i}"), "hostname": format!("h{i}"), "online": true,
                    "last_seen_at_ms": null, "enrolled_at_ms": 0, "os_family": "linux",
                    "os_name": null, "os_version": null, "agent_version": null, "tags": []})
            })
            .collect();
        (
            200,
            serde_json::json!({"items": items, "total": 5, "offset": offset, "limit": 2})
                .to_string(),
        )
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &["devices", "list", "--all", "--limit", "2", "-o", "json"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<&str> = rows.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["d0", "d1", "d2", "d3", "d4"]);
    assert_eq!(server.seen().len(), 3);
}

#[test]
fn server_errors_become_documented_exit_codes() {
    let server = FakeServer::start(|seen| match seen.target.as_str() {
        "/api/v1/devices/missing" => error_body(404, "not_found", "device missing not found"),
        "/api/v1/devices/d1/revoke" => error_body(
            403,
            "forbidden",
            "role viewer lacks permission devices.delete",
        ),
        "/api/v1/auth/me" => error_body(401, "unauthenticated", "session expired"),
        _ => error_body(500, "internal", "boom"),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "caps_x"),
    ];

    let out = sb.run(&["devices", "show", "missing"], &env, None);
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(
        stderr(&out),
        "error: device missing not found (not_found)\n"
    );

    let out = sb.run(&["devices", "revoke", "d1"], &env, None);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(
        stderr(&out),
        "error: role viewer lacks permission devices.delete (forbidden)\n"
    );

    let out = sb.run(&["whoami"], &env, None);
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stderr(&out).ends_with("(unauthenticated)\n"),
        "{}",
        stderr(&out)
    );

    let out = sb.run(&["tokens", "list"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out), "error: boom (internal)\n");
}

#[test]
fn unreachable_server_is_a_transport_failure() {
    let sb = Sandbox::new();
    // Bind and drop a listener so the port is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("CAPSTAN_SERVER", url.as_str()), ("CAPSTAN_TOKEN", "t")];
    let out = sb.run(&["whoami"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!("error: cannot reach {url}/api/v1/auth/me: ")),
        "{err}"
    );
    assert!(err.ends_with("(transport)\n"), "{err}");
}

#[test]
fn login_saves_a_private_session_that_later_commands_use() {
    let server = FakeServer::start(|seen| match (seen.method.as_str(), seen.target.as_str()) {
        ("POST", "/api/v1/auth/login") => {
            let req: serde_json::Value = serde_json::from_str(&seen.body).unwrap();
            if req["username"] == "alice" && req["password"] == "pass word" {
                (
                    200,
                    format!(
                        r#"{{"token":"caps_saved","expires_at_ms":1900000000000,"user":{USER}}}"#
                    ),
                )
            } else {
                error_body(401, "invalid_credentials", "wrong username or password")
            }
        }
        ("GET", "/api/v1/auth/me") => (200, USER.to_string()),
        ("POST", "/api/v1/auth/logout") => (204, String::new()),
        _ => error_body(404, "route_not_found", "no route"),
    });
    let sb = Sandbox::new();

    let out = sb.run(
        &["login", "--server", &server.url, "-u", "alice"],
        &[],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "error: wrong username or password (invalid_credentials)\n"
    );
    assert!(
        !sb.config().exists(),
        "a failed login must not write the config"
    );

    let out = sb.run(
        &[
            "login",
            "--server",
            &format!("{}/", server.url),
            "--username",
            "alice",
            "-o",
            "json",
        ],
        &[],
        Some("pass word\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["username"], "alice");
    assert!(
        !stdout(&out).contains("caps_saved"),
        "the session token is never printed"
    );
    let saved = std::fs::read_to_string(sb.config()).unwrap();
    assert!(saved.contains("token = \"caps_saved\""), "{saved}");
    assert!(
        saved.contains(&format!("server = \"{}\"", server.url)),
        "{saved}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(sb.config()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    let out = sb.run(&["whoami"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("alice"));
    let me = server
        .seen()
        .into_iter()
        .find(|s| s.target == "/api/v1/auth/me")
        .unwrap();
    assert_eq!(me.authorization.as_deref(), Some("Bearer caps_saved"));

    // The saved session belongs to that server only.
    let out = sb.run(&["whoami", "--server", "http://127.0.0.1:9"], &[], None);
    assert_eq!(out.status.code(), Some(3));

    let out = sb.run(&["logout"], &[], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let saved = std::fs::read_to_string(sb.config()).unwrap();
    assert!(!saved.contains("caps_saved"), "{saved}");
    assert!(
        saved.contains("server ="),
        "the server is kept for the next login: {saved}"
    );
    let out = sb.run(&["whoami"], &[], None);
    assert_eq!(out.status.code(), Some(3));
}

#[test]
fn delete_without_a_terminal_needs_yes_and_sends_nothing() {
    let server = FakeServer::start(|_| (204, String::new()));
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(&["devices", "delete", "d1"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("pass --yes") && err.ends_with("(confirmation_required)\n"),
        "{err}"
    );
    assert!(server.seen().is_empty());

    let out = sb.run(&["devices", "delete", "d1", "--yes"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("DELETE", "/api/v1/devices/d1")
    );
    assert!(
        out.stdout.is_empty(),
        "actions without data print nothing on stdout"
    );
}

#[test]
fn tokens_create_sends_the_request_and_prints_the_secret() {
    let server = FakeServer::start(|_| (201, fixture("created_enrollment_token.json")));
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &[
            "tokens",
            "create",
            "--name",
            "lab",
            "--expires-in",
            "12h",
            "--max-uses",
            "5",
            "--tag",
            "a",
            "--tag",
            "b",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("cape_3q2+7w9Zk1Xb0aQ8RkVYpJmH4tF"));
    let sent: serde_json::Value = serde_json::from_str(&server.seen()[0].body).unwrap();
    assert_eq!(
        sent,
        serde_json::json!({"name": "lab", "expires_in_secs": 43200, "max_uses": 5, "default_tags": ["a", "b"]})
    );
}

#[test]
fn completions_and_usage_errors() {
    let sb = Sandbox::new();
    let out = sb.run(&["completions", "bash"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("capstan"));
    let out = sb.run(&["devices", "list", "--status", "sleeping"], &[], None);
    assert_eq!(out.status.code(), Some(2));
    let out = sb.run(&["--help"], &[], None);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("devices"));
}

#[test]
fn passwd_reads_the_current_and_the_new_password_from_stdin() {
    let server = FakeServer::start(|seen| {
        let req: serde_json::Value = serde_json::from_str(&seen.body).unwrap_or_default();
        if req["current_password"] == "old pass" {
            (204, String::new())
        } else {
            error_body(401, "invalid_credentials", "the current password is wrong")
        }
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "caps_x"),
    ];
    let out = sb.run(&["passwd"], &env, Some("old pass\nnew password 1\n"));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    assert!(
        stderr(&out).contains("Password changed"),
        "{}",
        stderr(&out)
    );
    let seen = server.seen();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("POST", "/api/v1/auth/password")
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&seen[0].body).unwrap(),
        serde_json::json!({"current_password": "old pass", "new_password": "new password 1"})
    );

    let out = sb.run(&["passwd"], &env, Some("wrong\nnew password 1\n"));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        stderr(&out),
        "error: the current password is wrong (invalid_credentials)\n"
    );

    // Only one line: nothing is sent.
    let out = sb.run(&["passwd"], &env, Some("old pass\n"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with("(invalid_input)\n"),
        "{}",
        stderr(&out)
    );
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn users_update_sends_only_the_requested_changes() {
    let server = FakeServer::start(|seen| {
        match seen.method.as_str() {
        "PATCH" => (
            200,
            r#"{"id":"u1","username":"bob","role":"viewer","created_at_ms":1700000000000,"disabled":true}"#.into(),
        ),
        _ => error_body(404, "route_not_found", "no route"),
    }
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &[
            "users",
            "update",
            "u1",
            "--role",
            "viewer",
            "--disable",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let user: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(user["disabled"], true);
    let out = sb.run(
        &["users", "update", "u1", "--enable", "--reset-password"],
        &env,
        Some("a new password\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("State:"), "{}", stdout(&out));
    let seen = server.seen();
    assert_eq!(seen[0].target, "/api/v1/users/u1");
    let bodies: Vec<serde_json::Value> = seen
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            serde_json::json!({"role": "viewer", "disabled": true}),
            serde_json::json!({"disabled": false, "password": "a new password"}),
        ]
    );
}

#[test]
fn users_delete_without_a_terminal_needs_yes() {
    let server = FakeServer::start(|seen| match seen.target.as_str() {
        "/api/v1/users/me" => error_body(409, "conflict", "you cannot delete yourself"),
        _ => (204, String::new()),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(&["users", "delete", "u1"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with("(confirmation_required)\n"),
        "{}",
        stderr(&out)
    );
    assert!(server.seen().is_empty());
    let out = sb.run(&["users", "delete", "u1", "--yes"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        (
            server.seen()[0].method.as_str(),
            server.seen()[0].target.as_str()
        ),
        ("DELETE", "/api/v1/users/u1")
    );
    let out = sb.run(&["users", "delete", "me", "-y"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        "error: you cannot delete yourself (conflict)\n"
    );
}

#[test]
fn audit_list_all_follows_next_before() {
    let server = FakeServer::start(|seen| {
        let before: i64 = seen
            .target
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("before="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(6);
        // Ids 5..=1, two per page.
        let items: Vec<serde_json::Value> = (1..before)
            .rev()
            .take(2)
            .map(|id| {
                serde_json::json!({"id": id, "at_ms": 1_767_225_600_000i64, "actor": "user:admin",
                    "action": "device.delete", "target": format!("d{id}"), "details": {}})
            })
            .collect();
        let next = items
            .last()
            .and_then(|e| e["id"].as_i64())
            .filter(|id| *id > 1);
        (
            200,
            serde_json::json!({"items": items, "next_before": next}).to_string(),
        )
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &[
            "audit", "list", "--all", "--limit", "2", "--actor", "admin", "-o", "json",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let ids: Vec<i64> = rows.iter().map(|r| r["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, [5, 4, 3, 2, 1]);
    let targets: Vec<String> = server.seen().into_iter().map(|s| s.target).collect();
    assert_eq!(
        targets,
        [
            "/api/v1/audit-log?limit=2&actor=user%3Aadmin",
            "/api/v1/audit-log?before=4&limit=2&actor=user%3Aadmin",
            "/api/v1/audit-log?before=2&limit=2&actor=user%3Aadmin",
        ]
    );

    let out = sb.run(&["audit", "list", "--limit", "2"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("TIME"), "{text}");
    assert!(text.contains("--before 4"), "{text}");
}

#[test]
fn bulk_tags_and_group_changes_send_ids_and_filters() {
    let server = FakeServer::start(|seen| match (seen.method.as_str(), seen.target.as_str()) {
        ("POST", "/api/v1/tags/add" | "/api/v1/groups/Berlin%20Mitte/members/remove") => {
            (200, r#"{"matched":3,"changed":2}"#.into())
        }
        _ => error_body(404, "route_not_found", "no route"),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &[
            "tags",
            "add",
            "web",
            "prod",
            "--device",
            "d1",
            "--filter-group",
            "Europe",
            "--filter-status",
            "online",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "2 of 3 matched device(s) tagged web, prod; 1 already were.\n"
    );
    let out = sb.run(
        &[
            "groups",
            "remove",
            "Berlin Mitte",
            "--filter-field",
            "tier=gold",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r, serde_json::json!({"matched": 3, "changed": 2}));
    // Neither ids nor filters: refused before any request.
    let out = sb.run(&["tags", "remove", "web"], &env, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--device"), "{}", stderr(&out));

    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let bodies: Vec<serde_json::Value> = seen
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    assert_eq!(
        bodies,
        [
            serde_json::json!({"tags": ["web", "prod"], "device_ids": ["d1"],
                               "filter": {"status": "online", "group": "Europe"}}),
            serde_json::json!({"filter": {"field": "tier=gold"}}),
        ]
    );
}

#[test]
fn fields_set_sends_the_value_as_the_field_type() {
    let server = FakeServer::start(|seen| match (seen.method.as_str(), seen.target.as_str()) {
        ("GET", "/api/v1/custom-fields") => (200, fixture("custom_fields.json")),
        ("PUT", _) => (204, String::new()),
        _ => error_body(404, "route_not_found", "no route"),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    for (name, value) in [("rack_u", "12"), ("critical", "false"), ("tier", "gold")] {
        let out = sb.run(&["fields", "set", "d1", name, value], &env, None);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let out = sb.run(&["fields", "set", "d1", "nope", "1"], &env, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let puts: Vec<(String, serde_json::Value)> = server
        .seen()
        .into_iter()
        .filter(|s| s.method == "PUT")
        .map(|s| (s.target, serde_json::from_str(&s.body).unwrap()))
        .collect();
    assert_eq!(
        puts,
        [
            (
                "/api/v1/devices/d1/custom-fields/rack_u".to_string(),
                serde_json::json!({"value": 12.0})
            ),
            (
                "/api/v1/devices/d1/custom-fields/critical".to_string(),
                serde_json::json!({"value": false})
            ),
            (
                "/api/v1/devices/d1/custom-fields/tier".to_string(),
                serde_json::json!({"value": "gold"})
            ),
        ]
    );
}

#[test]
fn groups_delete_without_a_terminal_needs_yes() {
    let server = FakeServer::start(|seen| match seen.method.as_str() {
        "DELETE" => (204, String::new()),
        _ => error_body(404, "route_not_found", "no route"),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(&["groups", "delete", "Berlin"], &env, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(server.seen().is_empty());
    let out = sb.run(&["groups", "delete", "Berlin", "--yes"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(server.seen()[0].target, "/api/v1/groups/Berlin");
}

#[test]
fn dynamic_groups_are_created_previewed_and_explained_from_rule_files() {
    let explanation = serde_json::json!({
        "group_id": "g1", "device_id": "d1", "kind": "dynamic", "member": false,
        "explanation": {"matched": false, "text": "all of 2 conditions hold: false", "path": "",
            "children": [
                {"matched": true, "text": "os.id is \"debian\", which equals \"debian\": true", "path": "/all/0", "children": []},
                {"matched": false, "text": "has tag \"web\": false", "path": "/all/1", "children": []}
            ]}
    });
    let preview = serde_json::json!({"total": 3, "devices": [{
        "id": "d1", "hostname": "web-1", "online": true, "last_seen_at_ms": null,
        "enrolled_at_ms": 0, "os_family": "linux", "os_name": null, "os_version": null,
        "agent_version": null, "tags": []}]});
    let group = serde_json::json!({"id": "g1", "name": "Debian", "description": "", "parent_id": null,
        "kind": "dynamic", "rule": {"tag": "web"}, "direct_members": 0, "members": 0,
        "created_at_ms": 0, "updated_at_ms": 0});
    let (p, e, g) = (
        preview.to_string(),
        explanation.to_string(),
        group.to_string(),
    );
    let server =
        FakeServer::start(
            move |seen| match (seen.method.as_str(), seen.target.as_str()) {
                ("POST", "/api/v1/groups/preview") => (200, p.clone()),
                ("GET", "/api/v1/groups/Debian/explain/d1") => (200, e.clone()),
                ("POST", "/api/v1/groups") | ("PATCH", "/api/v1/groups/Debian") => (200, g.clone()),
                _ => error_body(404, "route_not_found", "no route"),
            },
        );
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let rule_file = sb.dir.path().join("rule.json");
    std::fs::write(&rule_file, r#"{"tag": "web"}"#).unwrap();
    let rule_path = rule_file.to_str().unwrap();

    let out = sb.run(
        &["groups", "preview", "--rule", "-", "--limit", "1"],
        &env,
        Some(r#"{"all": []}"#),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("web-1"), "{text}");
    assert!(
        text.contains("3 device(s) match; showing the first 1"),
        "{text}"
    );

    let out = sb.run(&["groups", "explain", "Debian", "d1"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "Device d1 is not a member of group g1.\n\
         all of 2 conditions hold: false\n\
         \x20 os.id is \"debian\", which equals \"debian\": true\n\
         \x20 has tag \"web\": false\n"
    );

    let out = sb.run(
        &["groups", "create", "Debian", "--rule", rule_path],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(r#"{"tag":"web"}"#),
        "{}",
        stdout(&out)
    );
    let out = sb.run(
        &["groups", "edit", "Debian", "--rule", rule_path],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    // A file that is not JSON is refused before any request.
    std::fs::write(&rule_file, "{tag: web").unwrap();
    let out = sb.run(&["groups", "preview", "--rule", rule_path], &env, None);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("not valid JSON"), "{}", stderr(&out));

    let bodies: Vec<(String, serde_json::Value)> = server
        .seen()
        .iter()
        .filter(|s| !s.body.is_empty())
        .map(|s| (s.method.clone(), serde_json::from_str(&s.body).unwrap()))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                "POST".to_string(),
                serde_json::json!({"rule": {"all": []}, "limit": 1})
            ),
            (
                "POST".to_string(),
                serde_json::json!({"name": "Debian", "description": "", "kind": "dynamic", "rule": {"tag": "web"}})
            ),
            (
                "PATCH".to_string(),
                serde_json::json!({"rule": {"tag": "web"}})
            ),
        ]
    );
}

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
            // A command that refuses its arguments exits without reading its input; the
            // closed pipe is then the expected outcome, not a harness failure.
            match child.stdin.take().unwrap().write_all(input.as_bytes()) {
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                other => other.unwrap(),
            }
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
        &[
            "devices",
            "list",
            "--status",
            "online",
            "--os",
            "Debian GNU/Linux 12",
            "--model",
            "LENOVO 20XW",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().expect("a JSON array, not the page wrapper");
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[0]["hostname"], "web-01");
    let seen = server.seen();
    assert_eq!(
        seen[0].target,
        "/api/v1/devices?status=online&os=Debian+GNU%2FLinux+12&model=LENOVO+20XW"
    );
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

// ---------------------------------------------------------------------------------------------
// Jobs and scripts
// ---------------------------------------------------------------------------------------------

const JOB_ID: &str = "0190c3a4-0000-7000-8000-0000000000a1";

/// A `JobInfo` with the given run counts (state → n).
fn job_json(counts: &[(&str, u64)]) -> serde_json::Value {
    let mut c = serde_json::json!({"total": 0, "queued": 0, "delivered": 0, "running": 0,
        "rebooting": 0, "succeeded": 0, "failed": 0, "timed_out": 0, "cancelled": 0, "expired": 0});
    for (state, n) in counts {
        c[*state] = serde_json::json!(c[*state].as_u64().unwrap() + n);
        c["total"] = serde_json::json!(c["total"].as_u64().unwrap() + n);
    }
    serde_json::json!({"id": JOB_ID, "name": "check", "kind": "command",
        "spec": {"action": {"type": "command", "argv": ["check"]}},
        "targets": {"groups": ["web"]}, "retry": {}, "script_id": null, "script_version": null,
        "created_by": "user:alice", "created_at_ms": 1_767_225_600_000i64,
        "expires_at_ms": 1_767_312_000_000i64, "cancelled_at_ms": null, "counts": c})
}

/// A run as the run list has it.
fn run_json(device: &str, host: &str, state: &str, exit: Option<i32>) -> serde_json::Value {
    serde_json::json!({"id": format!("run-{device}"), "job_id": JOB_ID, "device_id": device,
        "hostname": host, "state": state, "attempt": 1, "exit_code": exit, "reason": null,
        "next_attempt_at_ms": null, "updated_at_ms": 1_767_225_601_000i64})
}

/// A run's detail with one attempt of `ms` milliseconds.
fn detail_json(
    device: &str,
    host: &str,
    state: &str,
    exit: i32,
    ms: i64,
    stdout: &str,
    stderr: &str,
) -> serde_json::Value {
    let mut d = run_json(device, host, state, Some(exit));
    let start = 1_767_225_600_500i64;
    d["attempts"] = serde_json::json!([{"attempt": 1, "outcome": state, "exit_code": exit,
        "error": null, "delivered_at_ms": start - 100, "started_at_ms": start,
        "finished_at_ms": start + ms, "stdout": stdout, "stderr": stderr,
        "stdout_bytes": stdout.len(), "stderr_bytes": stderr.len(),
        "stdout_truncated": false, "stderr_truncated": false}]);
    d["history"] = serde_json::json!([]);
    d
}

fn query_param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
    target
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
}

/// A server whose job moves on by one stage at every `GET /api/v1/jobs/{id}`: nothing done,
/// then db-01 succeeds, then web-01 fails, then web-02 succeeds. Run lists and details answer
/// from the stage the last job read reached, as a real server would.
fn staged_job_server() -> FakeServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let polls = Arc::new(AtomicUsize::new(0));
    FakeServer::start(move |seen| {
        let stage = polls.load(Ordering::SeqCst).min(3);
        // (device, hostname, state at the final stage, stage it ends at, exit, ms, out, err)
        let runs: [Run; 3] = [
            ("d1", "web-01", "failed", 2, 3, 1000, "", "disk full\n"),
            ("d2", "db-01", "succeeded", 1, 0, 200, "db ok\n", ""),
            ("d3", "web-02", "succeeded", 3, 0, 500, "web ok\n", ""),
        ];
        type Run = (
            &'static str,
            &'static str,
            &'static str,
            usize,
            i32,
            i64,
            &'static str,
            &'static str,
        );
        let state_now = |r: &Run| -> &'static str { if stage >= r.3 { r.2 } else { "running" } };
        let path = seen.target.split('?').next().unwrap_or_default();
        let jobs = format!("/api/v1/jobs/{JOB_ID}");
        match (seen.method.as_str(), path) {
            ("POST", "/api/v1/jobs") => (201, job_json(&[("queued", 3)]).to_string()),
            ("GET", p) if p == jobs => {
                let stage = (polls.fetch_add(1, Ordering::SeqCst) + 1).min(3);
                let mut counts: Vec<(&str, u64)> = Vec::new();
                for r in &runs {
                    counts.push((if stage >= r.3 { r.2 } else { "running" }, 1));
                }
                (200, job_json(&counts).to_string())
            }
            ("GET", p) if p == format!("{jobs}/runs") => {
                let want = query_param(&seen.target, "state");
                let items: Vec<serde_json::Value> = runs
                    .iter()
                    .filter(|r| want.is_none_or(|w| w == state_now(r)))
                    .map(|r| {
                        let exit = (state_now(r) != "running").then_some(r.4);
                        run_json(r.0, r.1, state_now(r), exit)
                    })
                    .collect();
                let total = items.len();
                (
                    200,
                    serde_json::json!({"items": items, "total": total}).to_string(),
                )
            }
            ("GET", p) => match runs
                .iter()
                .find(|r| p == format!("{jobs}/runs/run-{}", r.0))
            {
                Some(r) => (
                    200,
                    detail_json(r.0, r.1, state_now(r), r.4, r.5, r.6, r.7).to_string(),
                ),
                None => error_body(404, "not_found", "no such run"),
            },
            _ => error_body(404, "route_not_found", "no route"),
        }
    })
}

const STAGED_RESULTS: &str = "db-01: succeeded (exit 0, 0.2 s)
    db ok
web-01: failed (exit 3, 1.0 s)
  stderr:
    disk full
web-02: succeeded (exit 0, 0.5 s)
    web ok
Done: 2 succeeded, 1 failed, 0 timed out, 0 cancelled, 0 expired (job 0190c3a4-0000-7000-8000-0000000000a1).
";

#[test]
fn run_prints_each_result_once_as_it_arrives_and_fails_when_a_run_failed() {
    let server = staged_job_server();
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(&["run", "--group", "web", "--", "check"], &env, None);
    assert_eq!(stdout(&out), STAGED_RESULTS, "{}", stderr(&out));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("capstan jobs cancel {JOB_ID}")),
        "{err}"
    );
    assert!(
        err.ends_with(&format!(
            "error: 1 of 3 run(s) did not succeed; details: `capstan jobs runs {JOB_ID}`, retry: `capstan jobs retry {JOB_ID}` (runs_failed)\n"
        )),
        "{err}"
    );
    // Each run's detail was fetched exactly once, in the order the runs ended.
    let details: Vec<String> = server
        .seen()
        .into_iter()
        .map(|s| s.target)
        .filter(|t| t.contains("/runs/"))
        .collect();
    assert_eq!(
        details,
        [
            format!("/api/v1/jobs/{JOB_ID}/runs/run-d2"),
            format!("/api/v1/jobs/{JOB_ID}/runs/run-d1"),
            format!("/api/v1/jobs/{JOB_ID}/runs/run-d3"),
        ]
    );

    // Watching the finished job again prints every result (by state, then hostname).
    let out = sb.run(&["jobs", "watch", JOB_ID, "-o", "json"], &env, None);
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let hosts: Vec<&str> = lines
        .iter()
        .filter(|l| l["type"] == "result")
        .map(|l| l["hostname"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["db-01", "web-02", "web-01"]);
    assert_eq!(lines[2]["stderr"], "disk full\n");
    assert_eq!(lines[2]["exit_code"], 3);
    assert_eq!(lines[2]["duration_ms"], 1000);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["complete"], true);
    assert_eq!(summary["counts"]["failed"], 1);
    assert_eq!(summary["counts"]["total"], 3);
}

#[test]
fn run_without_failures_exits_zero_and_names_devices_sharing_a_hostname() {
    let server = FakeServer::start(|seen| {
        let path = seen.target.split('?').next().unwrap_or_default();
        match (seen.method.as_str(), path) {
            ("POST", "/api/v1/jobs") => (201, job_json(&[("succeeded", 3)]).to_string()),
            ("GET", p) if p.ends_with("/runs") => {
                let items = [
                    run_json("d1", "web-01", "succeeded", Some(0)),
                    run_json("d2", "vm", "succeeded", Some(0)),
                    run_json("d3", "vm", "succeeded", Some(0)),
                ];
                (
                    200,
                    serde_json::json!({"items": items, "total": 3}).to_string(),
                )
            }
            ("GET", p) if p.ends_with("/runs/run-d1") => (
                200,
                detail_json(
                    "d1",
                    "web-01",
                    "succeeded",
                    0,
                    50,
                    "a\tb\n\u{1b}[31mred\n",
                    "",
                )
                .to_string(),
            ),
            ("GET", p) if p.ends_with("/runs/run-d2") || p.ends_with("/runs/run-d3") => {
                let device = &p[p.len() - 2..];
                (
                    200,
                    detail_json(device, "vm", "succeeded", 0, 0, "", "").to_string(),
                )
            }
            _ => error_body(404, "route_not_found", "no route"),
        }
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(&["run", "--group", "g", "--", "x"], &env, None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "web-01: succeeded (exit 0, 0.1 s)\n    a\tb\n    \\x1b[31mred\n\
             vm [d2]: succeeded (exit 0, 0.0 s)\n\
             vm [d3]: succeeded (exit 0, 0.0 s)\n\
             Done: 3 succeeded, 0 failed, 0 timed out, 0 cancelled, 0 expired (job {JOB_ID}).\n"
        )
    );
}

#[test]
fn run_no_wait_sends_the_exact_request() {
    let server = FakeServer::start(|seen| match (seen.method.as_str(), seen.target.as_str()) {
        ("POST", "/api/v1/jobs") => (201, job_json(&[("queued", 2)]).to_string()),
        _ => error_body(404, "route_not_found", "no route"),
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let out = sb.run(
        &[
            "run",
            "--device",
            "d1",
            "--group",
            "web",
            "--group",
            "Berlin Mitte",
            "--follow-joins",
            "--timeout",
            "30s",
            "--expires",
            "2h",
            "--attempts",
            "3",
            "--backoff",
            "1m",
            "--run-as",
            "deploy",
            "--cwd",
            "/srv",
            "--env",
            "A=1=2",
            "--env",
            "EMPTY=",
            "--name",
            "grep logs",
            "--no-wait",
            "--",
            "grep",
            "-r",
            "a b; rm -rf / $(x)",
            "--",
            "/var/log",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{JOB_ID}\n"));
    assert!(
        stderr(&out).contains(&format!("capstan jobs watch {JOB_ID}")),
        "{}",
        stderr(&out)
    );

    let script = sb.dir.path().join("check.sh");
    std::fs::write(&script, "#!/usr/bin/env bash\necho \"$1\"\n").unwrap();
    let out = sb.run(
        &[
            "run",
            "--device",
            "d1",
            "--script",
            script.to_str().unwrap(),
            "--no-wait",
            "-o",
            "json",
            "--",
            "first arg",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let job: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(job["id"], JOB_ID);

    let out = sb.run(
        &[
            "run",
            "--group",
            "lab",
            "--reboot",
            "--no-wait",
            "--script",
            "-",
            "--interpreter",
            "python3",
        ],
        &env,
        Some("print(1)\n"),
    );
    assert_eq!(out.status.code(), Some(2), "--reboot and --script conflict");
    let out = sb.run(
        &[
            "run",
            "--group",
            "lab",
            "--no-wait",
            "--script",
            "-",
            "--interpreter",
            "python3",
        ],
        &env,
        Some("print(1)\n"),
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sb.run(
        &["run", "--group", "lab", "--reboot", "--no-wait"],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let bodies: Vec<serde_json::Value> = server
        .seen()
        .iter()
        .map(|s| serde_json::from_str(&s.body).unwrap())
        .collect();
    let default_retry = serde_json::json!({"max_attempts": 1, "backoff_secs": 60,
        "max_backoff_secs": 3600, "retry_on": ["failed", "timed_out", "interrupted"]});
    let spec = |action: serde_json::Value| {
        serde_json::json!({"action": action, "timeout_secs": 3600, "env": {},
            "post_script_always": false, "reboot_exit_codes": []})
    };
    assert_eq!(
        bodies,
        [
            serde_json::json!({
                "name": "grep logs",
                "spec": {
                    "action": {"type": "command",
                               "argv": ["grep", "-r", "a b; rm -rf / $(x)", "--", "/var/log"]},
                    "timeout_secs": 30,
                    "env": {"A": "1=2", "EMPTY": ""},
                    "working_dir": "/srv",
                    "run_as": "deploy",
                    "post_script_always": false,
                    "reboot_exit_codes": []
                },
                "targets": {"devices": ["d1"], "groups": ["web", "Berlin Mitte"],
                            "follow_group_joins": true},
                "expires_in_secs": 7200,
                "retry": {"max_attempts": 3, "backoff_secs": 60, "max_backoff_secs": 3600,
                          "retry_on": ["failed", "timed_out", "interrupted"]}
            }),
            serde_json::json!({
                "spec": spec(serde_json::json!({"type": "script", "interpreter": "bash",
                    "body": "#!/usr/bin/env bash\necho \"$1\"\n", "args": ["first arg"]})),
                "targets": {"devices": ["d1"], "groups": [], "follow_group_joins": false},
                "retry": default_retry
            }),
            serde_json::json!({
                "spec": spec(serde_json::json!({"type": "script", "interpreter": "python3",
                    "body": "print(1)\n", "args": []})),
                "targets": {"devices": [], "groups": ["lab"], "follow_group_joins": false},
                "retry": default_retry
            }),
            serde_json::json!({
                "spec": spec(serde_json::json!({"type": "reboot"})),
                "targets": {"devices": [], "groups": ["lab"], "follow_group_joins": false},
                "retry": default_retry
            }),
        ]
    );
}

#[test]
fn bad_run_input_is_refused_before_anything_is_sent() {
    let server = FakeServer::start(|_| (201, job_json(&[("queued", 1)]).to_string()));
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let perl = sb.dir.path().join("x.pl");
    std::fs::write(&perl, "#!/usr/bin/perl\nprint 1;\n").unwrap();
    let perl = perl.to_str().unwrap();
    for (argv, code, why) in [
        (&["run", "--", "ls"][..], 2, "--device"),
        (&["run", "--device", "d1"], 2, "<CMD>"),
        (
            &["run", "--device", "d1", "--env", "NOVALUE", "--", "ls"],
            2,
            "NAME=VALUE",
        ),
        (
            &["run", "--device", "d1", "--env", "=x", "--", "ls"],
            2,
            "no variable name",
        ),
        (
            &[
                "run",
                "--device",
                "d1",
                "--script",
                perl,
                "--interpreter",
                "zsh",
            ],
            2,
            "zsh",
        ),
        (
            &["run", "--device", "d1", "--interpreter", "sh", "--", "ls"],
            2,
            "--script",
        ),
        (
            &["run", "--device", "d1", "--reboot", "--", "ls"],
            2,
            "--reboot",
        ),
        (
            &["run", "--device", "d1", "--follow-joins", "--", "ls"],
            2,
            "--group",
        ),
        (
            &["run", "--device", "d1", "--backoff", "1m", "--", "ls"],
            2,
            "--attempts",
        ),
        (
            &["run", "--device", "d1", "--attempts", "21", "--", "ls"],
            2,
            "21",
        ),
        (
            &["run", "--device", "d1", "--timeout", "soon", "--", "ls"],
            2,
            "soon",
        ),
        (
            &["run", "--device", "d1", "--script", perl],
            1,
            "\"perl\", which Capstan does not run",
        ),
        (
            &["run", "--device", "d1", "--script", "/nonexistent/x.sh"],
            1,
            "reading the script",
        ),
        (
            &["jobs", "runs", JOB_ID, "--state", "done"],
            2,
            "unknown state",
        ),
        (
            &["scripts", "add", "s", "--file", perl, "--param", "n:int"],
            2,
            "unknown type",
        ),
    ] {
        let out = sb.run(argv, &env, None);
        assert_eq!(out.status.code(), Some(code), "{argv:?}: {}", stderr(&out));
        assert!(stderr(&out).contains(why), "{argv:?}: {}", stderr(&out));
    }
    assert!(server.seen().is_empty(), "{:?}", server.seen());
}

#[test]
fn jobs_list_show_runs_and_actions() {
    let server = FakeServer::start(|seen| {
        let path = seen.target.split('?').next().unwrap_or_default();
        match (seen.method.as_str(), path) {
            ("GET", "/api/v1/jobs") => (200, fixture("jobs_page.json")),
            ("GET", p) if p == format!("/api/v1/jobs/{JOB_ID}") => {
                let page: serde_json::Value =
                    serde_json::from_str(&fixture("jobs_page.json")).unwrap();
                (200, page["items"][0].to_string())
            }
            ("GET", p) if p.ends_with("/runs") => (200, fixture("runs_page.json")),
            ("POST", p) if p.ends_with("/cancel") || p.ends_with("/retry") => {
                (200, r#"{"changed":2}"#.into())
            }
            ("POST", "/api/v1/devices/d3/breaker/reset") => (200, r#"{"changed":1}"#.into()),
            ("GET", "/api/v1/breakers") => (200, fixture("breakers.json")),
            _ => error_body(404, "route_not_found", "no route"),
        }
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let ok = |argv: &[&str]| {
        let out = sb.run(argv, &env, None);
        assert_eq!(out.status.code(), Some(0), "{argv:?}: {}", stderr(&out));
        stdout(&out)
    };
    let text = ok(&["jobs", "list", "--limit", "3"]);
    assert!(text.starts_with("ID  "), "{text}");
    assert!(
        text.contains("Showing 1-3 of 7 jobs. Next page: --offset 3."),
        "{text}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_str(&ok(&["jobs", "list", "-o", "json"])).unwrap();
    assert_eq!(rows.len(), 3, "the array of jobs, not the page");

    let text = ok(&["jobs", "show", JOB_ID]);
    assert!(
        text.starts_with(&format!("Job:          {JOB_ID}\n")),
        "{text}"
    );
    assert!(text.contains("\nHOSTNAME  DEVICE  STATE"), "{text}");
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&["jobs", "show", JOB_ID, "-o", "json"])).unwrap();
    assert_eq!(shown["id"], JOB_ID);
    assert_eq!(shown["runs"].as_array().map(Vec::len), Some(5));

    let text = ok(&["jobs", "runs", JOB_ID, "--state", "timed_out"]);
    assert!(text.contains("web-02    d3      timed_out"), "{text}");
    assert_eq!(
        ok(&["jobs", "cancel", JOB_ID, "--run", "d1"]),
        "2 run(s) cancelled; running processes are being killed.\n"
    );
    assert_eq!(
        ok(&["jobs", "retry", JOB_ID, "-o", "json"]),
        "{\n  \"changed\": 2\n}\n"
    );
    assert!(ok(&["jobs", "breakers", "--all"]).contains("open since"));
    assert_eq!(
        ok(&["jobs", "breaker-reset", "d3"]),
        "1 run(s) held by the breaker queued again.\n"
    );

    let targets: Vec<String> = server
        .seen()
        .into_iter()
        .map(|s| format!("{} {}", s.method, s.target))
        .collect();
    assert_eq!(
        targets,
        [
            "GET /api/v1/jobs?limit=3".to_string(),
            "GET /api/v1/jobs".to_string(),
            format!("GET /api/v1/jobs/{JOB_ID}"),
            format!("GET /api/v1/jobs/{JOB_ID}/runs?limit=500"),
            format!("GET /api/v1/jobs/{JOB_ID}"),
            format!("GET /api/v1/jobs/{JOB_ID}/runs?limit=500"),
            format!("GET /api/v1/jobs/{JOB_ID}/runs?state=timed_out"),
            format!("POST /api/v1/jobs/{JOB_ID}/runs/d1/cancel"),
            format!("POST /api/v1/jobs/{JOB_ID}/retry"),
            "GET /api/v1/breakers?open=false".to_string(),
            "POST /api/v1/devices/d3/breaker/reset".to_string(),
        ]
    );
}

#[test]
fn scripts_run_converts_arguments_by_type_and_refuses_bad_ones_without_running() {
    let server = FakeServer::start(|seen| {
        let scripts: serde_json::Value = serde_json::from_str(&fixture("scripts.json")).unwrap();
        match (seen.method.as_str(), seen.target.as_str()) {
            ("GET", "/api/v1/scripts/restart-service") => (200, scripts[0].to_string()),
            ("GET", "/api/v1/scripts/restart-service/versions/1") => {
                let mut v = scripts[0].clone();
                v["script_id"] = v["id"].clone();
                v["version"] = serde_json::json!(1);
                v["created_by"] = serde_json::json!("user:alice");
                v["parameters"] = serde_json::json!([]);
                (200, v.to_string())
            }
            ("POST", "/api/v1/scripts/restart-service/run") => {
                (201, job_json(&[("queued", 4)]).to_string())
            }
            ("POST", "/api/v1/scripts") | ("PATCH", "/api/v1/scripts/restart-service") => {
                (200, scripts[0].to_string())
            }
            _ => error_body(404, "route_not_found", "no route"),
        }
    });
    let sb = Sandbox::new();
    let env = [
        ("CAPSTAN_SERVER", server.url.as_str()),
        ("CAPSTAN_TOKEN", "t"),
    ];
    let run = |extra: &[&str]| {
        let mut argv = vec![
            "scripts",
            "run",
            "restart-service",
            "--group",
            "web",
            "--no-wait",
        ];
        argv.extend_from_slice(extra);
        sb.run(&argv, &env, None)
    };
    let out = run(&[
        "--arg",
        "unit=nginx",
        "--arg",
        "wait=10",
        "--arg",
        "force=true",
        "--arg",
        "level=debug",
        "--timeout",
        "5m",
        "--env",
        "X=y",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{JOB_ID}\n"));
    for (extra, why) in [
        (
            &["--arg", "unit=nginx", "--arg", "wait=soon"][..],
            "--arg wait: \"soon\" is not a number",
        ),
        (
            &["--arg", "unit=nginx", "--arg", "force=1"],
            "--arg force: \"1\" is not true or false",
        ),
        (
            &["--arg", "unit=nginx", "--arg", "level=trace"],
            "is not one of debug, info",
        ),
        (
            &["--arg", "unit=nginx", "--arg", "colour=red"],
            "has no parameter \"colour\"",
        ),
        (&["--arg", "wait=1"], "parameter unit (string) is required"),
    ] {
        let out = run(extra);
        assert_eq!(out.status.code(), Some(1), "{extra:?}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(why) && err.ends_with("(invalid_input)\n"),
            "{extra:?}: {err}"
        );
    }
    // Version 1 has no parameters: nothing to bind.
    let out = run(&["--version", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let file = sb.dir.path().join("restart.sh");
    std::fs::write(&file, "#!/bin/bash\nsystemctl restart \"$1\"\n").unwrap();
    let file = file.to_str().unwrap();
    let out = sb.run(
        &[
            "scripts",
            "add",
            "restart-service",
            "--file",
            file,
            "--param",
            "unit:string!",
            "--param",
            "level:enum(debug|info)=info",
            "-o",
            "json",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = sb.run(
        &[
            "scripts",
            "edit",
            "restart-service",
            "--file",
            file,
            "--no-params",
        ],
        &env,
        None,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Body:\n    #!/bin/bash\n"),
        "{}",
        stdout(&out)
    );
    let out = sb.run(&["scripts", "delete", "restart-service"], &env, None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).ends_with("(confirmation_required)\n"),
        "{}",
        stderr(&out)
    );

    let sent: Vec<(String, serde_json::Value)> = server
        .seen()
        .into_iter()
        .filter(|s| s.method != "GET")
        .map(|s| (s.target, serde_json::from_str(&s.body).unwrap()))
        .collect();
    let default_retry = serde_json::json!({"max_attempts": 1, "backoff_secs": 60,
        "max_backoff_secs": 3600, "retry_on": ["failed", "timed_out", "interrupted"]});
    let targets =
        serde_json::json!({"devices": [], "groups": ["web"], "follow_group_joins": false});
    assert_eq!(
        sent,
        [
            (
                "/api/v1/scripts/restart-service/run".to_string(),
                serde_json::json!({"arguments": {"unit": "nginx", "wait": 10, "force": true, "level": "debug"},
                    "targets": targets, "timeout_secs": 300, "env": {"X": "y"}, "retry": default_retry})
            ),
            (
                "/api/v1/scripts/restart-service/run".to_string(),
                serde_json::json!({"version": 1, "arguments": {}, "targets": targets, "env": {},
                    "retry": default_retry})
            ),
            (
                "/api/v1/scripts".to_string(),
                serde_json::json!({"name": "restart-service", "description": "", "interpreter": "bash",
                "body": "#!/bin/bash\nsystemctl restart \"$1\"\n",
                "parameters": [
                    {"name": "unit", "type": "string", "enum_values": [], "required": true, "description": ""},
                    {"name": "level", "type": "enum", "enum_values": ["debug", "info"], "default": "info",
                     "required": false, "description": ""}
                ]})
            ),
            (
                "/api/v1/scripts/restart-service".to_string(),
                serde_json::json!({"interpreter": "bash", "body": "#!/bin/bash\nsystemctl restart \"$1\"\n",
                    "parameters": []})
            ),
        ]
    );
}

#[cfg(unix)]
#[test]
fn ctrl_c_stops_watching_without_cancelling_the_job() {
    let server = FakeServer::start(|seen| {
        let path = seen.target.split('?').next().unwrap_or_default();
        match (seen.method.as_str(), path) {
            ("POST", "/api/v1/jobs") => (201, job_json(&[("running", 2)]).to_string()),
            ("GET", p) if p == format!("/api/v1/jobs/{JOB_ID}") => {
                (200, job_json(&[("running", 2)]).to_string())
            }
            ("GET", p) if p == format!("/api/v1/jobs/{JOB_ID}/runs") => {
                let items = [
                    run_json("d1", "web-01", "running", None),
                    run_json("d2", "web-02", "running", None),
                ];
                (
                    200,
                    serde_json::json!({"items": items, "total": 2}).to_string(),
                )
            }
            _ => error_body(404, "route_not_found", "no route"),
        }
    });
    let sb = Sandbox::new();
    let child = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["run", "--group", "web", "--", "sleep", "100"])
        .env_remove("CAPSTAN_FINGERPRINT")
        .env("HOME", sb.dir.path())
        .env("CAPSTAN_CONFIG", sb.config())
        .env("CAPSTAN_SERVER", &server.url)
        .env("CAPSTAN_TOKEN", "t")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once it is polling.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let poll = format!("/api/v1/jobs/{JOB_ID}");
    while !server.seen().iter().any(|s| s.target == poll) {
        assert!(std::time::Instant::now() < deadline, "never polled");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "Stopped watching: 0 succeeded, 0 failed, 0 timed out, 0 cancelled, 0 expired, 2 not finished (job {JOB_ID}).\n"
        )
    );
    assert!(
        stderr(&out).ends_with(&format!(
            "error: stopped watching; job {JOB_ID} goes on: watch it with `capstan jobs watch {JOB_ID}`, cancel it with `capstan jobs cancel {JOB_ID}` (interrupted)\n"
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        server.seen().iter().all(|s| !s.target.contains("cancel")),
        "Ctrl-C must not cancel the job"
    );
}

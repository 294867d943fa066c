//! The harness the CLI's end-to-end suites share: the real server router in-process on a
//! loopback port over a fresh SQLite database, an admin token, and the real `capstan` binary
//! run against it with the credentials in its environment.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Output, Stdio};

use capstan_client::api::ApiClient;
use capstan_client::tls::ClientOptions;
use capstan_proto::api::LoginRequest;

pub struct Server {
    pub url: String,
    pub token: String,
    /// The API as the admin.
    pub api: ApiClient,
    /// HOME and config of the CLI runs (they never log in, so nothing is written there).
    pub home: tempfile::TempDir,
    _data: tempfile::TempDir,
}

/// Starts a server with `adjust`ed test configuration; `background` starts the loops the suite
/// needs (the job ticker, the deployment controller) on its state, as the real server would.
pub async fn start_with(
    adjust: impl FnOnce(&mut capstan_server::config::Config),
    background: impl FnOnce(capstan_server::state::AppState),
) -> Server {
    let data = tempfile::tempdir().unwrap();
    let mut config = capstan_server::config::Config::for_tests(data.path());
    adjust(&mut config);
    let (router, state) = capstan_server::testing::app_with_config(config)
        .await
        .expect("server state");
    background(state);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap();
    });
    let api = ApiClient::new(&url, None, &ClientOptions::default()).unwrap();
    let token = api
        .login(&LoginRequest {
            username: "admin".into(),
            password: "test-admin-password".into(),
        })
        .await
        .expect("admin login")
        .token;
    Server {
        api: api.with_token(Some(token.clone())),
        url,
        token,
        home: tempfile::tempdir().unwrap(),
        _data: data,
    }
}

impl Server {
    /// `capstan` with this server's credentials in the environment, stdin closed and output
    /// captured.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let home = self.home.path();
        let mut c = tokio::process::Command::new(env!("CARGO_BIN_EXE_capstan"));
        c.args(args)
            .env_remove("CAPSTAN_FINGERPRINT")
            .env_remove("XDG_CONFIG_HOME")
            .env("HOME", home)
            .env("CAPSTAN_CONFIG", home.join("cli.toml"))
            .env("CAPSTAN_SERVER", &self.url)
            .env("CAPSTAN_TOKEN", &self.token)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    /// Run `capstan` to the end.
    pub async fn capstan(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// Run `capstan` and expect exit status 0; its standard output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let out = self.capstan(args).await;
        assert_eq!(
            out.status.code(),
            Some(0),
            "capstan {args:?}\nstdout: {}\nstderr: {}",
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    }

    /// Run `capstan … -o json` and parse its output.
    pub async fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> T {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.ok(&all).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("capstan {args:?}: {e}\n{text}"))
    }
}

/// Whether `text` has a line equal to `want` once runs of spaces are collapsed (column widths
/// depend on the longest label shown).
pub fn has_line(text: &str, want: &str) -> bool {
    let squash = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let want = squash(want);
    text.lines().any(|l| squash(l) == want)
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

//! How a failed command is reported: one line `error: <message> (<code>)` and an exit status
//! scripts can branch on. Server errors keep the server's stable code; failures found locally
//! carry a CLI code of their own. Exit statuses: 0 ok, 1 failure, 2 usage (clap), 3
//! authentication (401 or no credentials), 4 permission (403), 5 not found (404), 6 a job
//! that was watched to the end has runs that did not succeed (or a watched deployment has
//! failed devices), 130 watching was interrupted (Ctrl-C; the job or deployment goes on).

use capstan_proto::error::ErrorCode;

pub const EXIT_FAILURE: u8 = 1;
pub const EXIT_AUTH: u8 = 3;
pub const EXIT_FORBIDDEN: u8 = 4;
pub const EXIT_NOT_FOUND: u8 = 5;
pub const EXIT_RUNS_FAILED: u8 = 6;
/// 128 + SIGINT, what shells report for a command stopped with Ctrl-C.
pub const EXIT_INTERRUPTED: u8 = 130;

/// A failure detected by the CLI itself (no server answer involved).
#[derive(Debug)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// No server or no token could be found.
    NotLoggedIn,
    /// A destructive command needs `--yes` or an interactive confirmation.
    ConfirmationRequired,
    /// The operator answered "no" to a confirmation.
    Aborted,
    /// Bad configuration: server URL, fingerprint, config file.
    Config,
    /// Bad input that clap could not check (e.g. an empty password).
    InvalidInput,
    /// A watched job finished with runs that failed, timed out, were cancelled or expired.
    RunsFailed,
    /// The operator stopped watching a job with Ctrl-C (the job is not cancelled).
    Interrupted,
    /// A deployment watched until every device was done has devices that failed.
    DevicesFailed,
}

impl FailureKind {
    fn code(self) -> &'static str {
        match self {
            FailureKind::NotLoggedIn => "not_logged_in",
            FailureKind::ConfirmationRequired => "confirmation_required",
            FailureKind::Aborted => "aborted",
            FailureKind::Config => "config",
            FailureKind::InvalidInput => "invalid_input",
            FailureKind::RunsFailed => "runs_failed",
            FailureKind::Interrupted => "interrupted",
            FailureKind::DevicesFailed => "devices_failed",
        }
    }

    fn exit(self) -> u8 {
        match self {
            FailureKind::NotLoggedIn => EXIT_AUTH,
            FailureKind::RunsFailed | FailureKind::DevicesFailed => EXIT_RUNS_FAILED,
            FailureKind::Interrupted => EXIT_INTERRUPTED,
            _ => EXIT_FAILURE,
        }
    }
}

impl Failure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    pub fn not_logged_in() -> Failure {
        Failure::new(
            FailureKind::NotLoggedIn,
            "not logged in: run `capstan login --server URL --username NAME` or set CAPSTAN_SERVER and CAPSTAN_TOKEN",
        )
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// What `main` prints and returns for a failed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub message: String,
    pub code: String,
    pub exit: u8,
}

fn exit_for_status(status: u16) -> u8 {
    match status {
        401 => EXIT_AUTH,
        403 => EXIT_FORBIDDEN,
        404 => EXIT_NOT_FOUND,
        _ => EXIT_FAILURE,
    }
}

/// Turn an error chain into the reported message, code and exit status. Context added by
/// commands stays in front ("cannot save the session: …"); below the first classified error
/// only what helps the operator is kept.
pub fn classify(err: &anyhow::Error) -> Report {
    let mut parts: Vec<String> = Vec::new();
    let mut code = "failed".to_string();
    let mut exit = EXIT_FAILURE;
    let mut chain = err.chain();
    while let Some(cause) = chain.next() {
        if let Some(f) = cause.downcast_ref::<Failure>() {
            parts.push(f.message.clone());
            code = f.kind.code().to_string();
            exit = f.kind.exit();
            break;
        }
        if let Some(client_err) = cause.downcast_ref::<capstan_client::Error>() {
            match client_err {
                capstan_client::Error::Api(body) => {
                    let mut message = body.message.clone();
                    if body.code == ErrorCode::Unauthenticated {
                        message.push_str("; log in again with `capstan login` or check the token");
                    }
                    parts.push(message);
                    code = body.code.as_str().to_string();
                    exit = exit_for_status(body.status);
                }
                capstan_client::Error::Status { status, body } => {
                    let snippet: String = body.trim().chars().take(200).collect();
                    parts.push(if snippet.is_empty() {
                        format!("server answered HTTP {status}")
                    } else {
                        format!("server answered HTTP {status}: {snippet}")
                    });
                    code = "http_status".into();
                    exit = exit_for_status(*status);
                }
                capstan_client::Error::Transport { url, .. } => {
                    // reqwest's own message repeats the URL; the innermost cause is the one
                    // that says what happened (refused, timed out, certificate mismatch).
                    let root = chain.last().map(|c| c.to_string());
                    parts.push(match root {
                        Some(root) => format!("cannot reach {url}: {root}"),
                        None => format!("cannot reach {url}"),
                    });
                    code = "transport".into();
                }
                capstan_client::Error::Config(message) => {
                    parts.push(message.clone());
                    code = "config".into();
                }
            }
            break;
        }
        let text = cause.to_string();
        if !parts.last().is_some_and(|prev| prev.contains(&text)) {
            parts.push(text);
        }
    }
    Report {
        message: parts.join(": "),
        code,
        exit,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context as _;
    use capstan_proto::error::ErrorBody;

    fn api(status: u16, code: ErrorCode, message: &str) -> anyhow::Error {
        anyhow::Error::new(capstan_client::Error::Api(ErrorBody {
            status,
            code,
            message: message.into(),
        }))
    }

    #[test]
    fn server_errors_map_to_documented_exit_codes() {
        for (status, code, exit) in [
            (401, ErrorCode::InvalidCredentials, 3),
            (401, ErrorCode::Unauthenticated, 3),
            (403, ErrorCode::Forbidden, 4),
            (404, ErrorCode::NotFound, 5),
            (409, ErrorCode::Conflict, 1),
            (500, ErrorCode::Internal, 1),
        ] {
            let report = classify(&api(status, code, "m"));
            assert_eq!(report.exit, exit, "{status}");
            assert_eq!(report.code, code.as_str());
        }
    }

    #[test]
    fn message_keeps_context_and_server_text_without_repeating_the_code() {
        let err = api(404, ErrorCode::NotFound, "device d1 not found");
        let report = classify(&err.context("cannot show device d1"));
        assert_eq!(report.message, "cannot show device d1: device d1 not found");
        assert_eq!(report.code, "not_found");
    }

    #[test]
    fn expired_session_suggests_logging_in() {
        let report = classify(&api(401, ErrorCode::Unauthenticated, "session expired"));
        assert!(
            report.message.contains("capstan login"),
            "{}",
            report.message
        );
    }

    #[test]
    fn local_failures_have_their_own_codes() {
        let report = classify(&anyhow::Error::new(Failure::not_logged_in()));
        assert_eq!((report.code.as_str(), report.exit), ("not_logged_in", 3));
        assert!(
            report
                .message
                .starts_with("not logged in: run `capstan login")
        );
        let err = Failure::new(FailureKind::ConfirmationRequired, "pass --yes");
        let report = classify(&anyhow::Error::new(err));
        assert_eq!(
            (report.code.as_str(), report.exit),
            ("confirmation_required", 1)
        );
        let err = Failure::new(FailureKind::RunsFailed, "1 of 3 runs did not succeed");
        let report = classify(&anyhow::Error::new(err));
        assert_eq!((report.code.as_str(), report.exit), ("runs_failed", 6));
        let err = Failure::new(FailureKind::DevicesFailed, "1 of 3 device(s) failed");
        let report = classify(&anyhow::Error::new(err));
        assert_eq!((report.code.as_str(), report.exit), ("devices_failed", 6));
        let err = Failure::new(FailureKind::Interrupted, "stopped watching");
        let report = classify(&anyhow::Error::new(err));
        assert_eq!((report.code.as_str(), report.exit), ("interrupted", 130));
    }

    #[test]
    fn unclassified_errors_are_generic_failures() {
        let err: anyhow::Result<()> =
            Err(std::io::Error::other("disk full")).context("cannot write x");
        let report = classify(&err.unwrap_err());
        assert_eq!(report.message, "cannot write x: disk full");
        assert_eq!((report.code.as_str(), report.exit), ("failed", 1));
    }

    #[test]
    fn status_without_body_maps_by_status() {
        let err = anyhow::Error::new(capstan_client::Error::Status {
            status: 403,
            body: String::new(),
        });
        let report = classify(&err);
        assert_eq!(report.message, "server answered HTTP 403");
        assert_eq!((report.code.as_str(), report.exit), ("http_status", 4));
    }
}

//! Pure rules of the job system: what makes a job spec acceptable, how script parameters bind
//! to arguments, and what happens to a run after an attempt ends (retry, hold, or stop). The
//! server applies these inside its transactions; keeping them here makes them testable as
//! tables without a database.

use std::collections::BTreeMap;

use capstan_proto::api::FieldType;
use capstan_proto::jobs::{
    AttemptOutcome, JobAction, JobSpec, RetryOn, RetryPolicy, RunState, ScriptBody,
    ScriptParameter, limits,
};

/// One problem of a rejected request: a JSON pointer into the request and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub message: String,
    pub valid: Vec<String>,
}

/// A problem at `path` without a list of valid choices.
pub fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        valid: Vec::new(),
    }
}

fn is_env_name(s: &str) -> bool {
    let mut b = s.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// A local user name as `useradd` accepts it (and nothing a shell or path could misread).
fn is_user_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && !s.starts_with('-')
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.' | b'$'))
}

fn no_nul(s: &str) -> bool {
    !s.contains('\0')
}

fn check_script(path: &str, s: &ScriptBody, out: &mut Vec<Problem>) {
    check_body(&format!("{path}/body"), &s.body, out);
}

fn check_body(path: &str, body: &str, out: &mut Vec<Problem>) {
    if body.trim().is_empty() {
        out.push(problem(path, "the script is empty"));
    } else if body.len() > limits::MAX_SCRIPT_BYTES {
        out.push(problem(
            path,
            format!(
                "the script is {} bytes; the limit is {} bytes",
                body.len(),
                limits::MAX_SCRIPT_BYTES
            ),
        ));
    } else if !no_nul(body) {
        out.push(problem(path, "the script contains a NUL byte"));
    }
}

fn check_args(path: &str, args: &[String], out: &mut Vec<Problem>) {
    if args.len() > limits::MAX_ARGS {
        out.push(problem(
            path,
            format!(
                "{} arguments; the limit is {}",
                args.len(),
                limits::MAX_ARGS
            ),
        ));
    }
    for (i, a) in args.iter().enumerate() {
        if a.len() > limits::MAX_ARG_BYTES {
            out.push(problem(
                format!("{path}/{i}"),
                format!("argument longer than {} bytes", limits::MAX_ARG_BYTES),
            ));
        } else if !no_nul(a) {
            out.push(problem(
                format!("{path}/{i}"),
                "argument contains a NUL byte",
            ));
        }
    }
}

/// Every problem of a job spec (empty when it is acceptable). Paths are relative to the spec
/// (`/action/argv`), so callers prefix them with where the spec sits in their request.
pub fn validate_spec(spec: &JobSpec) -> Vec<Problem> {
    let mut out = Vec::new();
    match &spec.action {
        JobAction::Command { argv } => {
            if argv.is_empty() || argv[0].trim().is_empty() {
                out.push(problem(
                    "/action/argv",
                    "a command needs at least the program name",
                ));
            }
            check_args("/action/argv", argv, &mut out);
        }
        JobAction::Script { body, args, .. } => {
            check_body("/action/body", body, &mut out);
            check_args("/action/args", args, &mut out);
        }
        JobAction::SoftwareInstall { .. } | JobAction::SoftwareUninstall { .. } => {
            out.extend(crate::software::validate_action(&spec.action));
        }
        JobAction::Reboot => {
            if spec.pre_script.is_some() || spec.post_script.is_some() {
                out.push(problem(
                    "/action",
                    "a reboot job cannot have pre- or post-scripts (run a script job that asks for a reboot instead)",
                ));
            }
        }
    }
    if spec.timeout_secs == 0 || spec.timeout_secs > limits::MAX_TIMEOUT_SECS {
        out.push(problem(
            "/timeout_secs",
            format!("must be between 1 and {} seconds", limits::MAX_TIMEOUT_SECS),
        ));
    }
    if spec.env.len() > limits::MAX_ENV {
        out.push(problem(
            "/env",
            format!(
                "{} variables; the limit is {}",
                spec.env.len(),
                limits::MAX_ENV
            ),
        ));
    }
    for (k, v) in &spec.env {
        if !is_env_name(k) || k.len() > 128 {
            out.push(problem(
                format!("/env/{k}"),
                "a variable name is letters, digits and _ and does not start with a digit",
            ));
        } else if k.starts_with("CAPSTAN_") && !k.starts_with("CAPSTAN_PARAM_") {
            out.push(problem(
                format!("/env/{k}"),
                "names starting with CAPSTAN_ are set by the agent (except CAPSTAN_PARAM_*)",
            ));
        }
        if v.len() > limits::MAX_ENV_VALUE_BYTES || !no_nul(v) {
            out.push(problem(
                format!("/env/{k}"),
                format!(
                    "the value must be at most {} bytes without NUL",
                    limits::MAX_ENV_VALUE_BYTES
                ),
            ));
        }
    }
    if let Some(dir) = &spec.working_dir
        && (!dir.starts_with('/') && !is_windows_absolute(dir) || !no_nul(dir) || dir.len() > 4096)
    {
        out.push(problem("/working_dir", "must be an absolute path"));
    }
    if let Some(user) = &spec.run_as
        && !is_user_name(user)
    {
        out.push(problem(
            "/run_as",
            "not a valid local user name (letters, digits, _ - . $; at most 32)",
        ));
    }
    if let Some(s) = &spec.pre_script {
        check_script("/pre_script", s, &mut out);
    }
    if let Some(s) = &spec.post_script {
        check_script("/post_script", s, &mut out);
    }
    if spec.reboot_exit_codes.len() > 16 {
        out.push(problem("/reboot_exit_codes", "at most 16 codes"));
    }
    if spec.reboot_exit_codes.contains(&0) {
        out.push(problem(
            "/reboot_exit_codes",
            "0 cannot mean reboot (it means plain success)",
        ));
    }
    out
}

fn is_windows_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// Problems of a retry policy.
pub fn validate_retry(r: &RetryPolicy) -> Vec<Problem> {
    let mut out = Vec::new();
    if r.max_attempts == 0 || r.max_attempts > limits::MAX_ATTEMPTS {
        out.push(problem(
            "/max_attempts",
            format!("must be between 1 and {}", limits::MAX_ATTEMPTS),
        ));
    }
    if r.backoff_secs > 7 * 24 * 3600 || r.max_backoff_secs > 7 * 24 * 3600 {
        out.push(problem("/backoff_secs", "backoff is limited to 7 days"));
    }
    if r.max_backoff_secs < r.backoff_secs {
        out.push(problem(
            "/max_backoff_secs",
            "must be at least backoff_secs",
        ));
    }
    out
}

/// Delay before attempt `next` (2, 3, …): `backoff × 2^(next-2)`, capped.
pub fn backoff_ms(r: &RetryPolicy, next: u32) -> i64 {
    let exp = next.saturating_sub(2).min(30);
    let secs = r
        .backoff_secs
        .saturating_mul(1u64 << exp)
        .min(r.max_backoff_secs);
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

/// What the server does with a run after one of its attempts ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterAttempt {
    /// The run ends in `state` (with `reason` when there is one to show).
    Finish {
        state: RunState,
        reason: Option<String>,
        /// The run would have been retried but the device's circuit breaker is open: the
        /// retry waits for a reset.
        held: bool,
    },
    /// Queue attempt `attempt` at `not_before`.
    Retry {
        failed_state: RunState,
        attempt: u32,
        not_before: i64,
        reason: String,
    },
}

/// Inputs of [`after_attempt`].
#[derive(Debug, Clone)]
pub struct AttemptEnd<'a> {
    pub policy: &'a RetryPolicy,
    pub attempt: u32,
    pub outcome: AttemptOutcome,
    pub exit_code: Option<i32>,
    pub error: Option<&'a str>,
    /// Whether the device's breaker is open after counting this attempt.
    pub breaker_open: bool,
    pub consecutive_failures: u32,
    pub now: i64,
    pub expires_at: i64,
}

fn describe(outcome: AttemptOutcome, exit_code: Option<i32>, error: Option<&str>) -> String {
    match (outcome, exit_code, error) {
        (AttemptOutcome::Interrupted, _, Some(e)) => format!("interrupted: {e}"),
        (AttemptOutcome::Interrupted, _, None) => "interrupted".into(),
        (_, _, Some(e)) => e.to_string(),
        (AttemptOutcome::Failed, Some(c), None) => format!("exit code {c}"),
        (o, _, None) => o.as_str().replace('_', " "),
    }
}

/// Decide the run's next step after an attempt ended.
pub fn after_attempt(e: &AttemptEnd<'_>) -> AfterAttempt {
    let (state, retry_on) = match e.outcome {
        AttemptOutcome::Succeeded => {
            return AfterAttempt::Finish {
                state: RunState::Succeeded,
                reason: e.error.map(str::to_string),
                held: false,
            };
        }
        AttemptOutcome::Cancelled => {
            return AfterAttempt::Finish {
                state: RunState::Cancelled,
                reason: Some(describe(e.outcome, e.exit_code, e.error)),
                held: false,
            };
        }
        AttemptOutcome::Failed => (RunState::Failed, RetryOn::Failed),
        AttemptOutcome::TimedOut => (RunState::TimedOut, RetryOn::TimedOut),
        AttemptOutcome::Interrupted => (RunState::Failed, RetryOn::Interrupted),
    };
    let what = describe(e.outcome, e.exit_code, e.error);
    let retryable = e.policy.retry_on.contains(&retry_on) && e.attempt < e.policy.max_attempts;
    if !retryable {
        let reason = if e.policy.max_attempts > 1 && e.policy.retry_on.contains(&retry_on) {
            format!(
                "{what} (attempt {} of {})",
                e.attempt, e.policy.max_attempts
            )
        } else {
            what
        };
        return AfterAttempt::Finish {
            state,
            reason: Some(reason),
            held: false,
        };
    }
    if e.breaker_open {
        return AfterAttempt::Finish {
            state,
            reason: Some(format!(
                "{what}; retry held: circuit breaker open after {} consecutive failures on this device",
                e.consecutive_failures
            )),
            held: true,
        };
    }
    let next = e.attempt + 1;
    let not_before = e.now.saturating_add(backoff_ms(e.policy, next));
    if not_before >= e.expires_at {
        return AfterAttempt::Finish {
            state,
            reason: Some(format!(
                "{what}; no retry: the job expires before attempt {next} would start"
            )),
            held: false,
        };
    }
    AfterAttempt::Retry {
        failed_state: state,
        attempt: next,
        not_before,
        reason: format!(
            "{what}; retry {next} of {} scheduled",
            e.policy.max_attempts
        ),
    }
}

/// Bind a library script's parameters to the given arguments: every argument must name a
/// parameter and fit its type; defaults fill the rest; required ones must be present. Returns
/// the values in declaration order, as strings (what the process receives).
pub fn bind_arguments(
    params: &[ScriptParameter],
    args: &BTreeMap<String, serde_json::Value>,
) -> Result<Vec<(String, String)>, Vec<Problem>> {
    let mut problems = Vec::new();
    for name in args.keys() {
        if !params.iter().any(|p| &p.name == name) {
            problems.push(Problem {
                path: format!("/arguments/{name}"),
                message: format!("the script has no parameter {name:?}"),
                valid: params.iter().map(|p| p.name.clone()).collect(),
            });
        }
    }
    let mut out = Vec::new();
    for p in params {
        let value = args.get(&p.name).or(p.default.as_ref());
        match value {
            None | Some(serde_json::Value::Null) => {
                if p.required {
                    problems.push(problem(
                        format!("/arguments/{}", p.name),
                        format!("parameter {:?} is required", p.name),
                    ));
                } else {
                    out.push((p.name.clone(), String::new()));
                }
            }
            Some(v) => match render_value(p, v) {
                Ok(s) => out.push((p.name.clone(), s)),
                Err(msg) => problems.push(Problem {
                    path: format!("/arguments/{}", p.name),
                    message: msg,
                    valid: p.enum_values.clone(),
                }),
            },
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn render_value(p: &ScriptParameter, v: &serde_json::Value) -> Result<String, String> {
    let s = match (p.param_type, v) {
        (FieldType::String, serde_json::Value::String(s)) => s.clone(),
        (FieldType::Number, serde_json::Value::Number(n)) => n.to_string(),
        (FieldType::Boolean, serde_json::Value::Bool(b)) => b.to_string(),
        (FieldType::Enum, serde_json::Value::String(s)) if p.enum_values.contains(s) => s.clone(),
        (FieldType::Enum, serde_json::Value::String(s)) => {
            return Err(format!("{s:?} is not one of the allowed values"));
        }
        (FieldType::Date, serde_json::Value::String(s)) if is_date(s) => s.clone(),
        (t, _) => return Err(format!("expected a {} value", t.as_str())),
    };
    if s.len() > limits::MAX_ARG_BYTES || s.contains('\0') {
        return Err(format!(
            "the value must be at most {} bytes without NUL",
            limits::MAX_ARG_BYTES
        ));
    }
    Ok(s)
}

/// `YYYY-MM-DD`, optionally followed by a time part (passed through as written).
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 10
        && b[..4].iter().all(u8::is_ascii_digit)
        && b[4] == b'-'
        && b[5..7].iter().all(u8::is_ascii_digit)
        && b[7] == b'-'
        && b[8..10].iter().all(u8::is_ascii_digit)
        && (b.len() == 10 || b[10] == b'T' || b[10] == b' ')
}

/// Problems of a script's parameter list.
pub fn validate_parameters(params: &[ScriptParameter]) -> Vec<Problem> {
    let mut out = Vec::new();
    if params.len() > limits::MAX_SCRIPT_PARAMETERS {
        out.push(problem(
            "/parameters",
            format!("at most {} parameters", limits::MAX_SCRIPT_PARAMETERS),
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for (i, p) in params.iter().enumerate() {
        let path = format!("/parameters/{i}");
        if !is_env_name(&p.name) || p.name.len() > 63 {
            out.push(problem(
                format!("{path}/name"),
                "a parameter name is letters, digits and _ and does not start with a digit",
            ));
        }
        if !seen.insert(p.name.to_ascii_uppercase()) {
            out.push(problem(
                format!("{path}/name"),
                format!(
                    "duplicate parameter {:?} (names are case-insensitive)",
                    p.name
                ),
            ));
        }
        match p.param_type {
            FieldType::Enum if p.enum_values.is_empty() => out.push(problem(
                format!("{path}/enum_values"),
                "an enum needs values",
            )),
            FieldType::Enum => {}
            _ if !p.enum_values.is_empty() => out.push(problem(
                format!("{path}/enum_values"),
                "only enum parameters have values",
            )),
            _ => {}
        }
        if let Some(d) = &p.default
            && !d.is_null()
            && let Err(m) = render_value(p, d)
        {
            out.push(problem(format!("{path}/default"), m));
        }
        if p.description.len() > 1000 {
            out.push(problem(format!("{path}/description"), "at most 1000 bytes"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::jobs::Interpreter;

    fn spec(action: JobAction) -> JobSpec {
        serde_json::from_value(serde_json::json!({"action": action})).unwrap()
    }

    #[test]
    fn spec_validation_table() {
        let cmd = |argv: &[&str]| JobAction::Command {
            argv: argv.iter().map(|s| s.to_string()).collect(),
        };
        let ok = spec(cmd(&["true"]));
        assert!(validate_spec(&ok).is_empty());

        type Tweak = fn(&mut JobSpec);
        let cases: Vec<(&str, Tweak, &str)> = vec![
            (
                "empty argv",
                |s| s.action = JobAction::Command { argv: vec![] },
                "/action/argv",
            ),
            (
                "blank program",
                |s| {
                    s.action = JobAction::Command {
                        argv: vec![" ".into()],
                    }
                },
                "/action/argv",
            ),
            (
                "empty script",
                |s| {
                    s.action = JobAction::Script {
                        interpreter: Interpreter::Sh,
                        body: "  \n".into(),
                        args: vec![],
                    }
                },
                "/action/body",
            ),
            (
                "huge script",
                |s| {
                    s.action = JobAction::Script {
                        interpreter: Interpreter::Sh,
                        body: "x".repeat(limits::MAX_SCRIPT_BYTES + 1),
                        args: vec![],
                    }
                },
                "/action/body",
            ),
            (
                "nul in arg",
                |s| {
                    s.action = JobAction::Command {
                        argv: vec!["echo".into(), "a\0b".into()],
                    }
                },
                "/action/argv/1",
            ),
            ("zero timeout", |s| s.timeout_secs = 0, "/timeout_secs"),
            (
                "huge timeout",
                |s| s.timeout_secs = limits::MAX_TIMEOUT_SECS + 1,
                "/timeout_secs",
            ),
            (
                "bad env name",
                |s| {
                    s.env.insert("1X".into(), "v".into());
                },
                "/env/1X",
            ),
            (
                "reserved env",
                |s| {
                    s.env.insert("CAPSTAN_RUN_ID".into(), "v".into());
                },
                "/env/CAPSTAN_RUN_ID",
            ),
            (
                "relative cwd",
                |s| s.working_dir = Some("tmp".into()),
                "/working_dir",
            ),
            (
                "bad user",
                |s| s.run_as = Some("root; rm -rf /".into()),
                "/run_as",
            ),
            (
                "reboot with pre",
                |s| {
                    s.action = JobAction::Reboot;
                    s.pre_script = Some(ScriptBody {
                        interpreter: Interpreter::Sh,
                        body: "true".into(),
                    });
                },
                "/action",
            ),
            (
                "empty post",
                |s| {
                    s.post_script = Some(ScriptBody {
                        interpreter: Interpreter::Bash,
                        body: String::new(),
                    })
                },
                "/post_script/body",
            ),
            (
                "zero reboot code",
                |s| s.reboot_exit_codes = vec![0],
                "/reboot_exit_codes",
            ),
        ];
        for (name, tweak, path) in cases {
            let mut s = ok.clone();
            tweak(&mut s);
            let problems = validate_spec(&s);
            assert!(
                problems.iter().any(|p| p.path == path),
                "{name}: expected a problem at {path}, got {problems:?}"
            );
        }
        let mut win = ok.clone();
        win.working_dir = Some("C:\\Temp".into());
        assert!(validate_spec(&win).is_empty());
    }

    fn policy(max: u32, on: &[RetryOn]) -> RetryPolicy {
        RetryPolicy {
            max_attempts: max,
            backoff_secs: 10,
            max_backoff_secs: 25,
            retry_on: on.to_vec(),
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = policy(5, &[]);
        assert_eq!(
            [2, 3, 4, 5].map(|n| backoff_ms(&p, n)),
            [10_000, 20_000, 25_000, 25_000]
        );
        let big = RetryPolicy {
            max_attempts: 20,
            backoff_secs: u64::MAX / 2,
            max_backoff_secs: u64::MAX,
            retry_on: vec![],
        };
        assert!(backoff_ms(&big, 20) > 0);
    }

    #[test]
    fn after_attempt_table() {
        use AttemptOutcome::*;
        let all = [RetryOn::Failed, RetryOn::TimedOut, RetryOn::Interrupted];
        let p3 = policy(3, &all);
        let p1 = policy(1, &all);
        let only_timeouts = policy(3, &[RetryOn::TimedOut]);
        let end = |p: &'static RetryPolicy, attempt, outcome, breaker_open| AttemptEnd {
            policy: p,
            attempt,
            outcome,
            exit_code: Some(2),
            error: None,
            breaker_open,
            consecutive_failures: 3,
            now: 1_000,
            expires_at: 1_000_000,
        };
        let p3: &'static RetryPolicy = Box::leak(Box::new(p3));
        let p1: &'static RetryPolicy = Box::leak(Box::new(p1));
        let ot: &'static RetryPolicy = Box::leak(Box::new(only_timeouts));

        // (case, input, expected state, expected retry attempt, held)
        let rows: Vec<(&str, AttemptEnd, RunState, Option<u32>, bool)> = vec![
            (
                "success ends",
                end(p3, 1, Succeeded, false),
                RunState::Succeeded,
                None,
                false,
            ),
            (
                "failure retried",
                end(p3, 1, Failed, false),
                RunState::Failed,
                Some(2),
                false,
            ),
            (
                "last attempt ends",
                end(p3, 3, Failed, false),
                RunState::Failed,
                None,
                false,
            ),
            (
                "single attempt",
                end(p1, 1, Failed, false),
                RunState::Failed,
                None,
                false,
            ),
            (
                "timeout retried",
                end(p3, 2, TimedOut, false),
                RunState::TimedOut,
                Some(3),
                false,
            ),
            (
                "interrupted retried",
                end(p3, 1, Interrupted, false),
                RunState::Failed,
                Some(2),
                false,
            ),
            (
                "not in retry_on",
                end(ot, 1, Failed, false),
                RunState::Failed,
                None,
                false,
            ),
            (
                "breaker holds",
                end(p3, 1, Failed, true),
                RunState::Failed,
                None,
                true,
            ),
            (
                "cancel never retried",
                end(p3, 1, Cancelled, false),
                RunState::Cancelled,
                None,
                false,
            ),
        ];
        for (name, e, state, retry, held) in rows {
            match after_attempt(&e) {
                AfterAttempt::Finish {
                    state: s,
                    held: h,
                    reason,
                } => {
                    assert_eq!((s, None, h), (state, retry, held), "{name}: {reason:?}");
                }
                AfterAttempt::Retry {
                    failed_state,
                    attempt,
                    not_before,
                    reason,
                } => {
                    assert_eq!((failed_state, Some(attempt)), (state, retry), "{name}");
                    assert_eq!(not_before, 1_000 + backoff_ms(e.policy, attempt), "{name}");
                    assert!(
                        reason.contains(&format!("retry {attempt} of 3")),
                        "{name}: {reason}"
                    );
                }
            }
        }
        // A retry that would start after the expiry does not happen.
        let mut late = end(p3, 1, Failed, false);
        late.expires_at = 5_000;
        match after_attempt(&late) {
            AfterAttempt::Finish { reason, .. } => {
                assert!(reason.unwrap().contains("expires"))
            }
            other => panic!("expected finish, got {other:?}"),
        }
        // Reasons name the exit code and the interruption.
        let AfterAttempt::Finish { reason, .. } = after_attempt(&end(p1, 1, Failed, false)) else {
            panic!()
        };
        assert_eq!(reason.as_deref(), Some("exit code 2"));
        let mut i = end(p1, 1, Interrupted, false);
        i.error = Some("agent restarted");
        let AfterAttempt::Finish { reason, .. } = after_attempt(&i) else {
            panic!()
        };
        assert_eq!(reason.as_deref(), Some("interrupted: agent restarted"));
    }

    fn param(
        name: &str,
        t: FieldType,
        default: Option<serde_json::Value>,
        required: bool,
    ) -> ScriptParameter {
        ScriptParameter {
            name: name.into(),
            param_type: t,
            enum_values: if t == FieldType::Enum {
                vec!["a".into(), "b".into()]
            } else {
                vec![]
            },
            default,
            required,
            description: String::new(),
        }
    }

    #[test]
    fn arguments_bind_by_type_with_defaults() {
        use serde_json::json;
        let params = vec![
            param("name", FieldType::String, None, true),
            param("count", FieldType::Number, Some(json!(3)), false),
            param("force", FieldType::Boolean, None, false),
            param("mode", FieldType::Enum, Some(json!("a")), false),
            param("when", FieldType::Date, None, false),
        ];
        let args: BTreeMap<_, _> = [
            ("name".to_string(), json!("x y; $(rm)")),
            ("mode".into(), json!("b")),
        ]
        .into();
        let bound = bind_arguments(&params, &args).unwrap();
        assert_eq!(
            bound,
            vec![
                ("name".into(), "x y; $(rm)".into()),
                ("count".into(), "3".into()),
                ("force".into(), String::new()),
                ("mode".into(), "b".into()),
                ("when".into(), String::new()),
            ]
        );
        let bad: BTreeMap<_, _> = [
            ("count".to_string(), json!("three")),
            ("mode".into(), json!("c")),
            ("when".into(), json!("yesterday")),
            ("nope".into(), json!(1)),
        ]
        .into();
        let problems = bind_arguments(&params, &bad).unwrap_err();
        let paths: Vec<_> = problems.iter().map(|p| p.path.as_str()).collect();
        for want in [
            "/arguments/nope",
            "/arguments/name",
            "/arguments/count",
            "/arguments/mode",
            "/arguments/when",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
    }

    #[test]
    fn parameter_lists_are_checked() {
        use serde_json::json;
        let dup = vec![
            param("x", FieldType::String, None, false),
            param("X", FieldType::String, None, false),
        ];
        assert!(
            validate_parameters(&dup)
                .iter()
                .any(|p| p.message.contains("duplicate"))
        );
        let bad_default = vec![param("n", FieldType::Number, Some(json!("x")), false)];
        assert_eq!(
            validate_parameters(&bad_default)[0].path,
            "/parameters/0/default"
        );
        let mut empty_enum = param("e", FieldType::Enum, None, false);
        empty_enum.enum_values.clear();
        assert_eq!(
            validate_parameters(&[empty_enum])[0].path,
            "/parameters/0/enum_values"
        );
        assert!(
            validate_parameters(&[param("ok_1", FieldType::Boolean, Some(json!(true)), true)])
                .is_empty()
        );
    }
}

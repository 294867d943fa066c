//! Pure rules of software packages: what makes a package name and a version spec acceptable,
//! the defaults per installer type (unattended command templates, exit-code meanings), and the
//! checks on a resolved plan carried by a software job. The server validates with these before
//! storing; the agent reads the same defaults, so a version saved without explicit commands
//! installs the same way everywhere.

use capstan_proto::jobs::JobAction;
use capstan_proto::software::{SoftwarePlan, limits};

use crate::jobs::Problem;

fn problem(path: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        path: path.into(),
        message: message.into(),
        valid: Vec::new(),
    }
}

/// A package name: `[a-z0-9][a-z0-9._+-]*`, at most 128 bytes (the shape dpkg, rpm and pacman
/// names share, so a name is safe in any argument position and in a URL path segment).
pub fn is_package_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= limits::MAX_NAME_BYTES
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'+' | b'-')
        })
}

/// Problems of a software job action as an operator sent it: a known-good package name, and
/// no plan (the server resolves plans; one sent by a client is refused).
pub fn validate_action(action: &JobAction) -> Vec<Problem> {
    let mut out = Vec::new();
    let (package, version, plan) = match action {
        JobAction::SoftwareInstall {
            package,
            version,
            plan,
            ..
        }
        | JobAction::SoftwareUninstall {
            package,
            version,
            plan,
        } => (package, version, plan),
        _ => return out,
    };
    if !is_package_name(package) {
        out.push(problem(
            "/action/package",
            "a package name is lowercase letters, digits and . _ + - (at most 128 bytes)",
        ));
    }
    if let Some(v) = version
        && (v.is_empty() || v.len() > limits::MAX_VERSION_BYTES || v.chars().any(char::is_control))
    {
        out.push(problem(
            "/action/version",
            "a version is 1 to 128 bytes without control characters",
        ));
    }
    if plan.is_some() {
        out.push(problem(
            "/action/plan",
            "the plan is resolved by the server; send the package and version only",
        ));
    }
    out
}

/// Problems of a resolved plan (checked again by the agent before it acts).
pub fn validate_plan(plan: &SoftwarePlan) -> Vec<Problem> {
    let mut out = Vec::new();
    if plan.steps.is_empty() || plan.steps.len() > limits::MAX_PLAN_STEPS {
        out.push(problem(
            "/action/plan/steps",
            format!("a plan has 1 to {} steps", limits::MAX_PLAN_STEPS),
        ));
    }
    out
}

//! Talking to the operator at the terminal: hidden password entry (or one line from standard
//! input when it is a pipe, so scripts can log in), and yes/no confirmation for destructive
//! commands. Nothing here runs when standard input is not a terminal unless asked to.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context as _;

use crate::failure::{Failure, FailureKind};

/// Whether standard input is an interactive terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// Read a password: hidden from the terminal when standard input is one (asked twice when
/// `confirm`), otherwise the first line of standard input.
pub fn read_password(prompt: &str, confirm: bool) -> anyhow::Result<String> {
    let password = if stdin_is_terminal() {
        let first = rpassword::prompt_password(prompt).context("cannot read the password")?;
        if confirm && !first.is_empty() {
            let again = rpassword::prompt_password("Repeat the password: ")
                .context("cannot read the password")?;
            if again != first {
                return Err(Failure::new(FailureKind::InvalidInput, "the passwords differ").into());
            }
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        strip_line_ending(&line).to_string()
    };
    if password.is_empty() {
        return Err(Failure::new(FailureKind::InvalidInput, "empty password").into());
    }
    Ok(password)
}

/// Remove one trailing `\n` or `\r\n`; spaces are part of a password.
pub fn strip_line_ending(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// Ask a yes/no question on standard error; only `y` or `yes` (any case) agree.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    let mut stderr = std::io::stderr();
    write!(stderr, "{question} [y/N] ")
        .and_then(|()| stderr.flush())
        .ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the answer")?;
    Ok(is_yes(&line))
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_are_stripped_but_spaces_kept() {
        assert_eq!(strip_line_ending("s3cret\n"), "s3cret");
        assert_eq!(strip_line_ending("s3cret\r\n"), "s3cret");
        assert_eq!(strip_line_ending(" pass word \n"), " pass word ");
        assert_eq!(strip_line_ending("nonewline"), "nonewline");
    }

    #[test]
    fn only_explicit_yes_confirms() {
        for yes in ["y\n", "YES\n", " yes "] {
            assert!(is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n\n", "no", "yep", "sure"] {
            assert!(!is_yes(no), "{no:?}");
        }
    }
}

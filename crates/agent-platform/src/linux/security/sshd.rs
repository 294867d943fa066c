//! The global `PermitRootLogin` and `PasswordAuthentication` of OpenSSH's sshd, read the way
//! sshd reads sshd_config: keywords are case-insensitive, the first value obtained wins,
//! `Include` pulls files in place (globs sorted), and everything after a `Match` line only
//! applies to matching connections — so it does not decide the global value and is ignored.
//! An `Include` inside a `Match` block is conditional too. A `Match` inside an included file
//! ends with that file, as sshd restores the including file's state after an include.

use crate::root::Root;

const MAX_INCLUDE_DEPTH: usize = 16;

/// The two settings we report; `None` means "not set, the default applies".
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SshdSettings {
    pub permit_root_login: Option<String>,
    pub password_authentication: Option<bool>,
}

impl SshdSettings {
    /// Effective values with OpenSSH's compiled-in defaults (since 7.0).
    pub(crate) fn effective(&self) -> (String, bool) {
        (
            self.permit_root_login
                .clone()
                .unwrap_or_else(|| "prohibit-password".into()),
            self.password_authentication.unwrap_or(true),
        )
    }
}

/// Reads `/etc/ssh/sshd_config` (and its includes) under `root`; `None` when it is missing.
pub(crate) fn read_config(root: &Root) -> Option<SshdSettings> {
    let text = root.read("/etc/ssh/sshd_config").ok()?;
    let mut s = SshdSettings::default();
    parse(root, &text, false, 0, &mut s);
    Some(s)
}

/// Splits a config line into keyword and arguments (`Key value`, `Key=value`, `Key = value`),
/// honouring double quotes.
fn split_line(line: &str) -> Option<(String, Vec<String>)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_ascii_lowercase();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut in_word = false;
    for c in rest.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            '#' if !quoted && !in_word => break,
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    args.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        args.push(cur);
    }
    Some((keyword, args))
}

fn parse(root: &Root, text: &str, mut in_match: bool, depth: usize, s: &mut SshdSettings) {
    for line in text.lines() {
        let Some((keyword, args)) = split_line(line) else {
            continue;
        };
        match keyword.as_str() {
            "match" => in_match = true,
            _ if in_match => {}
            "include" => {
                if depth >= MAX_INCLUDE_DEPTH {
                    continue;
                }
                for pattern in &args {
                    for path in expand_include(root, pattern) {
                        if let Ok(inner) = root.read(&path) {
                            parse(root, &inner, in_match, depth + 1, s);
                        }
                    }
                }
            }
            "permitrootlogin" if s.permit_root_login.is_none() => {
                s.permit_root_login = args.first().map(|v| match v.to_ascii_lowercase().as_str() {
                    "without-password" => "prohibit-password".to_string(),
                    other => other.to_string(),
                });
            }
            "passwordauthentication" if s.password_authentication.is_none() => {
                s.password_authentication =
                    args.first()
                        .and_then(|v| match v.to_ascii_lowercase().as_str() {
                            "yes" => Some(true),
                            "no" => Some(false),
                            _ => None,
                        });
            }
            _ => {}
        }
    }
}

/// Resolves an Include argument: relative paths are under /etc/ssh; `*` and `?` in the last
/// path component are expanded and the matches sorted, as glob(3) does.
fn expand_include(root: &Root, pattern: &str) -> Vec<String> {
    let abs = if pattern.starts_with('/') {
        pattern.to_string()
    } else {
        format!("/etc/ssh/{pattern}")
    };
    let (dir, file) = abs.rsplit_once('/').unwrap_or(("", &abs));
    if !file.contains(['*', '?']) {
        return vec![abs.clone()];
    }
    let dir = if dir.is_empty() { "/" } else { dir };
    root.list(dir)
        .into_iter()
        .filter(|name| !name.starts_with('.') && glob_match(file, name))
        .map(|name| format!("{}/{name}", dir.trim_end_matches('/')))
        .collect()
}

/// Shell-style wildcard match of one path component (`*`, `?`).
pub(crate) fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::root::testing::Tree;

    #[test]
    fn include_first_value_wins_and_match_is_ignored() {
        let tree = Tree::new()
            .file(
                "/etc/ssh/sshd_config",
                "# Ubuntu style\nInclude /etc/ssh/sshd_config.d/*.conf\n\nPermitRootLogin yes\n\
                 PasswordAuthentication yes\nMatch User backup\n  PasswordAuthentication yes\n  PermitRootLogin yes\n",
            )
            .file("/etc/ssh/sshd_config.d/50-cloud-init.conf", "passwordauthentication=no\n")
            .file("/etc/ssh/sshd_config.d/10-hardening.conf", "PermitRootLogin = without-password  # comment\n")
            .file("/etc/ssh/sshd_config.d/README", "PermitRootLogin no\n");
        let s = read_config(&tree.root()).unwrap();
        assert_eq!(s.effective(), ("prohibit-password".to_string(), false));
    }

    #[test]
    fn settings_after_match_do_not_count_and_defaults_apply() {
        let tree = Tree::new().file(
            "/etc/ssh/sshd_config",
            "Port 22\nMatch Address 10.0.0.0/8\n    PermitRootLogin yes\n    PasswordAuthentication no\n",
        );
        let s = read_config(&tree.root()).unwrap();
        assert_eq!(s, SshdSettings::default());
        assert_eq!(s.effective(), ("prohibit-password".to_string(), true));
    }

    #[test]
    fn include_inside_match_is_conditional_and_match_in_include_ends_with_the_file() {
        let tree = Tree::new()
            .file(
                "/etc/ssh/sshd_config",
                "Include extra.conf\nPasswordAuthentication no\nMatch Group admins\n  Include admins.conf\n",
            )
            .file("/etc/ssh/extra.conf", "Match User x\n  PermitRootLogin yes\n")
            .file("/etc/ssh/admins.conf", "PermitRootLogin no\n");
        let s = read_config(&tree.root()).unwrap();
        assert_eq!(s.permit_root_login, None);
        assert_eq!(s.password_authentication, Some(false));
    }

    #[test]
    fn include_loops_terminate() {
        let tree = Tree::new().file(
            "/etc/ssh/sshd_config",
            "Include sshd_config\nPermitRootLogin no\n",
        );
        assert_eq!(
            read_config(&tree.root())
                .unwrap()
                .permit_root_login
                .as_deref(),
            Some("no")
        );
        assert_eq!(read_config(&Tree::new().root()), None);
    }

    #[test]
    fn globs() {
        assert!(glob_match("*.conf", "50-cloud-init.conf"));
        assert!(!glob_match("*.conf", "README"));
        assert!(glob_match("a?c*", "abcdef"));
        assert!(!glob_match("a?c", "ac"));
    }
}

//! Helpers of the output snapshot tests: the fixed clock they render at, the wire-format
//! fixtures in `tests/fixtures`, and the check that rendered text cannot drive a terminal.

use serde::de::DeserializeOwned;

/// 2026-01-01T00:00:00Z.
pub const NOW: i64 = 1_767_225_600_000;

/// A fixture of real wire JSON from `tests/fixtures`.
pub fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// No character of the text may drive the terminal: only printable text, line ends and the
/// characters in `also`.
pub fn assert_terminal_safe(text: &str, also: &[char]) {
    for c in text.chars() {
        assert!(
            c == '\n'
                || also.contains(&c)
                || !(c.is_control() || crate::output::is_invisible_formatting(c)),
            "raw {c:?} in output:\n{text}"
        );
    }
}

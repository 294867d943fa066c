//! Detection evaluated against a table of facts: every condition type present, absent, at
//! each version relation and failing; the three-valued group logic; short-circuiting (which
//! probes were asked, so scripts are not run needlessly); and validation problems with their
//! JSON-pointer paths.

use std::collections::BTreeMap;
use std::time::Duration;

use capstan_proto::jobs::Interpreter;
use capstan_proto::software::{Detection, DetectionManager, RegistryHive};

use super::*;

/// A node whose facts are a table. Keys name a probe call (`dpkg hello`, `file /opt/x`,
/// `reg HKLM\SOFTWARE\X [Version] (32)`, `script BODY`); a missing key means "not there".
/// Values: a version or data string; `!unsupported` / `!fail message` make the probe fail;
/// services are `running` or `stopped`; scripts are `EXIT[ out]`, `timeout` or `signal`;
/// registry data `<binary>` is a value without a string form.
struct Table {
    facts: BTreeMap<String, String>,
    calls: Vec<String>,
}

impl Table {
    fn new(facts: &[(&str, &str)]) -> Self {
        Table {
            facts: facts
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            calls: Vec::new(),
        }
    }

    fn get(&mut self, key: String) -> Result<Option<String>, ProbeError> {
        let v = self.facts.get(&key).cloned();
        self.calls.push(key.clone());
        match v.as_deref() {
            Some("!unsupported") => Err(ProbeError::Unsupported(key)),
            Some(f) if f.starts_with("!fail ") => Err(ProbeError::Failed(f[6..].to_string())),
            _ => Ok(v),
        }
    }
}

impl Probe for Table {
    fn msi_product_version(&mut self, code: &str) -> Result<Option<String>, ProbeError> {
        self.get(format!("msi {code}"))
    }

    fn registry(
        &mut self,
        hive: RegistryHive,
        key: &str,
        value: Option<&str>,
        wow64_32: bool,
    ) -> Result<Option<RegistryData>, ProbeError> {
        let mut k = format!("reg {}\\{key}", hive_str(hive));
        if let Some(v) = value {
            k.push_str(&format!(" [{v}]"));
        }
        if wow64_32 {
            k.push_str(" (32)");
        }
        Ok(self.get(k)?.map(|d| RegistryData {
            data: (d != "<binary>").then_some(d),
        }))
    }

    fn file_exists(&mut self, path: &str) -> Result<bool, ProbeError> {
        Ok(self.get(format!("file {path}"))?.is_some())
    }

    fn file_version(&mut self, path: &str) -> Result<Option<String>, ProbeError> {
        self.get(format!("filever {path}"))
    }

    fn file_sha256(&mut self, path: &str) -> Result<Option<String>, ProbeError> {
        self.get(format!("sha {path}"))
    }

    fn service(&mut self, name: &str) -> Result<Option<ServiceState>, ProbeError> {
        Ok(self.get(format!("service {name}"))?.map(|s| ServiceState {
            running: s == "running",
        }))
    }

    fn package(
        &mut self,
        manager: DetectionManager,
        name: &str,
    ) -> Result<Option<String>, ProbeError> {
        self.get(format!("{} {name}", manager.as_str()))
    }

    fn script(
        &mut self,
        interpreter: Interpreter,
        body: &str,
        timeout: Duration,
    ) -> Result<ScriptResult, ProbeError> {
        assert_eq!(interpreter, Interpreter::Sh, "tests only use sh");
        assert!(timeout >= Duration::from_secs(1));
        let spec = self
            .get(format!("script {body}"))?
            .unwrap_or_else(|| "1".into());
        Ok(match spec.as_str() {
            "timeout" => ScriptResult {
                exit_code: None,
                stdout_non_empty: false,
                timed_out: true,
            },
            "signal" => ScriptResult {
                exit_code: None,
                stdout_non_empty: true,
                timed_out: false,
            },
            s => {
                let (code, out) = s.split_once(' ').unwrap_or((s, ""));
                ScriptResult {
                    exit_code: Some(code.parse().expect("exit code in test table")),
                    stdout_non_empty: out == "out",
                    timed_out: false,
                }
            }
        })
    }
}

fn rule(json: &str) -> Detection {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("bad rule in test: {e}: {json}"))
}

/// `yes`, `no` or `unknown`, with the explanation lines.
fn run(json: &str, facts: &[(&str, &str)]) -> (String, Vec<String>, Vec<String>) {
    let mut t = Table::new(facts);
    let (answer, lines) = match evaluate(&rule(json), &mut t) {
        Ok(o) => (if o.detected { "yes" } else { "no" }, o.explanation),
        Err(DetectionError::Indeterminate { explanation, .. }) => ("unknown", explanation),
        Err(e) => panic!("{json}: {e}"),
    };
    (answer.to_string(), lines, t.calls)
}

/// Facts of a [`Table`]: (probe call, answer).
type Facts = &'static [(&'static str, &'static str)];

// One condition, one fact: (rule, facts, answer, the single explanation line).
const SINGLE: &[(&str, Facts, &str, &str)] = &[
    // dpkg semantics: epochs, tildes, revisions.
    (
        r#"{"type":"package","manager":"dpkg","name":"hello","version":{"op":"gte","version":"2.10"}}"#,
        &[("dpkg hello", "2.10-3")],
        "yes",
        "dpkg hello: 2.10-3 >= 2.10 → yes",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello","version":{"op":"lt","version":"2.10"}}"#,
        &[("dpkg hello", "2.10-3")],
        "no",
        "dpkg hello: 2.10-3 < 2.10 → no",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello","version":{"op":"gt","version":"9.0"}}"#,
        &[("dpkg hello", "1:1.0")],
        "yes",
        "dpkg hello: 1:1.0 > 9.0 → yes",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello","version":{"op":"lt","version":"1.0"}}"#,
        &[("dpkg hello", "1.0~rc1")],
        "yes",
        "dpkg hello: 1.0~rc1 < 1.0 → yes",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello","version":{"op":"ne","version":"2.10-3"}}"#,
        &[("dpkg hello", "2.10-3")],
        "no",
        "dpkg hello: 2.10-3 != 2.10-3 → no",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello"}"#,
        &[("dpkg hello", "2.10-3")],
        "yes",
        "dpkg hello: 2.10-3 installed → yes",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello"}"#,
        &[],
        "no",
        "dpkg hello: not installed → no",
    ),
    (
        r#"{"type":"package","manager":"dpkg","name":"hello"}"#,
        &[("dpkg hello", "!fail dpkg-query not found")],
        "unknown",
        "dpkg hello: dpkg-query not found → unknown",
    ),
    // rpm as a constraint: a rule without a release ignores the installed release.
    (
        r#"{"type":"package","manager":"rpm","name":"bash","version":{"op":"eq","version":"5.1"}}"#,
        &[("rpm bash", "5.1-7.el9")],
        "yes",
        "rpm bash: 5.1-7.el9 = 5.1 → yes",
    ),
    (
        r#"{"type":"package","manager":"rpm","name":"bash","version":{"op":"gt","version":"5.1"}}"#,
        &[("rpm bash", "5.1-7.el9")],
        "no",
        "rpm bash: 5.1-7.el9 > 5.1 → no",
    ),
    (
        r#"{"type":"package","manager":"rpm","name":"bash","version":{"op":"gt","version":"5.1-6.el9"}}"#,
        &[("rpm bash", "5.1-7.el9")],
        "yes",
        "rpm bash: 5.1-7.el9 > 5.1-6.el9 → yes",
    ),
    (
        r#"{"type":"package","manager":"rpm","name":"bash","version":{"op":"lt","version":"6"}}"#,
        &[("rpm bash", "1:5.1-7")],
        "no",
        "rpm bash: 1:5.1-7 < 6 → no",
    ),
    // pacman: a trailing letter is a pre-release.
    (
        r#"{"type":"package","manager":"pacman","name":"vim","version":{"op":"lt","version":"9.0-1"}}"#,
        &[("pacman vim", "9.0a-1")],
        "yes",
        "pacman vim: 9.0a-1 < 9.0-1 → yes",
    ),
    // winget and choco: Windows dotted, numeric, missing parts 0.
    (
        r#"{"type":"package","manager":"winget","name":"Mozilla.Firefox","version":{"op":"eq","version":"128.0.0.0"}}"#,
        &[("winget Mozilla.Firefox", "128.0")],
        "yes",
        "winget Mozilla.Firefox: 128.0 = 128.0.0.0 → yes",
    ),
    (
        r#"{"type":"package","manager":"choco","name":"git","version":{"op":"gte","version":"2.9"}}"#,
        &[("choco git", "2.10.1")],
        "yes",
        "choco git: 2.10.1 >= 2.9 → yes",
    ),
    (
        r#"{"type":"package","manager":"choco","name":"git"}"#,
        &[("choco git", "!unsupported")],
        "unknown",
        "choco git: choco git is not supported on this operating system → unknown",
    ),
    // MSI: the product code reaches the probe in upper case.
    (
        r#"{"type":"msi_product","product_code":"{12345678-abcd-ef01-2345-6789abcdef01}","version":{"op":"lte","version":"10.2"}}"#,
        &[("msi {12345678-ABCD-EF01-2345-6789ABCDEF01}", "10.1.3")],
        "yes",
        "msi {12345678-ABCD-EF01-2345-6789ABCDEF01}: 10.1.3 <= 10.2 → yes",
    ),
    (
        r#"{"type":"msi_product","product_code":"{12345678-ABCD-EF01-2345-6789ABCDEF01}","version":{"op":"gte","version":"10.10"}}"#,
        &[("msi {12345678-ABCD-EF01-2345-6789ABCDEF01}", "10.9.0")],
        "no",
        "msi {12345678-ABCD-EF01-2345-6789ABCDEF01}: 10.9.0 >= 10.10 → no",
    ),
    (
        r#"{"type":"msi_product","product_code":"{12345678-ABCD-EF01-2345-6789ABCDEF01}"}"#,
        &[],
        "no",
        "msi {12345678-ABCD-EF01-2345-6789ABCDEF01}: not installed → no",
    ),
    (
        r#"{"type":"msi_product","product_code":"{12345678-ABCD-EF01-2345-6789ABCDEF01}"}"#,
        &[("msi {12345678-ABCD-EF01-2345-6789ABCDEF01}", "!unsupported")],
        "unknown",
        "msi {12345678-ABCD-EF01-2345-6789ABCDEF01}: msi {12345678-ABCD-EF01-2345-6789ABCDEF01} is not supported on this operating system → unknown",
    ),
    // Registry.
    (
        r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\Vendor\\App","check":{"check":"exists"}}"#,
        &[("reg HKLM\\SOFTWARE\\Vendor\\App", "")],
        "yes",
        "registry HKLM\\SOFTWARE\\Vendor\\App: present → yes",
    ),
    (
        r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\Vendor\\App","check":{"check":"exists"},"wow64_32":true}"#,
        &[("reg HKLM\\SOFTWARE\\Vendor\\App", "")],
        "no",
        "registry HKLM\\SOFTWARE\\Vendor\\App (32-bit view): absent → no",
    ),
    (
        r#"{"type":"registry","hive":"hkcu","key":"Software\\App","value":"Edition","check":{"check":"equals","data":"PRO Édition"}}"#,
        &[("reg HKCU\\Software\\App [Edition]", "Pro édition")],
        "yes",
        "registry HKCU\\Software\\App [Edition]: \"Pro édition\" equals \"PRO Édition\" → yes",
    ),
    (
        r#"{"type":"registry","hive":"hkcu","key":"Software\\App","value":"Edition","check":{"check":"equals","data":"Pro"}}"#,
        &[("reg HKCU\\Software\\App [Edition]", "Pro ")],
        "no",
        "registry HKCU\\Software\\App [Edition]: \"Pro \" differs from \"Pro\" → no",
    ),
    (
        r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\App","value":"Version","check":{"check":"version","op":"gte","version":"1.2"}}"#,
        &[("reg HKLM\\SOFTWARE\\App [Version]", "1.2.0.0")],
        "yes",
        "registry HKLM\\SOFTWARE\\App [Version]: 1.2.0.0 >= 1.2 → yes",
    ),
    (
        r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\App","value":"Version","check":{"check":"version","op":"gte","version":"1.2"}}"#,
        &[("reg HKLM\\SOFTWARE\\App [Version]", "<binary>")],
        "no",
        "registry HKLM\\SOFTWARE\\App [Version]: present without string data → no",
    ),
    (
        r#"{"type":"registry","hive":"hku","key":"S-1-5-18\\App","check":{"check":"exists"}}"#,
        &[("reg HKU\\S-1-5-18\\App", "!unsupported")],
        "unknown",
        "registry HKU\\S-1-5-18\\App: reg HKU\\S-1-5-18\\App is not supported on this operating system → unknown",
    ),
    // Files.
    (
        r#"{"type":"file_exists","path":"/opt/x"}"#,
        &[("file /opt/x", "")],
        "yes",
        "file /opt/x: present → yes",
    ),
    (
        r#"{"type":"file_exists","path":"/opt/x"}"#,
        &[],
        "no",
        "file /opt/x: absent → no",
    ),
    (
        r#"{"type":"file_exists","path":"/opt/x"}"#,
        &[("file /opt/x", "!fail permission denied")],
        "unknown",
        "file /opt/x: permission denied → unknown",
    ),
    (
        r#"{"type":"file_version","path":"C:\\App\\app.exe","check":{"op":"gt","version":"1.9"}}"#,
        &[("filever C:\\App\\app.exe", "1.10.0.0")],
        "yes",
        "file version C:\\App\\app.exe: 1.10.0.0 > 1.9 → yes",
    ),
    (
        r#"{"type":"file_version","path":"C:\\App\\app.exe","check":{"op":"eq","version":"1.2"}}"#,
        &[("filever C:\\App\\app.exe", "1.2.0-beta")],
        "no",
        "file version C:\\App\\app.exe: 1.2.0-beta = 1.2 → no",
    ),
    (
        r#"{"type":"file_version","path":"%ProgramFiles%\\App\\app.exe","check":{"op":"eq","version":"1.2"}}"#,
        &[],
        "no",
        "file version %ProgramFiles%\\App\\app.exe: absent or without a version → no",
    ),
    (
        r#"{"type":"file_version","path":"/usr/bin/x","check":{"op":"eq","version":"1.2"}}"#,
        &[("filever /usr/bin/x", "!unsupported")],
        "unknown",
        "file version /usr/bin/x: filever /usr/bin/x is not supported on this operating system → unknown",
    ),
    (
        r#"{"type":"file_sha256","path":"/opt/x","sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#,
        &[(
            "sha /opt/x",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        )],
        "yes",
        "sha256 /opt/x: matches → yes",
    ),
    (
        r#"{"type":"file_sha256","path":"/opt/x","sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#,
        &[(
            "sha /opt/x",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        )],
        "no",
        "sha256 /opt/x: differs (e3b0c44298fc…) → no",
    ),
    (
        r#"{"type":"file_sha256","path":"/opt/x","sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"}"#,
        &[],
        "no",
        "sha256 /opt/x: absent → no",
    ),
    // Services.
    (
        r#"{"type":"service_exists","name":"nginx"}"#,
        &[("service nginx", "stopped")],
        "yes",
        "service nginx: exists → yes",
    ),
    (
        r#"{"type":"service_exists","name":"nginx"}"#,
        &[],
        "no",
        "service nginx: absent → no",
    ),
    (
        r#"{"type":"service_running","name":"nginx"}"#,
        &[("service nginx", "running")],
        "yes",
        "service nginx: running → yes",
    ),
    (
        r#"{"type":"service_running","name":"nginx"}"#,
        &[("service nginx", "stopped")],
        "no",
        "service nginx: not running → no",
    ),
    (
        r#"{"type":"service_running","name":"nginx"}"#,
        &[],
        "no",
        "service nginx: absent → no",
    ),
    (
        r#"{"type":"service_running","name":"nginx"}"#,
        &[("service nginx", "!fail systemctl: timed out after 10 s")],
        "unknown",
        "service nginx: systemctl: timed out after 10 s → unknown",
    ),
    // Scripts: exit 0 with output, as Intune.
    (
        r#"{"type":"script","interpreter":"sh","body":"a"}"#,
        &[("script a", "0 out")],
        "yes",
        "script (sh): exit 0 with output → yes",
    ),
    (
        r#"{"type":"script","interpreter":"sh","body":"a"}"#,
        &[("script a", "0")],
        "no",
        "script (sh): exit 0 without output → no",
    ),
    (
        r#"{"type":"script","interpreter":"sh","body":"a"}"#,
        &[("script a", "1 out")],
        "no",
        "script (sh): exit 1 → no",
    ),
    (
        r#"{"type":"script","interpreter":"sh","body":"a"}"#,
        &[("script a", "signal")],
        "no",
        "script (sh): killed by a signal → no",
    ),
    (
        r#"{"type":"script","interpreter":"sh","body":"a","timeout_secs":5}"#,
        &[("script a", "timeout")],
        "unknown",
        "script (sh): timed out after 5 s → unknown",
    ),
    (
        r#"{"type":"script","interpreter":"sh","body":"a"}"#,
        &[("script a", "!fail sh: could not start")],
        "unknown",
        "script (sh): sh: could not start → unknown",
    ),
];

#[test]
fn every_condition_type_answers_from_its_fact() {
    let mut failures = Vec::new();
    for (json, facts, answer, line) in SINGLE {
        let (got, lines, _) = run(json, facts);
        if got != *answer || lines != [line.to_string()] {
            failures.push(format!(
                "{json}\n  want {answer} {line:?}\n  got  {got} {lines:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn an_indeterminate_rule_names_every_failed_condition() {
    let mut t = Table::new(&[
        ("dpkg a", "!fail dpkg-query not found"),
        ("file /x", "!fail permission denied"),
    ]);
    let r = rule(
        r#"{"type":"all","rules":[
            {"type":"package","manager":"dpkg","name":"a"},
            {"type":"file_exists","path":"/x"}]}"#,
    );
    let err = evaluate(&r, &mut t).unwrap_err();
    assert_eq!(
        err.to_string(),
        "detection could not be evaluated: dpkg a: dpkg-query not found; file /x: permission denied"
    );
}

const YES: &str = r#"{"type":"file_exists","path":"/yes"}"#;
const NO: &str = r#"{"type":"file_exists","path":"/no"}"#;
const UNKNOWN: &str = r#"{"type":"file_exists","path":"/unknown"}"#;
const FACTS: &[(&str, &str)] = &[("file /yes", ""), ("file /unknown", "!fail broken")];

fn group(kind: &str, children: &[&str]) -> String {
    format!(r#"{{"type":"{kind}","rules":[{}]}}"#, children.join(","))
}

#[test]
fn groups_follow_kleene_logic() {
    // Every ordered pair of truth values under both groups.
    let values = [("yes", YES), ("no", NO), ("unknown", UNKNOWN)];
    let all_of = |a: &str, b: &str| match (a, b) {
        ("no", _) | (_, "no") => "no",
        ("unknown", _) | (_, "unknown") => "unknown",
        _ => "yes",
    };
    let any_of = |a: &str, b: &str| match (a, b) {
        ("yes", _) | (_, "yes") => "yes",
        ("unknown", _) | (_, "unknown") => "unknown",
        _ => "no",
    };
    for (a, ja) in values {
        for (b, jb) in values {
            let (got, _, _) = run(&group("all", &[ja, jb]), FACTS);
            assert_eq!(got, all_of(a, b), "all({a}, {b})");
            let (got, _, _) = run(&group("any", &[ja, jb]), FACTS);
            assert_eq!(got, any_of(a, b), "any({a}, {b})");
        }
    }
    // Nested: any(all(yes, unknown), no) is unknown; all(any(no, yes), yes) is yes.
    let inner = group("all", &[YES, UNKNOWN]);
    assert_eq!(run(&group("any", &[&inner, NO]), FACTS).0, "unknown");
    let inner = group("any", &[NO, YES]);
    assert_eq!(run(&group("all", &[&inner, YES]), FACTS).0, "yes");
    // A single-child group is its child.
    assert_eq!(run(&group("all", &[UNKNOWN]), FACTS).0, "unknown");
    assert_eq!(run(&group("any", &[YES]), FACTS).0, "yes");
}

#[test]
fn explanations_indent_nested_conditions_under_their_group() {
    let inner = group("any", &[NO, YES]);
    let (got, lines, _) = run(&group("all", &[YES, &inner]), FACTS);
    assert_eq!(got, "yes");
    assert_eq!(
        lines,
        [
            "all of 2 → yes",
            "  file /yes: present → yes",
            "  any of 2 → yes",
            "    file /no: absent → no",
            "    file /yes: present → yes",
        ]
    );
}

const SCRIPT_YES: &str = r#"{"type":"script","interpreter":"sh","body":"yes"}"#;
const SCRIPT_NO: &str = r#"{"type":"script","interpreter":"sh","body":"no"}"#;

fn scripts_run(json: &str) -> (String, Vec<String>) {
    let facts = [
        ("file /yes", ""),
        ("file /unknown", "!fail broken"),
        ("script yes", "0 out"),
        ("script no", "1"),
    ];
    let (got, _, calls) = run(json, &facts);
    let scripts = calls
        .into_iter()
        .filter_map(|c| c.strip_prefix("script ").map(str::to_string))
        .collect();
    (got, scripts)
}

#[test]
fn short_circuit_skips_scripts_a_cheaper_condition_already_decided() {
    let cases: &[(String, &str, &[&str])] = &[
        // Scripts are evaluated after cheap conditions, whatever the written order.
        (group("any", &[SCRIPT_YES, YES]), "yes", &[]),
        (group("all", &[SCRIPT_YES, NO]), "no", &[]),
        (group("all", &[SCRIPT_YES, YES]), "yes", &["yes"]),
        // Among scripts, the written order holds and evaluation stops when decided.
        (group("any", &[SCRIPT_YES, SCRIPT_NO]), "yes", &["yes"]),
        (
            group("any", &[SCRIPT_NO, SCRIPT_YES]),
            "yes",
            &["no", "yes"],
        ),
        (group("all", &[SCRIPT_NO, SCRIPT_YES]), "no", &["no"]),
        // A group holding a script counts as expensive too.
        (
            group("any", &[&group("all", &[SCRIPT_YES]), YES]),
            "yes",
            &[],
        ),
        // An unknown does not stop evaluation: a later false still decides an `all`.
        (group("all", &[UNKNOWN, SCRIPT_NO]), "no", &["no"]),
    ];
    for (json, answer, scripts) in cases {
        let (got, ran) = scripts_run(json);
        let ran: Vec<&str> = ran.iter().map(String::as_str).collect();
        assert_eq!(
            (got.as_str(), ran.as_slice()),
            (*answer, *scripts),
            "{json}"
        );
    }
}

#[test]
fn skipped_conditions_are_counted_in_the_group_line() {
    let (_, lines, _) = run(&group("any", &[YES, NO, SCRIPT_YES]), FACTS);
    assert_eq!(
        lines,
        [
            "any of 3, 2 not evaluated → yes",
            "  file /yes: present → yes"
        ]
    );
}

#[test]
fn an_invalid_rule_is_not_evaluated() {
    let mut t = Table::new(&[]);
    let err = evaluate(&rule(r#"{"type":"all","rules":[]}"#), &mut t).unwrap_err();
    assert!(matches!(err, DetectionError::Invalid(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "invalid detection rule: /rules: a group needs at least one rule"
    );
    assert!(t.calls.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------------

fn problems(json: &str) -> Vec<(String, String)> {
    validate(&rule(json))
        .into_iter()
        .map(|p| (p.path, p.message))
        .collect()
}

fn nested(depth: usize) -> String {
    let mut r = YES.to_string();
    for _ in 1..depth {
        r = group("all", &[&r]);
    }
    r
}

#[test]
fn valid_rules_have_no_problems() {
    let ok = [
        r#"{"type":"msi_product","product_code":"{12345678-abcd-EF01-2345-6789abcdef01}"}"#,
        r#"{"type":"file_exists","path":"/opt/app"}"#,
        r#"{"type":"file_exists","path":"C:\\Program Files\\App"}"#,
        r#"{"type":"file_exists","path":"c:/Program Files/App"}"#,
        r#"{"type":"file_exists","path":"%ProgramFiles(x86)%\\App\\app.exe"}"#,
        r#"{"type":"file_exists","path":"%SystemRoot%"}"#,
        r#"{"type":"file_exists","path":"\\\\server\\share\\app"}"#,
        r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\App","value":"","check":{"check":"equals","data":""}}"#,
        r#"{"type":"service_running","name":"nginx.service"}"#,
        r#"{"type":"service_exists","name":"wuauserv"}"#,
        r#"{"type":"package","manager":"winget","name":"Mozilla.Firefox","version":{"op":"gte","version":"1.0"}}"#,
        r#"{"type":"package","manager":"dpkg","name":"libc6","version":{"op":"eq","version":"garbage~~!!"}}"#,
        r#"{"type":"script","interpreter":"bash","body":"echo hi","timeout_secs":600}"#,
    ];
    for json in ok {
        assert_eq!(problems(json), [], "{json}");
    }
    assert_eq!(problems(&nested(limits::MAX_DETECTION_DEPTH)), []);
}

#[test]
fn problems_point_at_the_offending_field() {
    let long = "a".repeat(limits::MAX_NAME_BYTES + 1);
    let long_version = "1".repeat(limits::MAX_VERSION_BYTES + 1);
    let long_path = format!("/{}", "a".repeat(MAX_PATH_BYTES));
    let big_script = "x".repeat(limits::MAX_DETECTION_SCRIPT_BYTES + 1);
    let cases: Vec<(String, &str, &str)> = vec![
        (group("any", &[]), "/rules", "at least one rule"),
        (
            group("all", &[YES, &group("any", &[])]),
            "/rules/1/rules",
            "at least one rule",
        ),
        (
            r#"{"type":"msi_product","product_code":"12345678-ABCD-EF01-2345-6789ABCDEF01"}"#.into(),
            "/product_code",
            "GUID in braces",
        ),
        (
            r#"{"type":"msi_product","product_code":"{12345678-ABCD-EF01-2345-6789ABCDEF0G}"}"#.into(),
            "/product_code",
            "GUID in braces",
        ),
        (
            r#"{"type":"msi_product","product_code":"{12345678-ABCD-EF01-2345-6789ABCDEF01}","version":{"op":"eq","version":" "}}"#.into(),
            "/version/version",
            "cannot be empty",
        ),
        (
            r#"{"type":"file_sha256","path":"/x","sha256":"2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824"}"#.into(),
            "/sha256",
            "64 lowercase",
        ),
        (
            r#"{"type":"file_sha256","path":"/x","sha256":"2cf24d"}"#.into(),
            "/sha256",
            "64 lowercase",
        ),
        (
            r#"{"type":"file_exists","path":"opt/x"}"#.into(),
            "/path",
            "absolute",
        ),
        (
            r#"{"type":"file_exists","path":"C:relative"}"#.into(),
            "/path",
            "absolute",
        ),
        (
            r#"{"type":"file_exists","path":"%%\\x"}"#.into(),
            "/path",
            "absolute",
        ),
        (
            r#"{"type":"file_exists","path":"%APPDATA%x"}"#.into(),
            "/path",
            "absolute",
        ),
        (
            r#"{"type":"file_exists","path":"\\\\server"}"#.into(),
            "/path",
            "absolute",
        ),
        (
            r#"{"type":"file_exists","path":"/x\u0000y"}"#.into(),
            "/path",
            "control characters",
        ),
        (
            format!(r#"{{"type":"file_exists","path":"{long_path}"}}"#),
            "/path",
            "at most 4096 bytes",
        ),
        (
            r#"{"type":"file_version","path":"/x","check":{"op":"eq","version":""}}"#.into(),
            "/check/version",
            "cannot be empty",
        ),
        (
            r#"{"type":"service_exists","name":"../../bin/sh"}"#.into(),
            "/name",
            "cannot contain /",
        ),
        (
            r#"{"type":"service_running","name":"--help"}"#.into(),
            "/name",
            "start with -",
        ),
        (
            r#"{"type":"service_running","name":"a\nb"}"#.into(),
            "/name",
            "control characters",
        ),
        (
            r#"{"type":"service_running","name":""}"#.into(),
            "/name",
            "cannot be empty",
        ),
        (
            format!(r#"{{"type":"service_running","name":"{long}"}}"#),
            "/name",
            "at most 128 bytes",
        ),
        (
            r#"{"type":"package","manager":"dpkg","name":"-x"}"#.into(),
            "/name",
            "start with -",
        ),
        (
            r#"{"type":"package","manager":"rpm","name":"a b"}"#.into(),
            "/name",
            "whitespace",
        ),
        (
            format!(
                r#"{{"type":"package","manager":"pacman","name":"vim","version":{{"op":"eq","version":"{long_version}"}}}}"#
            ),
            "/version/version",
            "at most 128 bytes",
        ),
        (
            r#"{"type":"package","manager":"rpm","name":"bash","version":{"op":"eq","version":""}}"#.into(),
            "/version/version",
            "cannot be empty",
        ),
        (
            r#"{"type":"registry","hive":"hklm","key":"","check":{"check":"exists"}}"#.into(),
            "/key",
            "cannot be empty",
        ),
        (
            r#"{"type":"registry","hive":"hklm","key":"\\SOFTWARE\\App","check":{"check":"exists"}}"#.into(),
            "/key",
            "without a leading",
        ),
        (
            r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\App","check":{"check":"equals","data":"x"}}"#.into(),
            "/value",
            "needs a value name",
        ),
        (
            r#"{"type":"registry","hive":"hklm","key":"SOFTWARE\\App","value":"V","check":{"check":"version","op":"gt","version":""}}"#.into(),
            "/check/version",
            "cannot be empty",
        ),
        (
            r#"{"type":"script","interpreter":"sh","body":"  \n"}"#.into(),
            "/body",
            "empty",
        ),
        (
            format!(r#"{{"type":"script","interpreter":"sh","body":"{big_script}"}}"#),
            "/body",
            "the limit is 65536 bytes",
        ),
        (
            r#"{"type":"script","interpreter":"sh","body":"x","timeout_secs":0}"#.into(),
            "/timeout_secs",
            "between 1 and 600",
        ),
        (
            r#"{"type":"script","interpreter":"sh","body":"x","timeout_secs":601}"#.into(),
            "/timeout_secs",
            "between 1 and 600",
        ),
        (
            nested(limits::MAX_DETECTION_DEPTH + 1),
            "/rules/0/rules/0/rules/0/rules/0/rules/0/rules/0/rules/0/rules/0",
            "nested too deeply",
        ),
    ];
    let mut failures = Vec::new();
    for (json, path, message) in &cases {
        let got = problems(json);
        if !(got.len() == 1 && got[0].0 == *path && got[0].1.contains(message)) {
            failures.push(format!("{json}\n  want {path} ~ {message}\n  got  {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn too_many_nodes_is_one_problem_at_the_root() {
    let children: Vec<&str> = vec![YES; limits::MAX_DETECTION_NODES];
    assert_eq!(
        problems(&group("any", &children)),
        [(
            String::new(),
            format!(
                "the rule has {} nodes (groups and conditions); the limit is {}",
                limits::MAX_DETECTION_NODES + 1,
                limits::MAX_DETECTION_NODES
            )
        )]
    );
    let children: Vec<&str> = vec![YES; limits::MAX_DETECTION_NODES - 1];
    assert_eq!(problems(&group("any", &children)), []);
}

#[test]
fn several_problems_are_all_reported() {
    let got = problems(
        r#"{"type":"all","rules":[
            {"type":"file_exists","path":"x"},
            {"type":"any","rules":[{"type":"service_exists","name":"a/b"},{"type":"any","rules":[]}]}]}"#,
    );
    let paths: Vec<&str> = got.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/rules/0/path",
            "/rules/1/rules/0/name",
            "/rules/1/rules/1/rules"
        ]
    );
}

#[test]
fn product_codes_normalise_to_upper_case_braced_guids() {
    assert_eq!(
        normalise_product_code("{abcdef01-2345-6789-abcd-ef0123456789}").as_deref(),
        Some("{ABCDEF01-2345-6789-ABCD-EF0123456789}")
    );
    for bad in [
        "",
        "{}",
        "abcdef01-2345-6789-abcd-ef0123456789",
        "{abcdef01-2345-6789-abcd-ef0123456789",
        "{abcdef012345-6789-abcd-ef0123456789}",
        "{abcdef01-2345-6789-abcd-ef01234567890}",
        "{abcdef01-2345-6789-abcd-ef012345678é}",
    ] {
        assert_eq!(normalise_product_code(bad), None, "{bad}");
    }
}

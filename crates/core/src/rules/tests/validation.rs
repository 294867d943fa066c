//! Validation errors: each bad rule is refused with every problem listed, at the exact JSON
//! pointer, with the valid alternatives where they help; limits are enforced at their boundary.

use serde_json::{Value, json};

use super::*;

fn errors(rule: &Value) -> Vec<RuleError> {
    match validate(rule, &context()) {
        Ok(r) => panic!("rule {rule} was accepted as {r:?}"),
        Err(e) => e,
    }
}

fn paths_and_messages(rule: &Value) -> Vec<(String, String)> {
    errors(rule)
        .into_iter()
        .map(|e| (e.path, e.message))
        .collect()
}

/// (rule, expected errors as (JSON pointer, message)), in the order they are reported.
fn table() -> Vec<(Value, Vec<(&'static str, &'static str)>)> {
    vec![
        (
            json!({"field": "os.nmae", "op": "eq", "value": "x"}),
            vec![("/field", "unknown field \"os.nmae\"")],
        ),
        (
            json!({"all": [{"tag": "a"}, {"any": [{"field": "os.name", "op": "gt", "value": 3}]}]}),
            vec![(
                "/all/1/any/0/op",
                "operator \"gt\" does not apply to os.name, a string field",
            )],
        ),
        (
            json!({"field": "os.name", "op": "greater", "value": "x"}),
            vec![("/op", "unknown operator \"greater\"")],
        ),
        (
            json!({"field": "custom.cost", "op": "eq", "value": "high"}),
            vec![(
                "/value",
                "\"eq\" on custom.cost compares numbers, but the value is a string",
            )],
        ),
        (
            json!({"field": "custom.managed", "op": "eq", "value": "yes"}),
            vec![(
                "/value",
                "\"eq\" on custom.managed compares true or false, but the value is a string",
            )],
        ),
        (
            json!({"field": "custom.colour", "op": "eq", "value": "red"}),
            vec![("/field", "unknown custom field \"colour\"")],
        ),
        (
            json!({"field": "hardware.memory_bytes", "op": "in", "value": [1, "2"]}),
            vec![(
                "/value/1",
                "\"in\" on hardware.memory_bytes compares numbers, but the value is a string",
            )],
        ),
        (
            json!({"field": "os.id", "op": "in", "value": "debian"}),
            vec![(
                "/value",
                "\"in\" on os.id compares against a list of strings, but the value is a string",
            )],
        ),
        (
            json!({"field": "os.id", "op": "eq", "valeu": "debian"}),
            vec![
                ("/valeu", "unknown key \"valeu\" in a field condition"),
                ("", "missing \"value\" for \"eq\""),
            ],
        ),
        (
            json!({"field": "os.id", "value": "debian"}),
            vec![("", "missing \"op\"")],
        ),
        (
            json!({"field": "os.id", "op": "exists", "value": true}),
            vec![("/value", "\"exists\" takes no value")],
        ),
        (
            json!({"field": "hardware.memory_bytes", "op": "gt", "value": 1, "case_insensitive": true}),
            vec![(
                "/case_insensitive",
                "\"case_insensitive\" only applies to eq, ne, in, contains, starts_with, ends_with and regex",
            )],
        ),
        (
            json!({"field": "os.version_id", "op": "eq", "value": "12", "scheme": "dpkg"}),
            vec![(
                "/scheme",
                "\"scheme\" only applies to the version_* operators",
            )],
        ),
        (
            json!({"field": "os.version_id", "op": "version_gt", "value": "12", "scheme": "deb"}),
            vec![("/scheme", "unknown version scheme \"deb\"")],
        ),
        (
            json!({"field": "virtualization.kind", "op": "in", "value": ["physical", "vm"]}),
            vec![("/value/1", "\"vm\" is not a value of virtualization.kind")],
        ),
        (
            json!({"field": "custom.tier", "op": "eq", "value": "platinum"}),
            vec![("/value", "\"platinum\" is not a value of custom.tier")],
        ),
        (
            json!({"field": "tags", "op": "eq", "value": "web"}),
            vec![(
                "/op",
                "operator \"eq\" does not apply to tags, a list of strings",
            )],
        ),
        (
            json!({"field": "status.last_seen", "op": "older_than", "value": "7days"}),
            vec![(
                "/value",
                "\"7days\" is not a duration: write a whole number and a unit s, m, h, d or w, such as 30m, 12h, 7d or 2w (at most 100 years)",
            )],
        ),
        (
            json!({"field": "status.enrolled_at", "op": "lt", "value": "2026-02-30"}),
            vec![(
                "/value",
                "\"2026-02-30\" is not a time: write a date such as 2026-11-25, a time such as 2026-11-25T08:00:00Z, or milliseconds since 1970",
            )],
        ),
        (
            json!({"field": "network.interfaces[].ipv4", "op": "cidr", "value": "10.0.0.0/33"}),
            vec![(
                "/value",
                "\"10.0.0.0/33\" is not a network: write an address and prefix length such as 10.0.0.0/8 or 2001:db8::/32",
            )],
        ),
        (
            json!({"field": "os.hostname", "op": "regex", "value": "web(\\d+"}),
            vec![(
                "/value",
                "invalid regex \"web(\\\\d+\": found open group without closing ')'",
            )],
        ),
        (
            json!({"field": "os.hostname", "op": "regex", "value": "(a{1000}){1000}"}),
            vec![(
                "/value",
                "invalid regex \"(a{1000}){1000}\": compiled regex exceeded size limit",
            )],
        ),
        (
            json!({"software": {"name": "nginx", "source": "deb"}}),
            vec![("/software/source", "unknown package source \"deb\"")],
        ),
        (
            json!({"software": {"name": "nginx", "op": "version_gte"}}),
            vec![(
                "/software",
                "missing \"value\": the version to compare with",
            )],
        ),
        (
            json!({"software": {"name": "nginx", "value": "1.2"}}),
            vec![(
                "/software/value",
                "a version needs an \"op\" saying how to compare it",
            )],
        ),
        (
            json!({"software": {"name": "nginx", "op": "gt", "value": "1.2"}}),
            vec![(
                "/software/op",
                "operator \"gt\" does not apply to software; software compares versions",
            )],
        ),
        (
            json!({"software": {"version": "1.2"}}),
            vec![
                (
                    "/software/version",
                    "unknown key \"version\" in a software condition",
                ),
                ("/software", "missing \"name\" (the package name)"),
            ],
        ),
        (
            json!({"software": "nginx"}),
            vec![(
                "/software",
                "\"software\" needs an object with a \"name\", not a string",
            )],
        ),
        (
            json!({"group": "nope"}),
            vec![("/group", "unknown group \"nope\"")],
        ),
        (
            json!({"tag": ""}),
            vec![("/tag", "a tag must not be empty")],
        ),
        (
            json!({"tag": 5}),
            vec![("/tag", "a tag must be a string, not a number")],
        ),
        (
            json!("os.id == debian"),
            vec![(
                "",
                "a condition must be an object with one of the keys all, any, not, field, software, tag, group, not a string",
            )],
        ),
        (
            json!({}),
            vec![(
                "",
                "a condition needs one of the keys all, any, not, field, software, tag, group; it is empty",
            )],
        ),
        (
            json!({"op": "eq", "value": 1}),
            vec![(
                "",
                "a condition needs one of the keys all, any, not, field, software, tag, group; found op, value",
            )],
        ),
        (
            json!({"tag": "a", "group": "pilot"}),
            vec![(
                "",
                "a condition has exactly one of the keys all, any, not, field, software, tag, group; this one has tag and group",
            )],
        ),
        (
            json!({"all": {"tag": "a"}}),
            vec![("/all", "\"all\" needs a list of conditions, not an object")],
        ),
        (
            json!({"not": [{"tag": "a"}]}),
            vec![(
                "/not",
                "a condition must be an object with one of the keys all, any, not, field, software, tag, group, not a list",
            )],
        ),
        (
            json!({"any": [{"tag": "a"}], "a/b~c": 1}),
            vec![("/a~1b~0c", "unknown key \"a/b~c\" in an \"any\" condition")],
        ),
        // Several problems in different branches are all reported, in document order.
        (
            json!({"all": [
                {"field": "os.nmae", "op": "eq", "value": "x"},
                {"any": [{"software": {"name": "nginx", "source": "deb"}}, {"group": "nope"}]},
                {"not": {"field": "hardware.memory_bytes", "op": "gt", "value": "8G"}}
            ]}),
            vec![
                ("/all/0/field", "unknown field \"os.nmae\""),
                (
                    "/all/1/any/0/software/source",
                    "unknown package source \"deb\"",
                ),
                ("/all/1/any/1/group", "unknown group \"nope\""),
                (
                    "/all/2/not/value",
                    "\"gt\" on hardware.memory_bytes compares numbers, but the value is a string",
                ),
            ],
        ),
    ]
}

#[test]
fn bad_rules_are_refused_with_exact_paths() {
    let mut failures = Vec::new();
    for (rule, want) in table() {
        let got = paths_and_messages(&rule);
        let want: Vec<(String, String)> = want
            .into_iter()
            .map(|(p, m)| (p.to_string(), m.to_string()))
            .collect();
        if got != want {
            failures.push(format!("{rule}\n  expected {want:?}\n  got      {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn errors_list_the_valid_choices() {
    let valid = |rule: Value| errors(&rule).remove(0).valid;

    let fields = valid(json!({"field": "os.nmae", "op": "eq", "value": "x"}));
    for f in [
        "os.name",
        "hardware.memory_bytes",
        "tags[]",
        "custom.owner",
        "custom.tier",
    ] {
        assert!(
            fields.contains(&f.to_string()),
            "{f} missing from {fields:?}"
        );
    }
    assert_eq!(
        valid(json!({"field": "os.name", "op": "gt", "value": 3})),
        [
            "eq",
            "ne",
            "in",
            "contains",
            "starts_with",
            "ends_with",
            "regex",
            "version_eq",
            "version_ne",
            "version_gt",
            "version_gte",
            "version_lt",
            "version_lte",
            "exists",
            "not_exists"
        ]
    );
    assert_eq!(
        valid(json!({"field": "security.pending_reboot", "op": "gt", "value": 1})),
        ["eq", "ne", "exists", "not_exists"]
    );
    assert_eq!(
        valid(json!({"field": "tags", "op": "eq", "value": "web"})),
        ["contains", "exists", "not_exists"]
    );
    assert_eq!(
        valid(json!({"field": "virtualization.kind", "op": "eq", "value": "vm"})),
        ["physical", "virtual_machine", "container"]
    );
    assert_eq!(
        valid(json!({"field": "custom.colour", "op": "eq", "value": "x"})),
        [
            "custom.cost",
            "custom.managed",
            "custom.owner",
            "custom.tier",
            "custom.warranty_end"
        ]
    );
    assert_eq!(
        valid(json!({"group": "nope"})),
        ["g-web", "pilot", "servers"]
    );
    assert_eq!(
        valid(json!({"field": "os.id", "op": "eq", "valeu": "x"})),
        ["field", "op", "value", "case_insensitive", "scheme"]
    );
    assert_eq!(
        valid(json!({"software": {"name": "x", "source": "deb"}})),
        SOFTWARE_SOURCES
    );
    let rendered = errors(&json!({"field": "security.pending_reboot", "op": "gt", "value": 1}))
        .remove(0)
        .to_string();
    assert_eq!(
        rendered,
        "/op: operator \"gt\" does not apply to security.pending_reboot, a boolean field (valid: eq, ne, exists, not_exists)"
    );
}

#[test]
fn a_group_cannot_reference_itself() {
    let mut ctx = context();
    ctx.self_group = Some("pilot".into());
    let errs = validate(&json!({"not": {"group": "pilot"}}), &ctx).unwrap_err();
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "/not/group");
    assert_eq!(
        errs[0].message,
        "a group's rule cannot reference the group itself"
    );
}

fn nested_not(levels: usize) -> Value {
    let mut rule = json!({"tag": "x"});
    for _ in 1..levels {
        rule = json!({ "not": rule });
    }
    rule
}

#[test]
fn nesting_is_limited_to_sixteen_levels() {
    assert!(validate(&nested_not(limits::MAX_DEPTH), &context()).is_ok());
    let errs = errors(&nested_not(limits::MAX_DEPTH + 1));
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].path, "/not".repeat(limits::MAX_DEPTH));
    assert_eq!(errs[0].message, "conditions nest deeper than 16 levels");
    // Hostile depth is refused without recursing through all of it.
    let errs = errors(&nested_not(100));
    assert_eq!(errs.len(), 1);
}

#[test]
fn rules_are_limited_to_256_conditions() {
    let tags = |n: usize| json!({"any": (0..n).map(|i| json!({"tag": format!("t{i}")})).collect::<Vec<_>>()});
    assert!(validate(&tags(limits::MAX_NODES - 1), &context()).is_ok());
    let errs = errors(&tags(limits::MAX_NODES));
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].path, "/any/255");
    assert_eq!(
        errs[0].message,
        "the rule has more than 256 conditions; split it into groups that reference each other"
    );
    // A huge rule yields one error, not one per extra condition.
    assert_eq!(errors(&tags(50_000)).len(), 1);
}

#[test]
fn in_lists_strings_and_regexes_are_bounded() {
    let list = |n: usize| json!({"field": "os.id", "op": "in", "value": (0..n).map(|i| format!("os{i}")).collect::<Vec<_>>()});
    assert!(validate(&list(limits::MAX_IN_VALUES), &context()).is_ok());
    assert_eq!(
        paths_and_messages(&list(limits::MAX_IN_VALUES + 1)),
        [(
            "/value".to_string(),
            "\"in\" accepts at most 1000 values, this list has 1001".to_string()
        )]
    );

    let long = "x".repeat(limits::MAX_STRING + 1);
    assert!(validate(&json!({"tag": "x".repeat(limits::MAX_STRING)}), &context()).is_ok());
    assert_eq!(
        paths_and_messages(&json!({"all": [{"tag": "ok"}, {"tag": long}]})),
        [(
            "/all/1/tag".to_string(),
            "a tag is longer than 1024 bytes".to_string()
        )]
    );
    assert_eq!(
        paths_and_messages(&json!({"field": "os.id", "op": "in", "value": ["a", long]})),
        [(
            "/value/1".to_string(),
            "a value is longer than 1024 bytes".to_string()
        )]
    );

    let regex = |n: usize| json!({"field": "os.hostname", "op": "regex", "value": "a".repeat(n)});
    assert!(validate(&regex(limits::MAX_REGEX), &context()).is_ok());
    assert_eq!(
        paths_and_messages(&regex(limits::MAX_REGEX + 1)),
        [(
            "/value".to_string(),
            "the regex is longer than 512 bytes".to_string()
        )]
    );
}

/// A pattern that takes exponential time in a backtracking engine is accepted: regex-lite
/// matches in time linear in the input, so evaluation stays bounded.
#[test]
fn catastrophic_regex_runs_in_linear_time() {
    let rule = compile(&json!({"field": "os.hostname", "op": "regex", "value": "^(a+)+$"}));
    let inventory = capstan_proto::inventory::InventoryDocument {
        os: Some(capstan_proto::inventory::OperatingSystem {
            family: "linux".into(),
            hostname: format!("{}!", "a".repeat(4000)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let facts = DeviceFacts {
        inventory: Some(&inventory),
        ..Default::default()
    };
    assert!(!rule.evaluate(&facts.index(), 0));
}

#[test]
fn canonical_json_round_trips() {
    let ctx = context();
    for rule in [
        json!({"all": [
            {"field": "os.id", "op": "in", "value": ["debian", "ubuntu"], "case_insensitive": true},
            {"any": [{"software": {"name": "nginx", "source": "dpkg", "op": "version_gte", "value": "1.22"}}, {"tag": "web"}]},
            {"not": {"group": "pilot"}},
            {"field": "status.last_seen", "op": "older_than", "value": "7d"},
            {"field": "status.enrolled_at", "op": "lt", "value": "2026-01-01"},
            {"field": "status.enrolled_at", "op": "gt", "value": 1700000000000i64},
            {"field": "network.interfaces[].ipv4", "op": "cidr", "value": "10.0.0.0/8"},
            {"field": "hardware.memory_bytes", "op": "in", "value": [8589934592i64, 1.5]},
            {"field": "os.kernel", "op": "version_gte", "value": "6.1", "scheme": "dpkg"},
            {"field": "os.hostname", "op": "regex", "value": "^web"},
            {"field": "custom.owner", "op": "exists"},
            {"software": {"name": "telnet"}}
        ]}),
        json!({"any": []}),
    ] {
        let parsed = validate(&rule, &ctx).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(parsed.to_json(), rule);
        assert_eq!(serde_json::to_value(&parsed).ok(), Some(rule.clone()));
        assert_eq!(validate(&parsed.to_json(), &ctx).ok(), Some(parsed));
    }
}

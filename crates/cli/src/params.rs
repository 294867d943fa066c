//! The text forms operators type for job inputs, turned into wire values: `--env K=V`,
//! `--arg name=value` (converted by the script parameter's declared type), parameter
//! declarations `name:type[=default][!]`, and the interpreter a script's `#!` line names. The
//! clap value parsers here make bad input a usage error (exit 2) before anything is sent.

use capstan_proto::api::FieldType;
use capstan_proto::jobs::{Interpreter, ScriptParameter};

/// `K=V` for `--env`: the name is everything before the first `=`, the value may be empty and
/// may contain further `=`.
pub fn parse_env(input: &str) -> Result<(String, String), String> {
    let Some((k, v)) = input.split_once('=') else {
        return Err(format!(
            "{input:?} is not NAME=VALUE (write NAME= for an empty value)"
        ));
    };
    if k.is_empty() {
        return Err(format!("{input:?} has no variable name before '='"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// `name=value` for `--arg`; the value stays text until the script's parameter types are known.
pub fn parse_arg(input: &str) -> Result<(String, String), String> {
    let Some((k, v)) = input.split_once('=') else {
        return Err(format!("{input:?} is not NAME=VALUE"));
    };
    if k.is_empty() {
        return Err(format!("{input:?} has no parameter name before '='"));
    }
    Ok((k.to_string(), v.to_string()))
}

/// A parameter declaration: `name:type[=default][!]`, where `type` is `string`, `number`,
/// `boolean`, `date` or `enum(a|b|c)`, and a trailing `!` marks the parameter required.
/// The default is converted like an argument value of that type.
pub fn parse_param(input: &str) -> Result<ScriptParameter, String> {
    let bad = |why: &str| {
        format!(
            "invalid parameter {input:?}: {why} (write name:type[=default][!], type one of string, number, boolean, date, enum(a|b))"
        )
    };
    let Some((name, rest)) = input.split_once(':') else {
        return Err(bad("no ':' after the name"));
    };
    if name.is_empty() {
        return Err(bad("empty name"));
    }
    let (rest, required) = match rest.strip_suffix('!') {
        Some(r) => (r, true),
        None => (rest, false),
    };
    let (param_type, enum_values, default_text) = if let Some(after) = rest.strip_prefix("enum(") {
        let Some(close) = after.find(')') else {
            return Err(bad("enum( without ')'"));
        };
        let values: Vec<String> = after[..close].split('|').map(str::to_string).collect();
        if values.iter().any(String::is_empty) {
            return Err(bad("an enum value is empty"));
        }
        let tail = &after[close + 1..];
        let default = match tail.strip_prefix('=') {
            Some(d) => Some(d),
            None if tail.is_empty() => None,
            None => return Err(bad("unexpected text after enum(...)")),
        };
        (FieldType::Enum, values, default)
    } else {
        let (ty, default) = match rest.split_once('=') {
            Some((t, d)) => (t, Some(d)),
            None => (rest, None),
        };
        let ty = match FieldType::parse(ty) {
            Some(FieldType::Enum) => return Err(bad("an enum lists its values: enum(a|b)")),
            Some(t) => t,
            None => return Err(bad(&format!("unknown type {ty:?}"))),
        };
        (ty, Vec::new(), default)
    };
    let mut param = ScriptParameter {
        name: name.to_string(),
        param_type,
        enum_values,
        default: None,
        required,
        description: String::new(),
    };
    if let Some(text) = default_text {
        param.default = Some(typed_value(&param, text).map_err(|e| bad(&e))?);
    }
    Ok(param)
}

/// A parameter as the declaration text [`parse_param`] reads (for display).
pub fn param_spec(p: &ScriptParameter) -> String {
    let mut out = format!("{}:", p.name);
    if p.param_type == FieldType::Enum {
        out.push_str(&format!("enum({})", p.enum_values.join("|")));
    } else {
        out.push_str(p.param_type.as_str());
    }
    match &p.default {
        None | Some(serde_json::Value::Null) => {}
        Some(serde_json::Value::String(s)) => {
            out.push('=');
            out.push_str(s);
        }
        Some(other) => {
            out.push('=');
            out.push_str(&other.to_string());
        }
    }
    if p.required {
        out.push('!');
    }
    out
}

/// Convert an argument's text to the JSON value the server expects for the parameter's type:
/// numbers and booleans as JSON, the rest as strings (enum values checked against the list).
pub fn typed_value(p: &ScriptParameter, text: &str) -> Result<serde_json::Value, String> {
    match p.param_type {
        FieldType::Number => number(text).ok_or_else(|| {
            format!(
                "{text:?} is not a number (parameter {} is a number)",
                p.name
            )
        }),
        FieldType::Boolean => match text {
            "true" => Ok(serde_json::Value::Bool(true)),
            "false" => Ok(serde_json::Value::Bool(false)),
            _ => Err(format!(
                "{text:?} is not true or false (parameter {} is a boolean)",
                p.name
            )),
        },
        FieldType::Enum if !p.enum_values.iter().any(|v| v == text) => Err(format!(
            "{text:?} is not one of {} (parameter {})",
            p.enum_values.join(", "),
            p.name
        )),
        FieldType::String | FieldType::Date | FieldType::Enum => {
            Ok(serde_json::Value::String(text.to_string()))
        }
    }
}

/// An integer stays an integer (so the script receives `12`, not `12.0`); otherwise a finite
/// floating-point number.
fn number(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(u.into());
    }
    let f: f64 = t.parse().ok()?;
    serde_json::Number::from_f64(f)
        .filter(|_| f.is_finite())
        .map(serde_json::Value::Number)
}

/// The interpreter a script's first line asks for: `#!/bin/bash`, `#!/usr/bin/env python3`,
/// `#!/usr/bin/env -S bash -e` … `Ok(None)` without a `#!` line; an error when the line names
/// an interpreter Capstan does not run (so a Perl script is not silently handed to `sh`).
pub fn shebang_interpreter(body: &str) -> Result<Option<Interpreter>, String> {
    let first = body.lines().next().unwrap_or("");
    let first = first.strip_prefix('\u{feff}').unwrap_or(first);
    let Some(line) = first.strip_prefix("#!") else {
        return Ok(None);
    };
    let mut words = line.split_whitespace();
    let Some(program) = words.next() else {
        return Err("the #! line names no interpreter".into());
    };
    let mut name = basename(program);
    if name == "env" {
        // `env [-S] [-flags] program …`
        name = words
            .find(|w| !w.starts_with('-'))
            .map(basename)
            .ok_or_else(|| format!("#!{} names no program after env", line.trim()))?;
    }
    let interpreter = match name {
        "sh" | "dash" => Interpreter::Sh,
        "bash" => Interpreter::Bash,
        "python3" | "python" => Interpreter::Python3,
        "pwsh" | "powershell" | "powershell.exe" | "pwsh.exe" => Interpreter::Powershell,
        "cmd" | "cmd.exe" => Interpreter::Cmd,
        other => {
            return Err(format!(
                "the #! line asks for {other:?}, which Capstan does not run; pass --interpreter sh|bash|python3|powershell|cmd"
            ));
        }
    };
    Ok(Some(interpreter))
}

fn basename(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn env_and_args_split_at_the_first_equals_sign() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert_eq!(parse_env("EMPTY="), Ok(("EMPTY".into(), String::new())));
        assert!(parse_env("NOVALUE").unwrap_err().contains("NAME=VALUE"));
        assert!(parse_env("=x").is_err());
        assert_eq!(parse_arg("msg=a b"), Ok(("msg".into(), "a b".into())));
        assert!(parse_arg("msg").is_err());
    }

    #[test]
    fn parameter_declarations() {
        for (input, expected) in [
            (
                "service:string!",
                json!({"name": "service", "type": "string", "enum_values": [], "required": true, "description": ""}),
            ),
            (
                "count:number=3",
                json!({"name": "count", "type": "number", "enum_values": [], "default": 3, "required": false, "description": ""}),
            ),
            (
                "ratio:number=0.5",
                json!({"name": "ratio", "type": "number", "enum_values": [], "default": 0.5, "required": false, "description": ""}),
            ),
            (
                "force:boolean=false",
                json!({"name": "force", "type": "boolean", "enum_values": [], "default": false, "required": false, "description": ""}),
            ),
            (
                "level:enum(debug|info|warn)=info!",
                json!({"name": "level", "type": "enum", "enum_values": ["debug", "info", "warn"], "default": "info", "required": true, "description": ""}),
            ),
            (
                "url:string=http://x/?a=b",
                json!({"name": "url", "type": "string", "enum_values": [], "default": "http://x/?a=b", "required": false, "description": ""}),
            ),
            (
                "day:date",
                json!({"name": "day", "type": "date", "enum_values": [], "required": false, "description": ""}),
            ),
        ] {
            let p = parse_param(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(serde_json::to_value(&p).unwrap(), expected, "{input}");
            assert_eq!(param_spec(&p), input, "display round-trips");
        }
    }

    #[test]
    fn bad_parameter_declarations_say_why() {
        for (input, why) in [
            ("service", "no ':'"),
            (":string", "empty name"),
            ("x:text", "unknown type"),
            ("x:enum", "lists its values"),
            ("x:enum(a|b", "without ')'"),
            ("x:enum(a||b)", "empty"),
            ("x:enum(a|b)x", "after enum"),
            ("x:number=many", "not a number"),
            ("x:boolean=yes", "not true or false"),
            ("x:enum(a|b)=c", "not one of a, b"),
        ] {
            let err = parse_param(input).unwrap_err();
            assert!(err.contains(why), "{input}: {err}");
        }
    }

    #[test]
    fn argument_values_follow_the_parameter_type() {
        let p = |spec: &str| parse_param(spec).unwrap();
        assert_eq!(typed_value(&p("n:number"), "12"), Ok(json!(12)));
        assert_eq!(typed_value(&p("n:number"), "-1.5"), Ok(json!(-1.5)));
        assert!(typed_value(&p("n:number"), "NaN").is_err());
        assert!(typed_value(&p("n:number"), "1e999").is_err());
        assert_eq!(typed_value(&p("b:boolean"), "true"), Ok(json!(true)));
        assert!(typed_value(&p("b:boolean"), "1").is_err());
        assert_eq!(typed_value(&p("s:string"), "007"), Ok(json!("007")));
        assert_eq!(
            typed_value(&p("d:date"), "2026-01-31"),
            Ok(json!("2026-01-31"))
        );
        assert_eq!(typed_value(&p("e:enum(a|b)"), "b"), Ok(json!("b")));
        assert!(typed_value(&p("e:enum(a|b)"), "c").is_err());
    }

    #[test]
    fn shebang_names_the_interpreter() {
        for (body, expected) in [
            ("#!/bin/sh\necho", Some(Interpreter::Sh)),
            ("#!/bin/bash -e\n", Some(Interpreter::Bash)),
            ("#! /usr/bin/env python3\n", Some(Interpreter::Python3)),
            ("#!/usr/bin/env -S bash -eu\n", Some(Interpreter::Bash)),
            ("#!/usr/bin/pwsh\n", Some(Interpreter::Powershell)),
            ("\u{feff}#!/bin/dash\n", Some(Interpreter::Sh)),
            ("echo hi\n", None),
            ("", None),
        ] {
            assert_eq!(shebang_interpreter(body), Ok(expected), "{body:?}");
        }
        assert!(
            shebang_interpreter("#!/usr/bin/perl\n")
                .unwrap_err()
                .contains("perl")
        );
        assert!(shebang_interpreter("#!/usr/bin/env\n").is_err());
    }
}

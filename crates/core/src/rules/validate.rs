//! Validation of a rule's JSON form into a typed [`Rule`]: structure, unknown keys, fields and
//! operators from the catalogue, type checking of operator against field and of value against
//! operator, and the size limits. Errors are collected (all of them, not the first), each with
//! the JSON pointer of the offending part and, where it helps, the valid alternatives.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value};

use super::ast::{FieldCondition, Op, Operand, Pattern, Rule, SoftwareCondition, Target};
use super::catalogue::{self, FieldType};
use super::literal::{Duration, Network, Timestamp};
use crate::version::Scheme;

/// Limits on a rule, so that a saved rule is cheap to evaluate against every device.
pub mod limits {
    /// Deepest nesting of conditions (the root is level 1).
    pub const MAX_DEPTH: usize = 16;
    /// Most conditions in one rule, counting `all`, `any` and `not`.
    pub const MAX_NODES: usize = 256;
    /// Most values in one `in` list.
    pub const MAX_IN_VALUES: usize = 1_000;
    /// Longest string anywhere in a rule, in bytes.
    pub const MAX_STRING: usize = 1_024;
    /// Longest regular expression, in bytes.
    pub const MAX_REGEX: usize = 512;
    /// Largest compiled regular expression, in bytes (bounds `a{1000}{1000}`-style patterns
    /// that are short to write but large to run).
    pub const MAX_REGEX_COMPILED: usize = 256 * 1024;
    /// At most this many ids are listed as alternatives for an unknown group.
    pub const MAX_LISTED_GROUPS: usize = 100;
}

/// The type of a custom field, from its definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomFieldType {
    String,
    Number,
    Bool,
    Date,
    /// A string restricted to these values.
    Enum(Vec<String>),
}

impl CustomFieldType {
    /// The rule type of a custom field and, for an enum, its allowed values.
    pub fn rule_type(&self) -> (FieldType, &[String]) {
        match self {
            CustomFieldType::String => (FieldType::String, &[]),
            CustomFieldType::Number => (FieldType::Number, &[]),
            CustomFieldType::Bool => (FieldType::Bool, &[]),
            CustomFieldType::Date => (FieldType::Timestamp, &[]),
            CustomFieldType::Enum(values) => (FieldType::String, values),
        }
    }
}

/// What validation needs to know beyond the rule itself.
#[derive(Debug, Clone, Default)]
pub struct ValidationContext {
    /// Defined custom fields by name (referenced as `custom.<name>`).
    pub custom_fields: BTreeMap<String, CustomFieldType>,
    /// Ids of every existing group, static or dynamic.
    pub group_ids: BTreeSet<String>,
    /// The id of the group whose rule is validated, when it exists already: a rule may not
    /// reference its own group. Longer cycles are found by
    /// [`evaluation_order`](super::evaluation_order).
    pub self_group: Option<String>,
}

/// One problem in a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleError {
    /// JSON pointer to the offending part, e.g. `/all/2/any/0/op` (empty for the root).
    pub path: String,
    pub message: String,
    /// The valid fields, operators, keys or values, when the error is a wrong choice.
    pub valid: Vec<String>,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.message)?;
        if !self.valid.is_empty() {
            write!(f, " (valid: {})", self.valid.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for RuleError {}

const KINDS: [&str; 7] = ["all", "any", "not", "field", "software", "tag", "group"];
const FIELD_KEYS: [&str; 5] = ["field", "op", "value", "case_insensitive", "scheme"];
const SOFTWARE_KEYS: [&str; 4] = ["name", "source", "op", "value"];
/// Package sources an agent reports; a typo in a rule's `source` would otherwise silently
/// match nothing.
pub const SOFTWARE_SOURCES: [&str; 9] = [
    "dpkg",
    "rpm",
    "pacman",
    "snap",
    "flatpak",
    "msi",
    "windows_uninstall",
    "winget",
    "choco",
];

/// Check a rule's JSON and turn it into a [`Rule`], or report every problem found.
pub fn validate(json: &Value, ctx: &ValidationContext) -> Result<Rule, Vec<RuleError>> {
    let mut v = Validator {
        ctx,
        errors: Vec::new(),
        nodes: 0,
    };
    let rule = v.node(json, "", 1);
    match rule {
        Some(rule) if v.errors.is_empty() => Ok(rule),
        _ => Err(v.errors),
    }
}

struct Validator<'c> {
    ctx: &'c ValidationContext,
    errors: Vec<RuleError>,
    nodes: usize,
}

/// Append a key to a JSON pointer, escaping `~` and `/` (RFC 6901).
fn child(path: &str, key: &str) -> String {
    format!("{path}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn describe(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn strings(items: impl IntoIterator<Item = impl ToString>) -> Vec<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

fn op_names(ops: &[Op]) -> Vec<String> {
    strings(ops.iter().map(|o| o.as_str()))
}

/// What a field condition resolved to, before its operator is checked.
struct Resolved {
    target: Target,
    ty: FieldType,
    multi: bool,
    whole_list: bool,
    values: Vec<String>,
}

impl Validator<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>, valid: Vec<String>) {
        self.errors.push(RuleError {
            path: path.into(),
            message: message.into(),
            valid,
        });
    }

    /// The string at `v`, or an error naming what `what` should have been.
    fn string<'v>(&mut self, v: &'v Value, path: &str, what: &str) -> Option<&'v str> {
        let Some(s) = v.as_str() else {
            self.error(
                path,
                format!("{what} must be a string, not {}", describe(v)),
                vec![],
            );
            return None;
        };
        if s.len() > limits::MAX_STRING {
            self.error(
                path,
                format!("{what} is longer than {} bytes", limits::MAX_STRING),
                vec![],
            );
            return None;
        }
        Some(s)
    }

    fn non_empty<'v>(&mut self, v: &'v Value, path: &str, what: &str) -> Option<&'v str> {
        let s = self.string(v, path, what)?;
        if s.is_empty() {
            self.error(path, format!("{what} must not be empty"), vec![]);
            return None;
        }
        Some(s)
    }

    fn unknown_keys(&mut self, obj: &Map<String, Value>, path: &str, allowed: &[&str], what: &str) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.error(
                    child(path, key),
                    format!("unknown key {key:?} in {what}"),
                    strings(allowed),
                );
            }
        }
    }

    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Option<Rule> {
        self.nodes += 1;
        if self.nodes == limits::MAX_NODES + 1 {
            self.error(
                path,
                format!(
                    "the rule has more than {} conditions; split it into groups that reference each other",
                    limits::MAX_NODES
                ),
                vec![],
            );
        }
        if self.nodes > limits::MAX_NODES {
            return None;
        }
        if depth > limits::MAX_DEPTH {
            self.error(
                path,
                format!("conditions nest deeper than {} levels", limits::MAX_DEPTH),
                vec![],
            );
            return None;
        }
        let Some(obj) = v.as_object() else {
            self.error(
                path,
                format!(
                    "a condition must be an object with one of the keys all, any, not, field, software, tag, group, not {}",
                    describe(v)
                ),
                strings(KINDS),
            );
            return None;
        };
        let kinds: Vec<&str> = KINDS.into_iter().filter(|k| obj.contains_key(*k)).collect();
        let kind = match kinds.as_slice() {
            [kind] => *kind,
            [] => {
                let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
                let found = if keys.is_empty() {
                    "it is empty".to_string()
                } else {
                    format!("found {}", keys.join(", "))
                };
                self.error(
                    path,
                    format!("a condition needs one of the keys all, any, not, field, software, tag, group; {found}"),
                    strings(KINDS),
                );
                return None;
            }
            several => {
                self.error(
                    path,
                    format!(
                        "a condition has exactly one of the keys all, any, not, field, software, tag, group; this one has {}",
                        several.join(" and ")
                    ),
                    strings(KINDS),
                );
                return None;
            }
        };
        match kind {
            "all" | "any" => {
                self.unknown_keys(obj, path, &[kind], &format!("an {kind:?} condition"));
                let list_path = child(path, kind);
                let Some(items) = obj[kind].as_array() else {
                    self.error(
                        &list_path,
                        format!(
                            "{kind:?} needs a list of conditions, not {}",
                            describe(&obj[kind])
                        ),
                        vec![],
                    );
                    return None;
                };
                let mut children = Vec::with_capacity(items.len());
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match self.node(item, &child(&list_path, &i.to_string()), depth + 1) {
                        Some(r) => children.push(r),
                        None => ok = false,
                    }
                }
                ok.then(|| {
                    if kind == "all" {
                        Rule::All(children)
                    } else {
                        Rule::Any(children)
                    }
                })
            }
            "not" => {
                self.unknown_keys(obj, path, &["not"], "a \"not\" condition");
                let inner = self.node(&obj["not"], &child(path, "not"), depth + 1)?;
                Some(Rule::Not(Box::new(inner)))
            }
            "tag" => {
                self.unknown_keys(obj, path, &["tag"], "a \"tag\" condition");
                let tag = self.non_empty(&obj["tag"], &child(path, "tag"), "a tag")?;
                Some(Rule::Tag(tag.to_string()))
            }
            "group" => {
                self.unknown_keys(obj, path, &["group"], "a \"group\" condition");
                self.group(&obj["group"], &child(path, "group"))
            }
            "software" => {
                self.unknown_keys(obj, path, &["software"], "a \"software\" condition");
                self.software(&obj["software"], &child(path, "software"))
            }
            _ => {
                self.unknown_keys(obj, path, &FIELD_KEYS, "a field condition");
                self.field(obj, path)
            }
        }
    }

    fn group(&mut self, v: &Value, path: &str) -> Option<Rule> {
        let id = self.non_empty(v, path, "a group id")?;
        if self.ctx.self_group.as_deref() == Some(id) {
            self.error(
                path,
                "a group's rule cannot reference the group itself",
                vec![],
            );
            return None;
        }
        if !self.ctx.group_ids.contains(id) {
            let listed = strings(
                self.ctx
                    .group_ids
                    .iter()
                    .filter(|g| self.ctx.self_group.as_ref() != Some(*g))
                    .take(limits::MAX_LISTED_GROUPS),
            );
            self.error(path, format!("unknown group {id:?}"), listed);
            return None;
        }
        Some(Rule::Group(id.to_string()))
    }

    fn software(&mut self, v: &Value, path: &str) -> Option<Rule> {
        let Some(obj) = v.as_object() else {
            self.error(
                path,
                format!(
                    "\"software\" needs an object with a \"name\", not {}",
                    describe(v)
                ),
                strings(SOFTWARE_KEYS),
            );
            return None;
        };
        let before = self.errors.len();
        self.unknown_keys(obj, path, &SOFTWARE_KEYS, "a software condition");
        let name = match obj.get("name") {
            Some(n) => self.non_empty(n, &child(path, "name"), "a package name"),
            None => {
                self.error(path, "missing \"name\" (the package name)", vec![]);
                None
            }
        };
        let source = match obj.get("source") {
            None => None,
            Some(s) => {
                let p = child(path, "source");
                match self.string(s, &p, "a package source") {
                    Some(s) if SOFTWARE_SOURCES.contains(&s) => Some(s.to_string()),
                    Some(s) => {
                        self.error(
                            &p,
                            format!("unknown package source {s:?}"),
                            strings(SOFTWARE_SOURCES),
                        );
                        None
                    }
                    None => None,
                }
            }
        };
        let op = match obj.get("op") {
            None => None,
            Some(o) => {
                let p = child(path, "op");
                match o.as_str().map(|s| (s, Op::parse(s))) {
                    Some((_, Some(op))) if Op::SOFTWARE.contains(&op) => Some(op),
                    Some((s, _)) => {
                        self.error(
                            &p,
                            format!("operator {s:?} does not apply to software; software compares versions"),
                            op_names(&Op::SOFTWARE),
                        );
                        None
                    }
                    None => {
                        self.error(
                            &p,
                            format!("\"op\" must be a string, not {}", describe(o)),
                            op_names(&Op::SOFTWARE),
                        );
                        None
                    }
                }
            }
        };
        let value = match obj.get("value") {
            None => None,
            Some(v) => self.non_empty(v, &child(path, "value"), "a version"),
        };
        match (obj.contains_key("op"), obj.contains_key("value")) {
            (true, false) => self.error(
                path,
                "missing \"value\": the version to compare with",
                vec![],
            ),
            (false, true) => self.error(
                child(path, "value"),
                "a version needs an \"op\" saying how to compare it",
                op_names(&Op::SOFTWARE),
            ),
            _ => {}
        }
        if self.errors.len() != before {
            return None;
        }
        Some(Rule::Software(SoftwareCondition {
            name: name?.to_string(),
            source,
            version: op.zip(value.map(str::to_string)),
        }))
    }

    fn resolve_field(&mut self, name: &str, path: &str) -> Option<Resolved> {
        if let Some(custom) = name.strip_prefix("custom.") {
            let Some(ty) = self.ctx.custom_fields.get(custom) else {
                self.error(
                    path,
                    format!("unknown custom field {custom:?}"),
                    strings(self.ctx.custom_fields.keys().map(|k| format!("custom.{k}"))),
                );
                return None;
            };
            let (ty, values) = ty.rule_type();
            let values = values.to_vec();
            return Some(Resolved {
                target: Target::Custom(custom.to_string()),
                ty,
                multi: false,
                whole_list: false,
                values,
            });
        }
        if let Some(spec) = catalogue::lookup_field(name) {
            return Some(Resolved {
                target: Target::Builtin(spec),
                ty: spec.ty,
                multi: spec.is_multi(),
                whole_list: false,
                values: strings(spec.values),
            });
        }
        if let Some(spec) =
            catalogue::lookup_field(&format!("{name}[]")).filter(|s| s.is_scalar_list())
        {
            return Some(Resolved {
                target: Target::Builtin(spec),
                ty: spec.ty,
                multi: false,
                whole_list: true,
                values: strings(spec.values),
            });
        }
        let mut valid = strings(catalogue::catalogue().iter().map(|f| f.path));
        valid.extend(self.ctx.custom_fields.keys().map(|k| format!("custom.{k}")));
        self.error(path, format!("unknown field {name:?}"), valid);
        None
    }

    fn field(&mut self, obj: &Map<String, Value>, path: &str) -> Option<Rule> {
        let before = self.errors.len();
        let field_path = child(path, "field");
        let name = self.non_empty(&obj["field"], &field_path, "\"field\"");
        let resolved = name.and_then(|n| self.resolve_field(n, &field_path));
        let what = |r: &Resolved, name: &str| {
            if r.whole_list {
                format!("{name}, a list of {}s", r.ty)
            } else {
                format!("{name}, a {} field", r.ty)
            }
        };
        let valid_ops = resolved
            .as_ref()
            .map_or(&Op::ALL[..], |r| Op::valid_for(r.ty, r.whole_list));

        let op_path = child(path, "op");
        let op = match obj.get("op") {
            None => {
                self.error(path, "missing \"op\"", op_names(valid_ops));
                None
            }
            Some(o) => match o.as_str() {
                None => {
                    self.error(
                        &op_path,
                        format!("\"op\" must be a string, not {}", describe(o)),
                        op_names(valid_ops),
                    );
                    None
                }
                Some(s) => match Op::parse(s) {
                    None => {
                        self.error(
                            &op_path,
                            format!("unknown operator {s:?}"),
                            op_names(valid_ops),
                        );
                        None
                    }
                    Some(op) => match (&resolved, name) {
                        (Some(r), Some(name)) if !valid_ops.contains(&op) => {
                            self.error(
                                &op_path,
                                format!("operator {s:?} does not apply to {}", what(r, name)),
                                op_names(valid_ops),
                            );
                            None
                        }
                        _ => Some(op),
                    },
                },
            },
        };

        let case_insensitive = match obj.get("case_insensitive") {
            None => false,
            Some(Value::Bool(b)) => {
                if *b && op.is_some_and(|o| !o.is_textual()) {
                    self.error(
                        child(path, "case_insensitive"),
                        "\"case_insensitive\" only applies to eq, ne, in, contains, starts_with, ends_with and regex",
                        vec![],
                    );
                }
                *b
            }
            Some(other) => {
                self.error(
                    child(path, "case_insensitive"),
                    format!(
                        "\"case_insensitive\" must be true or false, not {}",
                        describe(other)
                    ),
                    vec![],
                );
                false
            }
        };

        let scheme = match obj.get("scheme") {
            None => None,
            Some(s) => {
                let p = child(path, "scheme");
                let valid = strings(Scheme::ALL.iter().map(|s| s.as_str()));
                match s.as_str().map(|n| (n, Scheme::parse(n))) {
                    Some((_, Some(scheme))) => {
                        if op.is_some_and(|o| !o.is_version()) {
                            self.error(
                                &p,
                                "\"scheme\" only applies to the version_* operators",
                                vec![],
                            );
                        }
                        Some(scheme)
                    }
                    Some((n, None)) => {
                        self.error(&p, format!("unknown version scheme {n:?}"), valid);
                        None
                    }
                    None => {
                        self.error(
                            &p,
                            format!("\"scheme\" must be a string, not {}", describe(s)),
                            valid,
                        );
                        None
                    }
                }
            }
        };

        let (Some(name), Some(r), Some(op)) = (name, resolved, op) else {
            return None;
        };
        let operand = self.operand(obj.get("value"), path, name, &r, op, case_insensitive);
        if self.errors.len() != before {
            return None;
        }
        Some(Rule::Field(FieldCondition {
            path: name.to_string(),
            target: r.target,
            ty: r.ty,
            multi: r.multi,
            whole_list: r.whole_list,
            op,
            operand: operand?,
            case_insensitive,
            scheme,
        }))
    }

    /// Parse and type-check the value of a field condition.
    fn operand(
        &mut self,
        value: Option<&Value>,
        path: &str,
        field: &str,
        r: &Resolved,
        op: Op,
        case_insensitive: bool,
    ) -> Option<Operand> {
        let vpath = child(path, "value");
        if matches!(op, Op::Exists | Op::NotExists) {
            if value.is_some() {
                self.error(&vpath, format!("{:?} takes no value", op.as_str()), vec![]);
                return None;
            }
            return Some(Operand::Nothing);
        }
        let Some(value) = value else {
            self.error(
                path,
                format!("missing \"value\" for {:?}", op.as_str()),
                vec![],
            );
            return None;
        };
        let mismatch = |v: &mut Validator<'_>, p: &str, expected: &str, got: &Value| {
            v.error(
                p,
                format!(
                    "{:?} on {field} compares {expected}, but the value is {}",
                    op.as_str(),
                    describe(got)
                ),
                vec![],
            );
        };
        match op {
            Op::In => {
                let Some(items) = value.as_array() else {
                    let expected = match r.ty {
                        FieldType::Number => "against a list of numbers",
                        _ => "against a list of strings",
                    };
                    mismatch(self, &vpath, expected, value);
                    return None;
                };
                if items.len() > limits::MAX_IN_VALUES {
                    self.error(
                        &vpath,
                        format!(
                            "\"in\" accepts at most {} values, this list has {}",
                            limits::MAX_IN_VALUES,
                            items.len()
                        ),
                        vec![],
                    );
                    return None;
                }
                if r.ty == FieldType::Number {
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        match item.as_f64() {
                            Some(x) => out.push(x),
                            None => mismatch(self, &child(&vpath, &i.to_string()), "numbers", item),
                        }
                    }
                    (out.len() == items.len()).then_some(Operand::NumberList(out))
                } else {
                    let mut out = Vec::with_capacity(items.len());
                    for (i, item) in items.iter().enumerate() {
                        let p = child(&vpath, &i.to_string());
                        if !item.is_string() {
                            mismatch(self, &p, "strings", item);
                        } else if let Some(s) = self.string(item, &p, "a value")
                            && self.allowed_value(s, &p, field, r, case_insensitive)
                        {
                            out.push(s.to_string());
                        }
                    }
                    (out.len() == items.len()).then_some(Operand::TextList(out))
                }
            }
            Op::Eq | Op::Ne => match r.ty {
                FieldType::String | FieldType::Address => {
                    let s = self.text_value(value, &vpath, field, op)?;
                    self.allowed_value(s, &vpath, field, r, case_insensitive)
                        .then(|| Operand::Text(s.to_string()))
                }
                FieldType::Number => match value.as_f64() {
                    Some(x) => Some(Operand::Number(x)),
                    None => {
                        mismatch(self, &vpath, "numbers", value);
                        None
                    }
                },
                FieldType::Bool => match value.as_bool() {
                    Some(b) => Some(Operand::Bool(b)),
                    None => {
                        mismatch(self, &vpath, "true or false", value);
                        None
                    }
                },
                FieldType::Timestamp => self.time_value(value, &vpath, field, op),
            },
            Op::Contains | Op::StartsWith | Op::EndsWith => {
                let s = self.text_value(value, &vpath, field, op)?;
                Some(Operand::Text(s.to_string()))
            }
            Op::Regex => {
                let s = self.text_value(value, &vpath, field, op)?;
                if s.len() > limits::MAX_REGEX {
                    self.error(
                        &vpath,
                        format!("the regex is longer than {} bytes", limits::MAX_REGEX),
                        vec![],
                    );
                    return None;
                }
                match regex_lite::RegexBuilder::new(s)
                    .case_insensitive(case_insensitive)
                    .size_limit(limits::MAX_REGEX_COMPILED)
                    .nest_limit(64)
                    .build()
                {
                    Ok(regex) => Some(Operand::Pattern(Pattern {
                        source: s.to_string(),
                        regex,
                    })),
                    Err(e) => {
                        let detail = e.to_string();
                        let detail = detail.lines().last().unwrap_or_default().trim();
                        self.error(&vpath, format!("invalid regex {s:?}: {detail}"), vec![]);
                        None
                    }
                }
            }
            Op::Gt | Op::Gte | Op::Lt | Op::Lte => match r.ty {
                FieldType::Timestamp => self.time_value(value, &vpath, field, op),
                _ => match value.as_f64() {
                    Some(x) => Some(Operand::Number(x)),
                    None => {
                        mismatch(self, &vpath, "numbers", value);
                        None
                    }
                },
            },
            Op::VersionEq
            | Op::VersionNe
            | Op::VersionGt
            | Op::VersionGte
            | Op::VersionLt
            | Op::VersionLte => {
                let s = self.text_value(value, &vpath, field, op)?;
                if s.trim().is_empty() {
                    self.error(&vpath, "the version must not be empty", vec![]);
                    return None;
                }
                Some(Operand::Version(s.to_string()))
            }
            Op::Cidr => {
                let s = self.text_value(value, &vpath, field, op)?;
                match Network::parse(s) {
                    Some(n) => Some(Operand::Network(n)),
                    None => {
                        self.error(
                            &vpath,
                            format!("{s:?} is not a network: write an address and prefix length such as 10.0.0.0/8 or 2001:db8::/32"),
                            vec![],
                        );
                        None
                    }
                }
            }
            Op::OlderThan | Op::NewerThan => {
                let s = self.text_value(value, &vpath, field, op)?;
                match Duration::parse(s) {
                    Some(d) => Some(Operand::Duration(d)),
                    None => {
                        self.error(
                            &vpath,
                            format!("{s:?} is not a duration: write a whole number and a unit s, m, h, d or w, such as 30m, 12h, 7d or 2w (at most 100 years)"),
                            vec![],
                        );
                        None
                    }
                }
            }
            Op::Exists | Op::NotExists => Some(Operand::Nothing),
        }
    }

    fn text_value<'v>(&mut self, v: &'v Value, path: &str, field: &str, op: Op) -> Option<&'v str> {
        if !v.is_string() {
            self.error(
                path,
                format!(
                    "{:?} on {field} needs a string value, not {}",
                    op.as_str(),
                    describe(v)
                ),
                vec![],
            );
            return None;
        }
        self.string(v, path, "the value")
    }

    fn time_value(&mut self, v: &Value, path: &str, field: &str, op: Op) -> Option<Operand> {
        const HOW: &str = "write a date such as 2026-11-25, a time such as 2026-11-25T08:00:00Z, or milliseconds since 1970";
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(ms) => Some(Operand::Time(Timestamp::from_ms(ms))),
                None => {
                    self.error(path, format!("{n} is not a time: {HOW}"), vec![]);
                    None
                }
            },
            Value::String(_) => {
                let s = self.string(v, path, "the value")?;
                match Timestamp::parse(s) {
                    Some(t) => Some(Operand::Time(t)),
                    None => {
                        self.error(path, format!("{s:?} is not a time: {HOW}"), vec![]);
                        None
                    }
                }
            }
            other => {
                self.error(
                    path,
                    format!(
                        "{:?} on {field} compares times, but the value is {}",
                        op.as_str(),
                        describe(other)
                    ),
                    vec![],
                );
                None
            }
        }
    }

    /// For fields with a closed set of values: is `s` one of them?
    fn allowed_value(
        &mut self,
        s: &str,
        path: &str,
        field: &str,
        r: &Resolved,
        case_insensitive: bool,
    ) -> bool {
        if r.values.is_empty() {
            return true;
        }
        let known = r.values.iter().any(|v| {
            if case_insensitive {
                v.to_lowercase() == s.to_lowercase()
            } else {
                v == s
            }
        });
        if !known {
            self.error(
                path,
                format!("{s:?} is not a value of {field}"),
                r.values.clone(),
            );
        }
        known
    }
}

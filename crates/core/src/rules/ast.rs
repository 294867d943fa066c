//! The validated rule tree. A [`Rule`] can only be obtained from [`validate`](super::validate),
//! so every condition in it is well-typed: its operator applies to its field's type and its
//! value is already parsed (regexes compiled, networks, dates and durations decoded). It
//! serialises back to the canonical JSON form, which is what should be stored.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Serialize, Serializer};
use serde_json::{Map, Value, json};

use super::catalogue::{FieldSpec, FieldType};
use super::literal::{Duration, Network, Timestamp, format_number};
use crate::version::Scheme;

/// A comparison operator of a field or software condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    In,
    Contains,
    StartsWith,
    EndsWith,
    Regex,
    Gt,
    Gte,
    Lt,
    Lte,
    VersionEq,
    VersionNe,
    VersionGt,
    VersionGte,
    VersionLt,
    VersionLte,
    Cidr,
    Exists,
    NotExists,
    OlderThan,
    NewerThan,
}

impl Op {
    pub const ALL: [Op; 22] = [
        Op::Eq,
        Op::Ne,
        Op::In,
        Op::Contains,
        Op::StartsWith,
        Op::EndsWith,
        Op::Regex,
        Op::Gt,
        Op::Gte,
        Op::Lt,
        Op::Lte,
        Op::VersionEq,
        Op::VersionNe,
        Op::VersionGt,
        Op::VersionGte,
        Op::VersionLt,
        Op::VersionLte,
        Op::Cidr,
        Op::Exists,
        Op::NotExists,
        Op::OlderThan,
        Op::NewerThan,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Eq => "eq",
            Op::Ne => "ne",
            Op::In => "in",
            Op::Contains => "contains",
            Op::StartsWith => "starts_with",
            Op::EndsWith => "ends_with",
            Op::Regex => "regex",
            Op::Gt => "gt",
            Op::Gte => "gte",
            Op::Lt => "lt",
            Op::Lte => "lte",
            Op::VersionEq => "version_eq",
            Op::VersionNe => "version_ne",
            Op::VersionGt => "version_gt",
            Op::VersionGte => "version_gte",
            Op::VersionLt => "version_lt",
            Op::VersionLte => "version_lte",
            Op::Cidr => "cidr",
            Op::Exists => "exists",
            Op::NotExists => "not_exists",
            Op::OlderThan => "older_than",
            Op::NewerThan => "newer_than",
        }
    }

    pub fn parse(name: &str) -> Option<Op> {
        Op::ALL.into_iter().find(|o| o.as_str() == name)
    }

    pub(crate) fn is_version(self) -> bool {
        matches!(
            self,
            Op::VersionEq
                | Op::VersionNe
                | Op::VersionGt
                | Op::VersionGte
                | Op::VersionLt
                | Op::VersionLte
        )
    }

    /// Operators that compare text and so accept `case_insensitive`.
    pub(crate) fn is_textual(self) -> bool {
        matches!(
            self,
            Op::Eq | Op::Ne | Op::In | Op::Contains | Op::StartsWith | Op::EndsWith | Op::Regex
        )
    }

    /// The operators a field of type `ty` accepts (`whole_list`: a list named without `[]`).
    pub fn valid_for(ty: FieldType, whole_list: bool) -> &'static [Op] {
        use Op::*;
        if whole_list {
            return &[Contains, Exists, NotExists];
        }
        match ty {
            FieldType::String => &[
                Eq, Ne, In, Contains, StartsWith, EndsWith, Regex, VersionEq, VersionNe, VersionGt,
                VersionGte, VersionLt, VersionLte, Exists, NotExists,
            ],
            FieldType::Address => &[
                Eq, Ne, In, Contains, StartsWith, EndsWith, Regex, Cidr, Exists, NotExists,
            ],
            FieldType::Number => &[Eq, Ne, In, Gt, Gte, Lt, Lte, Exists, NotExists],
            FieldType::Bool => &[Eq, Ne, Exists, NotExists],
            FieldType::Timestamp => &[
                Eq, Ne, Gt, Gte, Lt, Lte, OlderThan, NewerThan, Exists, NotExists,
            ],
        }
    }

    /// The operators of a software condition.
    pub const SOFTWARE: [Op; 6] = [
        Op::VersionEq,
        Op::VersionNe,
        Op::VersionGt,
        Op::VersionGte,
        Op::VersionLt,
        Op::VersionLte,
    ];
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a field condition is about.
#[derive(Debug, Clone)]
pub(crate) enum Target {
    Builtin(&'static FieldSpec),
    /// A custom field, by name (without the `custom.` prefix).
    Custom(String),
}

impl PartialEq for Target {
    fn eq(&self, other: &Target) -> bool {
        match (self, other) {
            (Target::Builtin(a), Target::Builtin(b)) => a.path == b.path,
            (Target::Custom(a), Target::Custom(b)) => a == b,
            _ => false,
        }
    }
}

/// A regular expression, compiled at validation (regex-lite: matching is linear in the input).
#[derive(Debug, Clone)]
pub struct Pattern {
    pub(crate) source: String,
    pub(crate) regex: regex_lite::Regex,
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.source == other.source && self.regex.as_str() == other.regex.as_str()
    }
}

/// The parsed value of a condition, shaped by its operator and the field type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    /// `exists` / `not_exists`.
    Nothing,
    Text(String),
    TextList(Vec<String>),
    Number(f64),
    NumberList(Vec<f64>),
    Bool(bool),
    Time(Timestamp),
    Pattern(Pattern),
    Version(String),
    Network(Network),
    Duration(Duration),
}

impl Operand {
    fn to_json(&self) -> Option<Value> {
        Some(match self {
            Operand::Nothing => return None,
            Operand::Text(s) | Operand::Version(s) => json!(s),
            Operand::TextList(l) => json!(l),
            Operand::Number(x) => number_json(*x),
            Operand::NumberList(l) => Value::Array(l.iter().map(|x| number_json(*x)).collect()),
            Operand::Bool(b) => json!(b),
            Operand::Time(t) => match &t.text {
                Some(text) => json!(text),
                None => json!(t.ms),
            },
            Operand::Pattern(p) => json!(p.source),
            Operand::Network(n) => json!(n.text),
            Operand::Duration(d) => json!(d.text),
        })
    }

    /// The operand as explanations show it.
    pub(crate) fn display(&self) -> String {
        match self {
            Operand::Nothing => String::new(),
            Operand::Text(s) => format!("{s:?}"),
            Operand::Version(s) => s.clone(),
            Operand::TextList(l) => format!("[{}]", l.join(", ")),
            Operand::Number(x) => format_number(*x),
            Operand::NumberList(l) => format!(
                "[{}]",
                l.iter()
                    .map(|x| format_number(*x))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Operand::Bool(b) => b.to_string(),
            Operand::Time(t) => super::literal::format_timestamp(t.ms),
            Operand::Pattern(p) => format!("/{}/", p.source),
            Operand::Network(n) => n.text.clone(),
            Operand::Duration(d) => d.text.clone(),
        }
    }
}

/// Integral values print as integers (`8589934592`, not `8589934592.0`).
fn number_json(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}

/// `{"field": …, "op": …, "value": …}`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldCondition {
    /// The path as written (`tags` for the whole-list form, `custom.owner`, …).
    pub(crate) path: String,
    pub(crate) target: Target,
    pub(crate) ty: FieldType,
    /// Whether several values may exist (any-element semantics).
    pub(crate) multi: bool,
    /// A scalar list named without `[]`: `contains` tests membership.
    pub(crate) whole_list: bool,
    pub(crate) op: Op,
    pub(crate) operand: Operand,
    pub(crate) case_insensitive: bool,
    /// Only on version operators; `None` means generic.
    pub(crate) scheme: Option<Scheme>,
}

impl FieldCondition {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub fn op(&self) -> Op {
        self.op
    }

    /// The type of the field's values (for custom fields, from their definition).
    pub fn field_type(&self) -> FieldType {
        self.ty
    }
}

/// `{"software": {"name": …, "source": …, "op": …, "value": …}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct SoftwareCondition {
    pub(crate) name: String,
    pub(crate) source: Option<String>,
    /// With its version; `None` means "installed at any version".
    pub(crate) version: Option<(Op, String)>,
}

impl SoftwareCondition {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// True when every child is (true when empty).
    All(Vec<Rule>),
    /// True when some child is (false when empty).
    Any(Vec<Rule>),
    Not(Box<Rule>),
    Field(FieldCondition),
    Software(SoftwareCondition),
    /// The device has this tag.
    Tag(String),
    /// The device is a member of the group with this id.
    Group(String),
}

impl Rule {
    /// Every field path the rule reads (`os.id`, `custom.owner`, `tags`…), to know which
    /// changes can move a device and which custom fields a rule depends on.
    pub fn referenced_fields(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.walk(&mut |r| {
            if let Rule::Field(c) = r {
                out.insert(c.path.clone());
            }
        });
        out
    }

    /// Whether the result can change with time alone (`older_than` / `newer_than`), so the
    /// rule must be re-evaluated on a schedule and not only when a device changes.
    pub fn uses_clock(&self) -> bool {
        let mut clock = false;
        self.walk(&mut |r| {
            if let Rule::Field(c) = r {
                clock |= matches!(c.op, Op::OlderThan | Op::NewerThan);
            }
        });
        clock
    }

    /// Whether the rule reads installed software.
    pub fn uses_software(&self) -> bool {
        let mut software = false;
        self.walk(&mut |r| software |= matches!(r, Rule::Software(_)));
        software
    }

    fn walk(&self, f: &mut dyn FnMut(&Rule)) {
        f(self);
        match self {
            Rule::All(c) | Rule::Any(c) => c.iter().for_each(|r| r.walk(f)),
            Rule::Not(r) => r.walk(f),
            Rule::Field(_) | Rule::Software(_) | Rule::Tag(_) | Rule::Group(_) => {}
        }
    }

    /// The canonical JSON form, accepted by [`validate`](super::validate).
    pub fn to_json(&self) -> Value {
        match self {
            Rule::All(c) => json!({ "all": c.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Any(c) => json!({ "any": c.iter().map(Rule::to_json).collect::<Vec<_>>() }),
            Rule::Not(c) => json!({ "not": c.to_json() }),
            Rule::Tag(t) => json!({ "tag": t }),
            Rule::Group(g) => json!({ "group": g }),
            Rule::Field(c) => {
                let mut m = Map::new();
                m.insert("field".into(), json!(c.path));
                m.insert("op".into(), json!(c.op.as_str()));
                if let Some(v) = c.operand.to_json() {
                    m.insert("value".into(), v);
                }
                if c.case_insensitive {
                    m.insert("case_insensitive".into(), json!(true));
                }
                if let Some(s) = c.scheme {
                    m.insert("scheme".into(), json!(s.as_str()));
                }
                Value::Object(m)
            }
            Rule::Software(s) => {
                let mut m = Map::new();
                m.insert("name".into(), json!(s.name));
                if let Some(src) = &s.source {
                    m.insert("source".into(), json!(src));
                }
                if let Some((op, v)) = &s.version {
                    m.insert("op".into(), json!(op.as_str()));
                    m.insert("value".into(), json!(v));
                }
                json!({ "software": m })
            }
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

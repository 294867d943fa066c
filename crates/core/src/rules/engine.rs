//! The compiled form of a rule and its evaluation: [`CompiledRule::evaluate`] for the yes/no
//! answer on the hot path (no JSON, no allocation except for case-insensitive non-ASCII text)
//! and [`CompiledRule::explain`], which walks every condition (no short-circuit) and says in a
//! sentence what it saw and why it decided.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::ast::{FieldCondition, Op, Operand, Rule, SoftwareCondition, Target};
use super::facts::{CustomValue, FactIndex, NameKey, SoftwareEntry, Val, lowercase};
use super::literal::{Network, address_of, format_age, format_number, format_timestamp};
use crate::version::{Scheme, compare_for_constraint};

/// A rule prepared for evaluation: lowercased needles, sorted `in` lists, parsed networks.
#[derive(Debug, Clone)]
pub struct CompiledRule {
    pub(crate) root: Node,
}

#[derive(Debug, Clone)]
pub(crate) enum Node {
    All(Vec<Node>),
    Any(Vec<Node>),
    Not(Box<Node>),
    Field(Box<FieldTest>),
    Software(Box<SoftwareTest>),
    Tag(String),
    Group {
        id: String,
        /// Within a [`RuleSet`](super::RuleSet): the positions of this group and of every
        /// dynamic group below it in the tree, whose fresh results count as membership.
        slots: Vec<Slot>,
    },
}

/// A group whose fresh result a group condition reads: its position in a
/// [`RuleSet`](super::RuleSet) and its id (for explanations).
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) pos: usize,
    pub(crate) group: String,
}

#[derive(Debug, Clone)]
pub(crate) struct FieldTest {
    cond: FieldCondition,
    test: Test,
}

#[derive(Debug, Clone)]
pub(crate) struct SoftwareTest {
    cond: SoftwareCondition,
    name: NameKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn holds(self, ord: Ordering) -> bool {
        match self {
            Cmp::Eq => ord == Ordering::Equal,
            Cmp::Ne => ord != Ordering::Equal,
            Cmp::Gt => ord == Ordering::Greater,
            Cmp::Gte => ord != Ordering::Less,
            Cmp::Lt => ord == Ordering::Less,
            Cmp::Lte => ord != Ordering::Greater,
        }
    }

    fn of(op: Op) -> Cmp {
        match op {
            Op::Ne | Op::VersionNe => Cmp::Ne,
            Op::Gt | Op::VersionGt => Cmp::Gt,
            Op::Gte | Op::VersionGte => Cmp::Gte,
            Op::Lt | Op::VersionLt => Cmp::Lt,
            Op::Lte | Op::VersionLte => Cmp::Lte,
            _ => Cmp::Eq,
        }
    }

    fn symbol(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Ne => "≠",
            Cmp::Gt => ">",
            Cmp::Gte => "≥",
            Cmp::Lt => "<",
            Cmp::Lte => "≤",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TextCmp {
    Eq,
    Ne,
    Contains,
    StartsWith,
    EndsWith,
}

/// The per-value test of a field condition.
#[derive(Debug, Clone)]
enum Test {
    Exists,
    NotExists,
    /// `needle` is lowercase when `ci`.
    Text {
        cmp: TextCmp,
        needle: String,
        ci: bool,
    },
    /// Sorted (and lowercase when `ci`) for binary search.
    TextIn {
        sorted: Vec<String>,
        ci: bool,
    },
    Regex(regex_lite::Regex),
    Num(Cmp, f64),
    NumIn(Vec<f64>),
    Bool(Cmp, bool),
    Time(Cmp, i64),
    Version(Cmp, Scheme, String),
    Cidr(Network),
    OlderThan(i64),
    NewerThan(i64),
    /// A value that cannot match (only reachable if a rule was built inconsistently).
    Never,
}

impl Test {
    fn compile(c: &FieldCondition) -> Test {
        let ci = c.case_insensitive;
        let text = |s: &str| {
            if ci { s.to_lowercase() } else { s.to_string() }
        };
        match (&c.operand, c.op) {
            (_, Op::Exists) => Test::Exists,
            (_, Op::NotExists) => Test::NotExists,
            (Operand::Text(s), op) => {
                let cmp = match op {
                    Op::Ne => TextCmp::Ne,
                    // A whole list "contains" an element equal to the needle.
                    Op::Contains if c.whole_list => TextCmp::Eq,
                    Op::Contains => TextCmp::Contains,
                    Op::StartsWith => TextCmp::StartsWith,
                    Op::EndsWith => TextCmp::EndsWith,
                    _ => TextCmp::Eq,
                };
                Test::Text {
                    cmp,
                    needle: text(s),
                    ci,
                }
            }
            (Operand::TextList(l), _) => {
                let mut sorted: Vec<String> = l.iter().map(|s| text(s)).collect();
                sorted.sort();
                sorted.dedup();
                Test::TextIn { sorted, ci }
            }
            (Operand::Pattern(p), _) => Test::Regex(p.regex.clone()),
            (Operand::Number(x), op) => Test::Num(Cmp::of(op), *x),
            (Operand::NumberList(l), _) => Test::NumIn(l.clone()),
            (Operand::Bool(b), op) => Test::Bool(Cmp::of(op), *b),
            (Operand::Time(t), op) => Test::Time(Cmp::of(op), t.ms),
            (Operand::Version(v), op) => {
                Test::Version(Cmp::of(op), c.scheme.unwrap_or(Scheme::Generic), v.clone())
            }
            (Operand::Network(n), _) => Test::Cidr(n.clone()),
            (Operand::Duration(d), Op::OlderThan) => Test::OlderThan(d.ms),
            (Operand::Duration(d), _) => Test::NewerThan(d.ms),
            (Operand::Nothing, _) => Test::Never,
        }
    }

    fn matches(&self, v: Val<'_>, now_ms: i64) -> bool {
        match (self, v) {
            (Test::Exists, _) => true,
            (Test::NotExists | Test::Never, _) => false,
            (Test::Text { cmp, needle, ci }, Val::Str(s)) => {
                let s = if *ci { lowercase(s) } else { Cow::Borrowed(s) };
                match cmp {
                    TextCmp::Eq => *s == **needle,
                    TextCmp::Ne => *s != **needle,
                    TextCmp::Contains => s.contains(needle.as_str()),
                    TextCmp::StartsWith => s.starts_with(needle.as_str()),
                    TextCmp::EndsWith => s.ends_with(needle.as_str()),
                }
            }
            (Test::TextIn { sorted, ci }, Val::Str(s)) => {
                let s = if *ci { lowercase(s) } else { Cow::Borrowed(s) };
                sorted
                    .binary_search_by(|probe| probe.as_str().cmp(&s))
                    .is_ok()
            }
            (Test::Regex(re), Val::Str(s)) => re.is_match(s),
            (Test::Num(cmp, want), Val::Num(x)) => {
                x.partial_cmp(want).is_some_and(|o| cmp.holds(o))
            }
            // `in` on numbers is exact equality, as `eq` is.
            (Test::NumIn(list), Val::Num(x)) => list.contains(&x),
            (Test::Bool(cmp, want), Val::Bool(b)) => cmp.holds(b.cmp(want)),
            (Test::Time(cmp, want), Val::Time(t)) => cmp.holds(t.cmp(want)),
            (Test::Version(cmp, scheme, want), Val::Str(s)) => {
                cmp.holds(compare_for_constraint(*scheme, s, want))
            }
            (Test::Cidr(net), Val::Str(s)) => address_of(s).is_some_and(|ip| net.contains(ip)),
            (Test::OlderThan(d), Val::Time(t)) => now_ms.saturating_sub(t) > *d,
            (Test::NewerThan(d), Val::Time(t)) => now_ms.saturating_sub(t) < *d,
            // A value of another type than the rule expects (a custom field redefined after
            // the rule was saved) never matches.
            _ => false,
        }
    }
}

/// Evaluation context: the device, the clock, and the fresh results of the groups evaluated
/// before this one in a [`RuleSet`](super::RuleSet).
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'x, 'f> {
    pub(crate) facts: &'x FactIndex<'f>,
    pub(crate) now_ms: i64,
    pub(crate) dynamic: &'x [bool],
}

impl FieldTest {
    /// Calls `f` with each value of the field until it returns true.
    fn visit<'f>(&self, facts: &FactIndex<'f>, f: &mut dyn FnMut(Val<'f>) -> bool) -> bool {
        match &self.cond.target {
            Target::Builtin(spec) => (spec.visit)(facts, f),
            Target::Custom(name) => facts.facts.custom.get(name).is_some_and(|v| {
                f(match v {
                    CustomValue::String(s) => Val::Str(s),
                    CustomValue::Number(x) => Val::Num(*x),
                    CustomValue::Bool(b) => Val::Bool(*b),
                    CustomValue::Date(ms) => Val::Time(*ms),
                })
            }),
        }
    }

    fn evaluate(&self, facts: &FactIndex<'_>, now_ms: i64) -> bool {
        match &self.test {
            Test::NotExists => !self.visit(facts, &mut |_| true),
            test => self.visit(facts, &mut |v| test.matches(v, now_ms)),
        }
    }
}

impl SoftwareTest {
    fn entries<'s, 'f>(
        &'s self,
        facts: &'s FactIndex<'f>,
    ) -> impl Iterator<Item = SoftwareEntry<'f>> + 's {
        let source = self.cond.source.as_deref();
        facts
            .software(&self.name)
            .filter(move |e| source.is_none_or(|s| e.package.source.eq_ignore_ascii_case(s)))
    }

    fn entry_matches(&self, e: &SoftwareEntry<'_>) -> bool {
        match &self.cond.version {
            None => true,
            Some((op, want)) => {
                Cmp::of(*op).holds(compare_for_constraint(e.scheme, &e.package.version, want))
            }
        }
    }

    fn evaluate(&self, facts: &FactIndex<'_>) -> bool {
        self.entries(facts).any(|e| self.entry_matches(&e))
    }
}

/// The first group among `slots` whose fresh result is true: the group itself (when its own
/// rule matched) or a dynamic group below it.
fn fresh_member<'s>(slots: &'s [Slot], ctx: Ctx<'_, '_>) -> Option<&'s str> {
    slots
        .iter()
        .find(|s| ctx.dynamic.get(s.pos).copied().unwrap_or(false))
        .map(|s| s.group.as_str())
}

impl Node {
    fn compile(rule: &Rule) -> Node {
        match rule {
            Rule::All(c) => Node::All(c.iter().map(Node::compile).collect()),
            Rule::Any(c) => Node::Any(c.iter().map(Node::compile).collect()),
            Rule::Not(c) => Node::Not(Box::new(Node::compile(c))),
            Rule::Field(c) => Node::Field(Box::new(FieldTest {
                test: Test::compile(c),
                cond: c.clone(),
            })),
            Rule::Software(c) => Node::Software(Box::new(SoftwareTest {
                name: NameKey::new(&c.name),
                cond: c.clone(),
            })),
            Rule::Tag(t) => Node::Tag(t.clone()),
            Rule::Group(g) => Node::Group {
                id: g.clone(),
                slots: Vec::new(),
            },
        }
    }

    pub(crate) fn evaluate(&self, ctx: Ctx<'_, '_>) -> bool {
        match self {
            Node::All(c) => c.iter().all(|n| n.evaluate(ctx)),
            Node::Any(c) => c.iter().any(|n| n.evaluate(ctx)),
            Node::Not(c) => !c.evaluate(ctx),
            Node::Field(t) => t.evaluate(ctx.facts, ctx.now_ms),
            Node::Software(t) => t.evaluate(ctx.facts),
            Node::Tag(t) => ctx.facts.facts.tags.contains(t),
            Node::Group { id, slots } => {
                fresh_member(slots, ctx).is_some() || ctx.facts.facts.groups.contains(id)
            }
        }
    }

    fn collect_groups(&self, out: &mut BTreeSet<String>) {
        match self {
            Node::All(c) | Node::Any(c) => c.iter().for_each(|n| n.collect_groups(out)),
            Node::Not(c) => c.collect_groups(out),
            Node::Group { id, .. } => {
                out.insert(id.clone());
            }
            Node::Field(_) | Node::Software(_) | Node::Tag(_) => {}
        }
    }

    pub(crate) fn for_each_group(&mut self, f: &mut dyn FnMut(&str, &mut Vec<Slot>)) {
        match self {
            Node::All(c) | Node::Any(c) => c.iter_mut().for_each(|n| n.for_each_group(f)),
            Node::Not(c) => c.for_each_group(f),
            Node::Group { id, slots } => f(id, slots),
            Node::Field(_) | Node::Software(_) | Node::Tag(_) => {}
        }
    }

    pub(crate) fn explain(&self, ctx: Ctx<'_, '_>, path: String) -> Explanation {
        match self {
            Node::All(c) | Node::Any(c) => {
                let is_all = matches!(self, Node::All(_));
                let key = if is_all { "all" } else { "any" };
                let children: Vec<Explanation> = c
                    .iter()
                    .enumerate()
                    .map(|(i, n)| n.explain(ctx, format!("{path}/{key}/{i}")))
                    .collect();
                let true_count = children.iter().filter(|e| e.matched).count();
                let matched = if is_all {
                    true_count == children.len()
                } else {
                    true_count > 0
                };
                let noun = if c.len() == 1 {
                    "condition"
                } else {
                    "conditions"
                };
                Explanation {
                    matched,
                    text: format!(
                        "{key} of {} {noun}: {matched} ({true_count} of {} true)",
                        c.len(),
                        c.len()
                    ),
                    path,
                    children,
                }
            }
            Node::Not(c) => {
                let inner = c.explain(ctx, format!("{path}/not"));
                let matched = !inner.matched;
                Explanation {
                    matched,
                    text: format!("not: {matched}"),
                    path,
                    children: vec![inner],
                }
            }
            Node::Field(t) => {
                let matched = t.evaluate(ctx.facts, ctx.now_ms);
                leaf(matched, explain_field(t, ctx, matched), path)
            }
            Node::Software(t) => {
                let matched = t.evaluate(ctx.facts);
                leaf(matched, explain_software(t, ctx.facts, matched), path)
            }
            Node::Tag(tag) => {
                let matched = self.evaluate(ctx);
                let state = if matched { "present" } else { "absent" };
                leaf(matched, format!("tag {tag:?} is {state}: {matched}"), path)
            }
            Node::Group { id, slots } => {
                let matched = self.evaluate(ctx);
                // Name the descendant only when neither the group's own rule nor a stored
                // membership already makes the device a member.
                let own = slots
                    .iter()
                    .any(|s| s.group == *id && ctx.dynamic.get(s.pos).copied().unwrap_or(false));
                let through = (!own && !ctx.facts.facts.groups.contains(id))
                    .then(|| fresh_member(slots, ctx))
                    .flatten();
                let text = if let Some(g) = through {
                    format!("member of group {id:?} through its descendant group {g:?}: true")
                } else if matched {
                    format!("member of group {id:?}: true")
                } else {
                    format!("not a member of group {id:?}: false")
                };
                leaf(matched, text, path)
            }
        }
    }
}

fn leaf(matched: bool, text: String, path: String) -> Explanation {
    Explanation {
        matched,
        text,
        path,
        children: Vec::new(),
    }
}

/// Most values quoted in one explanation line.
const MAX_SHOWN: usize = 10;

fn show_value(v: Val<'_>, now_ms: i64) -> String {
    match v {
        Val::Str(s) => format!("{s:?}"),
        Val::Num(x) => format_number(x),
        Val::Bool(b) => b.to_string(),
        Val::Time(ms) => format!("{} ({})", format_timestamp(ms), format_age(ms, now_ms)),
    }
}

fn show_values(values: &[Val<'_>], now_ms: i64) -> String {
    let mut shown: Vec<String> = values
        .iter()
        .take(MAX_SHOWN)
        .map(|v| show_value(*v, now_ms))
        .collect();
    if values.len() > MAX_SHOWN {
        shown.push(format!("… and {} more", values.len() - MAX_SHOWN));
    }
    format!("[{}]", shown.join(", "))
}

/// What the condition claims of a value, e.g. "is in [a, b]". Explanations state the claim
/// and then whether it holds, so a false line reads "…, which equals \"x\": false".
fn claim(c: &FieldCondition) -> String {
    let mut operand = c.operand.display();
    if c.case_insensitive {
        operand.push_str(" (ignoring case)");
    }
    if c.op.is_version() {
        let scheme = c.scheme.unwrap_or(Scheme::Generic);
        operand = format!("{operand} ({scheme})");
    }
    let verb = match c.op {
        Op::Eq => "equals",
        Op::Ne => "does not equal",
        Op::In | Op::Cidr => "is in",
        Op::Contains => "contains",
        Op::StartsWith => "starts with",
        Op::EndsWith => "ends with",
        Op::Regex => "matches",
        Op::Gt | Op::VersionGt => "is >",
        Op::Gte | Op::VersionGte => "is ≥",
        Op::Lt | Op::VersionLt => "is <",
        Op::Lte | Op::VersionLte => "is ≤",
        Op::VersionEq => "is =",
        Op::VersionNe => "is ≠",
        Op::OlderThan => "is older than",
        Op::NewerThan => "is newer than",
        Op::Exists => "is present",
        Op::NotExists => "is absent",
    };
    format!("{verb} {operand}")
}

fn explain_field(t: &FieldTest, ctx: Ctx<'_, '_>, matched: bool) -> String {
    let c = &t.cond;
    let path = &c.path;
    let mut values = Vec::new();
    t.visit(ctx.facts, &mut |v| {
        values.push(v);
        false
    });
    if values.is_empty() {
        return if c.multi || c.whole_list {
            format!("{path} has no values: {matched}")
        } else {
            format!("{path} is absent: {matched}")
        };
    }
    if matches!(c.op, Op::Exists | Op::NotExists) {
        let shown = if c.multi || c.whole_list {
            show_values(&values, ctx.now_ms)
        } else {
            show_value(values[0], ctx.now_ms)
        };
        return format!("{path} is present ({shown}): {matched}");
    }
    if c.whole_list {
        let shown = show_values(&values, ctx.now_ms);
        return format!("{path} is {shown}, which {}: {matched}", claim(c));
    }
    if !c.multi {
        let shown = show_value(values[0], ctx.now_ms);
        return format!("{path} is {shown}, which {}: {matched}", claim(c));
    }
    if matched {
        let hit = values
            .iter()
            .copied()
            .find(|v| t.test.matches(*v, ctx.now_ms))
            .unwrap_or(values[0]);
        format!(
            "{path} has {}, which {}: true",
            show_value(hit, ctx.now_ms),
            claim(c)
        )
    } else {
        format!(
            "{path} has {}, none of which {}: false",
            show_values(&values, ctx.now_ms),
            claim(c)
        )
    }
}

fn explain_software(t: &SoftwareTest, facts: &FactIndex<'_>, matched: bool) -> String {
    let c = &t.cond;
    let name = &c.name;
    let entries: Vec<SoftwareEntry<'_>> = t.entries(facts).collect();
    let show = |e: &SoftwareEntry<'_>| format!("({}) {}", e.package.source, e.package.version);
    let named = |e: &SoftwareEntry<'_>| format!("{} {}", e.package.name, show(e));
    let Some(first) = entries.first() else {
        return match &c.source {
            Some(src) => format!("software {name} ({src}) is not installed: false"),
            None => format!("software {name} is not installed: false"),
        };
    };
    let Some((op, want)) = &c.version else {
        return format!("software {} is installed: true", named(first));
    };
    let symbol = Cmp::of(*op).symbol();
    if matched {
        let hit = entries.iter().find(|e| t.entry_matches(e)).unwrap_or(first);
        return format!("software {} {symbol} {want}: true", named(hit));
    }
    if entries.len() == 1 {
        return format!("software {} {symbol} {want}: false", named(first));
    }
    let mut shown: Vec<String> = entries.iter().take(MAX_SHOWN).map(show).collect();
    if entries.len() > MAX_SHOWN {
        shown.push(format!("… and {} more", entries.len() - MAX_SHOWN));
    }
    format!(
        "software {name}: none of {} is {symbol} {want}: false",
        shown.join(", ")
    )
}

impl Rule {
    /// Prepare the rule for evaluation. Compile once, evaluate for many devices.
    pub fn compile(&self) -> CompiledRule {
        CompiledRule {
            root: Node::compile(self),
        }
    }
}

impl CompiledRule {
    /// Whether the device matches. Group conditions read `facts.groups`.
    pub fn evaluate(&self, facts: &FactIndex<'_>, now_ms: i64) -> bool {
        self.root.evaluate(Ctx {
            facts,
            now_ms,
            dynamic: &[],
        })
    }

    /// Why the device matches or not, condition by condition.
    pub fn explain(&self, facts: &FactIndex<'_>, now_ms: i64) -> Explanation {
        self.root.explain(
            Ctx {
                facts,
                now_ms,
                dynamic: &[],
            },
            String::new(),
        )
    }

    /// Ids of the groups the rule tests membership of.
    pub fn referenced_groups(&self) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.root.collect_groups(&mut out);
        out
    }
}

/// The answer to "why does this device match / not match", mirroring the rule's tree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub matched: bool,
    /// One sentence ending in `: true` or `: false`, e.g.
    /// `os.id is "debian", which is in [debian, ubuntu]: true`.
    pub text: String,
    /// JSON pointer of the condition in the rule (empty for the root).
    pub path: String,
    pub children: Vec<Explanation>,
}

impl Explanation {
    fn write(&self, f: &mut fmt::Formatter<'_>, depth: usize) -> fmt::Result {
        writeln!(f, "{:indent$}{}", "", self.text, indent = depth * 2)?;
        self.children.iter().try_for_each(|c| c.write(f, depth + 1))
    }
}

/// One line per condition, children indented by two spaces.
impl fmt::Display for Explanation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write(f, 0)
    }
}

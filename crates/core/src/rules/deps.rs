//! Dependencies between group rules: which groups a rule references, the order in which rules
//! must be evaluated so that a referenced group is always decided first, the cycle that makes
//! such an order impossible, and [`RuleSet`], which evaluates a whole ordered set for one device
//! with each rule seeing the fresh results of the groups it references.
//!
//! Groups form a tree ([`GroupTree`]) and membership of a group includes the members of all its
//! descendants. So a rule that references group G depends on G's own rule *and* on the rule of
//! every dynamic group below G: those are evaluated first, and a fresh membership of any of
//! them counts as membership of G. The dependency graph therefore has two kinds of edges —
//! "rule of X references G" and "G contains its child C" — and a cycle may run through the tree
//! (a rule that references its own ancestor: `child → parent → child`).

use std::collections::{BTreeMap, BTreeSet};

use super::ast::Rule;
use super::engine::{CompiledRule, Ctx, Explanation, Slot};
use super::facts::FactIndex;

/// Group rules that reference each other in a circle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("group rules form a cycle: {}", .cycle.join(" → "))]
pub struct CycleError {
    /// The groups of the cycle, the first repeated at the end: `[a, b, a]`.
    pub cycle: Vec<String>,
}

/// Ids of the groups `rule` tests membership of.
pub fn referenced_groups(rule: &Rule) -> BTreeSet<String> {
    fn walk(rule: &Rule, out: &mut BTreeSet<String>) {
        match rule {
            Rule::All(c) | Rule::Any(c) => c.iter().for_each(|r| walk(r, out)),
            Rule::Not(r) => walk(r, out),
            Rule::Group(id) => {
                out.insert(id.clone());
            }
            Rule::Field(_) | Rule::Software(_) | Rule::Tag(_) => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(rule, &mut out);
    out
}

/// Order group ids so that each comes after the groups it references. `groups` pairs each
/// dynamic group with the ids its rule references; ids not in `groups` (static groups) are
/// already decided and ignored. The order is deterministic: dependencies first, otherwise the
/// input order. A repeated id keeps its first entry.
pub fn evaluation_order(groups: &[(String, BTreeSet<String>)]) -> Result<Vec<String>, CycleError> {
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (id, _)) in groups.iter().enumerate() {
        index.entry(id.as_str()).or_insert(i);
    }
    let deps: Vec<Vec<usize>> = groups
        .iter()
        .map(|(_, refs)| {
            refs.iter()
                .filter_map(|r| index.get(r.as_str()).copied())
                .collect()
        })
        .collect();

    #[derive(Clone, Copy, PartialEq)]
    enum State {
        New,
        OnStack,
        Done,
    }
    let mut state = vec![State::New; groups.len()];
    let mut order = Vec::with_capacity(groups.len());
    // Iterative depth-first search: a chain of thousands of groups must not overflow the stack.
    for start in index.values().copied().collect::<BTreeSet<_>>() {
        if state[start] != State::New {
            continue;
        }
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = State::OnStack;
        while let Some(&mut (node, ref mut next)) = stack.last_mut() {
            if let Some(&dep) = deps[node].get(*next) {
                *next += 1;
                match state[dep] {
                    State::Done => {}
                    State::New => {
                        state[dep] = State::OnStack;
                        stack.push((dep, 0));
                    }
                    State::OnStack => {
                        let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> = stack[from..]
                            .iter()
                            .map(|(n, _)| groups[*n].0.clone())
                            .collect();
                        cycle.push(groups[dep].0.clone());
                        return Err(CycleError { cycle });
                    }
                }
            } else {
                state[node] = State::Done;
                order.push(groups[node].0.clone());
                stack.pop();
            }
        }
    }
    Ok(order)
}

/// The group tree: each group's parent. Membership of a group counts for all its ancestors.
/// Built from stored rows, so every walk is bounded: a corrupt tree with a loop in it ends the
/// walk instead of spinning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupTree {
    parent: BTreeMap<String, String>,
    children: BTreeMap<String, BTreeSet<String>>,
}

impl GroupTree {
    /// A tree from `(group, parent)` pairs; top-level groups have no parent.
    pub fn new<I, S>(groups: I) -> GroupTree
    where
        I: IntoIterator<Item = (S, Option<S>)>,
        S: Into<String>,
    {
        let mut tree = GroupTree::default();
        for (id, parent) in groups {
            let id = id.into();
            tree.set_parent(&id, parent.map(Into::into).as_deref());
        }
        tree
    }

    /// Move `id` under `parent` (`None`: top level), as a re-parent or a new group would.
    pub fn set_parent(&mut self, id: &str, parent: Option<&str>) {
        if let Some(old) = self.parent.remove(id)
            && let Some(siblings) = self.children.get_mut(&old)
        {
            siblings.remove(id);
        }
        if let Some(p) = parent {
            self.parent.insert(id.to_string(), p.to_string());
            self.children
                .entry(p.to_string())
                .or_default()
                .insert(id.to_string());
        }
    }

    /// The parent of `id`, if it has one.
    pub fn parent(&self, id: &str) -> Option<&str> {
        self.parent.get(id).map(String::as_str)
    }

    /// The direct children of `id`.
    pub fn children<'t>(&'t self, id: &str) -> impl Iterator<Item = &'t str> + use<'t> {
        self.children
            .get(id)
            .into_iter()
            .flat_map(|c| c.iter().map(String::as_str))
    }

    /// The ancestors of `id`, nearest first, without `id` itself.
    pub fn ancestors(&self, id: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let mut cur = self.parent(id);
        while let Some(p) = cur {
            if p == id || out.contains(&p) {
                break;
            }
            out.push(p);
            cur = self.parent(p);
        }
        out
    }

    /// `id` and all its descendants.
    pub fn subtree<'t>(&'t self, id: &'t str) -> BTreeSet<&'t str> {
        let mut out = BTreeSet::from([id]);
        let mut todo = vec![id];
        while let Some(g) = todo.pop() {
            for c in self.children(g) {
                if out.insert(c) {
                    todo.push(c);
                }
            }
        }
        out
    }

    /// Every group the tree knows (with a parent or with children).
    fn groups(&self) -> BTreeSet<&str> {
        self.parent
            .iter()
            .flat_map(|(c, p)| [c.as_str(), p.as_str()])
            .collect()
    }
}

/// The dependency graph of `rules` (each dynamic group with the ids its rule references) in
/// `tree`: a rule's group depends on the groups it references, and every group on its
/// children (their members are its members). Rules come first, in input order, then the
/// other groups of the tree.
pub fn group_dependencies(
    rules: &[(String, BTreeSet<String>)],
    tree: &GroupTree,
) -> Vec<(String, BTreeSet<String>)> {
    let children = |id: &str| tree.children(id).map(str::to_string);
    let mut graph: Vec<(String, BTreeSet<String>)> = rules
        .iter()
        .map(|(id, refs)| {
            let mut deps = refs.clone();
            deps.extend(children(id));
            (id.clone(), deps)
        })
        .collect();
    let ruled: BTreeSet<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
    for g in tree.groups() {
        if !ruled.contains(g) {
            graph.push((g.to_string(), children(g).collect()));
        }
    }
    graph
}

/// [`evaluation_order`] of the dynamic groups `rules` within `tree`: a group referenced by a
/// rule is decided after every dynamic group below it. Returns only the ids of `rules`; a
/// cycle may name static groups it runs through (`a → servers → b → a`).
pub fn tree_evaluation_order(
    rules: &[(String, BTreeSet<String>)],
    tree: &GroupTree,
) -> Result<Vec<String>, CycleError> {
    let ruled: BTreeSet<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
    Ok(evaluation_order(&group_dependencies(rules, tree))?
        .into_iter()
        .filter(|id| ruled.contains(id.as_str()))
        .collect())
}

/// Every dynamic group's compiled rule, in evaluation order, for evaluating one device against
/// all of them at once (the per-device incremental evaluation, full passes and explanations).
///
/// A group condition `{"group": G}` holds when `facts.groups` contains G, or when the fresh
/// result of G's own rule or of any dynamic group below G in the tree is true. So
/// `facts.groups` must hold the device's static groups with their ancestors (and stored
/// memberships of dynamic groups that are *not* in the set, with their ancestors), never the
/// stored memberships of groups in the set: those may be stale, and the set decides them.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(String, CompiledRule)>,
    position: BTreeMap<String, usize>,
    tree: GroupTree,
}

impl RuleSet {
    /// Order the rules by their group references, as if every group were top-level; fails on
    /// a cycle. Ids must be unique: a repeated id keeps its first rule.
    pub fn new(rules: Vec<(String, CompiledRule)>) -> Result<RuleSet, CycleError> {
        RuleSet::with_tree(rules, &GroupTree::default())
    }

    /// Order the rules by their group references within `tree` (see
    /// [`tree_evaluation_order`]); fails on a cycle, including one through the tree.
    pub fn with_tree(
        rules: Vec<(String, CompiledRule)>,
        tree: &GroupTree,
    ) -> Result<RuleSet, CycleError> {
        let graph: Vec<(String, BTreeSet<String>)> = rules
            .iter()
            .map(|(id, r)| (id.clone(), r.referenced_groups()))
            .collect();
        let order = tree_evaluation_order(&graph, tree)?;
        let mut by_id: BTreeMap<String, CompiledRule> = BTreeMap::new();
        for (id, rule) in rules {
            by_id.entry(id).or_insert(rule);
        }
        let position: BTreeMap<String, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), i))
            .collect();
        let mut set = RuleSet {
            rules: Vec::with_capacity(order.len()),
            position,
            tree: tree.clone(),
        };
        for id in order {
            if let Some(mut rule) = by_id.remove(&id) {
                set.bind(&mut rule);
                set.rules.push((id, rule));
            }
        }
        Ok(set)
    }

    /// Point the rule's group conditions at the set's results: for `{"group": G}`, the
    /// positions of G and of every dynamic group below G.
    fn bind(&self, rule: &mut CompiledRule) {
        rule.root.for_each_group(&mut |group, slots| {
            *slots = self
                .tree
                .subtree(group)
                .into_iter()
                .filter_map(|g| {
                    self.position.get(g).map(|&pos| Slot {
                        pos,
                        group: g.to_string(),
                    })
                })
                .collect();
            // Evaluation order, so an explanation names the deepest group first.
            slots.sort_by_key(|s| s.pos);
        });
    }

    /// The group ids in evaluation order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(id, _)| id.as_str())
    }

    /// Whether the set holds the rule of group `id`.
    pub fn contains(&self, id: &str) -> bool {
        self.position.contains_key(id)
    }

    /// The tree the set was ordered in.
    pub fn tree(&self) -> &GroupTree {
        &self.tree
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Fresh results of the first `n` rules.
    fn results(&self, n: usize, facts: &FactIndex<'_>, now_ms: i64) -> Vec<bool> {
        let mut results = Vec::with_capacity(n);
        for (_, rule) in &self.rules[..n.min(self.rules.len())] {
            let matched = rule.root.evaluate(Ctx {
                facts,
                now_ms,
                dynamic: &results,
            });
            results.push(matched);
        }
        results
    }

    /// Evaluate every rule for one device, in order. A rule referencing a group sees the
    /// fresh results of that group and of the dynamic groups below it; see [`RuleSet`] for
    /// what `facts.groups` must hold.
    pub fn evaluate<'s>(&'s self, facts: &FactIndex<'_>, now_ms: i64) -> Vec<(&'s str, bool)> {
        let results = self.results(self.rules.len(), facts, now_ms);
        self.rules
            .iter()
            .zip(results)
            .map(|((id, _), m)| (id.as_str(), m))
            .collect()
    }

    /// Explain one group's rule for a device, with the groups it depends on evaluated fresh.
    /// `None` when the id is not in the set.
    pub fn explain(&self, id: &str, facts: &FactIndex<'_>, now_ms: i64) -> Option<Explanation> {
        let target = *self.position.get(id)?;
        let results = self.results(target, facts, now_ms);
        Some(self.rules[target].1.root.explain(
            Ctx {
                facts,
                now_ms,
                dynamic: &results,
            },
            String::new(),
        ))
    }

    /// Prepare a rule that is not part of the set (a preview of an unsaved rule) to read the
    /// set's fresh results for the groups it references.
    pub fn attach(&self, mut rule: CompiledRule) -> AttachedRule {
        self.bind(&mut rule);
        let mut needed = 0;
        rule.root.for_each_group(&mut |_, slots| {
            if let Some(last) = slots.iter().map(|s| s.pos + 1).max() {
                needed = needed.max(last);
            }
        });
        AttachedRule { rule, needed }
    }

    /// Evaluate an [attached](RuleSet::attach) rule for one device; only the rules it depends
    /// on (and those ordered before them) are evaluated.
    pub fn evaluate_attached(
        &self,
        attached: &AttachedRule,
        facts: &FactIndex<'_>,
        now_ms: i64,
    ) -> bool {
        let results = self.results(attached.needed, facts, now_ms);
        attached.rule.root.evaluate(Ctx {
            facts,
            now_ms,
            dynamic: &results,
        })
    }
}

/// A rule outside a [`RuleSet`] bound to the set's results ([`RuleSet::attach`]).
#[derive(Debug, Clone)]
pub struct AttachedRule {
    rule: CompiledRule,
    /// How many of the set's rules must be evaluated before this one.
    needed: usize,
}

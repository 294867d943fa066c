//! Dependencies between group rules: which groups a rule references, the order in which rules
//! must be evaluated so that a referenced group is always decided first, the cycle that makes
//! such an order impossible, and [`RuleSet`], which evaluates a whole ordered set for one device
//! with each rule seeing the fresh results of the groups it references.

use std::collections::{BTreeMap, BTreeSet};

use super::ast::Rule;
use super::engine::{CompiledRule, Ctx, Explanation};
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

/// Every dynamic group's compiled rule, in evaluation order, for evaluating one device against
/// all of them at once (the per-device incremental evaluation).
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<(String, CompiledRule)>,
}

impl RuleSet {
    /// Order the rules by their group references; fails on a cycle. Ids must be unique: a
    /// repeated id keeps its first rule.
    pub fn new(rules: Vec<(String, CompiledRule)>) -> Result<RuleSet, CycleError> {
        let graph: Vec<(String, BTreeSet<String>)> = rules
            .iter()
            .map(|(id, r)| (id.clone(), r.referenced_groups()))
            .collect();
        let order = evaluation_order(&graph)?;
        let mut by_id: BTreeMap<String, CompiledRule> = BTreeMap::new();
        for (id, rule) in rules {
            by_id.entry(id).or_insert(rule);
        }
        let position: BTreeMap<&str, usize> = order
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut ordered = Vec::with_capacity(order.len());
        for id in &order {
            if let Some(mut rule) = by_id.remove(id) {
                rule.root.for_each_group(&mut |group, slot| {
                    *slot = position.get(group).copied();
                });
                ordered.push((id.clone(), rule));
            }
        }
        Ok(RuleSet { rules: ordered })
    }

    /// The group ids in evaluation order.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.rules.iter().map(|(id, _)| id.as_str())
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Evaluate every rule for one device, in order. A rule referencing a group of this set
    /// sees that group's fresh result; other groups are read from `facts.groups`.
    pub fn evaluate<'s>(&'s self, facts: &FactIndex<'_>, now_ms: i64) -> Vec<(&'s str, bool)> {
        let mut results = Vec::with_capacity(self.rules.len());
        for (_, rule) in &self.rules {
            let matched = rule.root.evaluate(Ctx {
                facts,
                now_ms,
                dynamic: &results,
            });
            results.push(matched);
        }
        self.rules
            .iter()
            .zip(results)
            .map(|((id, _), m)| (id.as_str(), m))
            .collect()
    }

    /// Explain one group's rule for a device, with the groups it depends on evaluated fresh.
    /// `None` when the id is not in the set.
    pub fn explain(&self, id: &str, facts: &FactIndex<'_>, now_ms: i64) -> Option<Explanation> {
        let target = self.rules.iter().position(|(g, _)| g == id)?;
        let mut results = Vec::with_capacity(target);
        for (_, rule) in &self.rules[..target] {
            let matched = rule.root.evaluate(Ctx {
                facts,
                now_ms,
                dynamic: &results,
            });
            results.push(matched);
        }
        Some(self.rules[target].1.root.explain(
            Ctx {
                facts,
                now_ms,
                dynamic: &results,
            },
            String::new(),
        ))
    }
}

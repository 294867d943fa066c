//! Realistic scale: 100 rules of the kinds administrators write, evaluated for devices with
//! 3,000 packages, through a [`RuleSet`] (correctness only; timing lives in
//! `examples/rules_bench.rs`).

use super::*;

const NOW_MS: i64 = 1_795_600_000_000;

#[test]
fn hundred_rules_on_a_device_with_three_thousand_packages() {
    let ctx = synthetic::validation_context();
    let rules: Vec<(String, CompiledRule)> = synthetic::rules()
        .iter()
        .enumerate()
        .map(|(i, json)| {
            let rule = validate(json, &ctx).unwrap_or_else(|e| panic!("rule {i} {json}: {e:?}"));
            (synthetic::rule_id(i), rule.compile())
        })
        .collect();
    let set = RuleSet::new(rules.clone()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(set.len(), 100);

    let mut matched_per_rule = vec![0usize; 100];
    for seed in 0..20u64 {
        let inventory = synthetic::inventory(seed, 3_000);
        assert_eq!(inventory.software.as_ref().map(Vec::len), Some(3_000));
        inventory
            .validate()
            .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
        let performance = synthetic::performance(seed);
        let (tags, custom, groups, status) = synthetic::extras(seed, NOW_MS);
        let facts = DeviceFacts {
            inventory: Some(&inventory),
            performance: Some(&performance),
            tags,
            custom,
            groups,
            status,
        };
        let index = facts.index();
        let results = set.evaluate(&index, NOW_MS);
        assert_eq!(results.len(), 100);

        // The set agrees with each rule evaluated alone once the fresh dynamic memberships
        // are in the facts, and with its own explanation.
        let mut with_dynamic = facts.clone();
        with_dynamic.groups.extend(
            results
                .iter()
                .filter(|(_, m)| *m)
                .map(|(id, _)| id.to_string()),
        );
        let index_dynamic = with_dynamic.index();
        for (id, matched) in &results {
            let i: usize = id
                .trim_start_matches("dyn-")
                .parse()
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            let alone = rules[i].1.evaluate(&index_dynamic, NOW_MS);
            assert_eq!(alone, *matched, "seed {seed}, {id}");
            let explained = set.explain(id, &index, NOW_MS).map(|e| e.matched);
            assert_eq!(explained, Some(*matched), "seed {seed}, {id}");
            if *matched {
                matched_per_rule[i] += 1;
            }
        }
    }
    // The synthetic rules are not degenerate: a good share match some devices and most
    // match fewer than all of them.
    let sometimes = matched_per_rule
        .iter()
        .filter(|&&n| n > 0 && n < 20)
        .count();
    assert!(
        sometimes >= 40,
        "only {sometimes} rules discriminate: {matched_per_rule:?}"
    );
}

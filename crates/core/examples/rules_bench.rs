//! Benchmark of the dynamic-group engine's design target: one device evaluated against 100
//! compiled rules in at most 1 ms. Devices are synthetic (3,000 packages each), rules are the
//! 100 realistic ones from `capstan_core::rules::synthetic`. Prints microseconds per device for
//! evaluating the 100 rules on a ready fact index, and for building the index and evaluating
//! (what incremental evaluation of one changed device costs).
//!
//! `cargo run --release -p capstan-core --example rules_bench [-- <iterations> [<packages>]]`

use std::time::Instant;

use anyhow::{Context, Result, bail};
use capstan_core::rules::{DeviceFacts, RuleSet, synthetic, validate};

const NOW_MS: i64 = 1_795_600_000_000;
const DEVICES: u64 = 32;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let iterations: usize = match args.next() {
        Some(a) => a.parse().context("iterations must be a number")?,
        None => 5_000,
    };
    let packages: usize = match args.next() {
        Some(a) => a.parse().context("packages must be a number")?,
        None => 3_000,
    };

    let ctx = synthetic::validation_context();
    let mut rules = Vec::new();
    for (i, json) in synthetic::rules().iter().enumerate() {
        match validate(json, &ctx) {
            Ok(rule) => rules.push((synthetic::rule_id(i), rule.compile())),
            Err(errors) => bail!("synthetic rule {i} is invalid: {errors:?}"),
        }
    }
    let set = RuleSet::new(rules)?;

    let inventories: Vec<_> = (0..DEVICES)
        .map(|s| synthetic::inventory(s, packages))
        .collect();
    let performances: Vec<_> = (0..DEVICES).map(synthetic::performance).collect();
    let facts: Vec<DeviceFacts<'_>> = (0..DEVICES as usize)
        .map(|i| {
            let (tags, custom, groups, status) = synthetic::extras(i as u64, NOW_MS);
            DeviceFacts {
                inventory: Some(&inventories[i]),
                performance: Some(&performances[i]),
                tags,
                custom,
                groups,
                status,
            }
        })
        .collect();

    // Warm up caches and the allocator.
    let mut matched = 0usize;
    for f in &facts {
        matched += set
            .evaluate(&f.index(), NOW_MS)
            .iter()
            .filter(|r| r.1)
            .count();
    }

    // Indexes built and used once, so their lazily built software index exists.
    let indexes: Vec<_> = facts.iter().map(DeviceFacts::index).collect();
    for index in &indexes {
        matched += set.evaluate(index, NOW_MS).iter().filter(|r| r.1).count();
    }
    let start = Instant::now();
    for i in 0..iterations {
        let results = set.evaluate(&indexes[i % indexes.len()], NOW_MS);
        matched += results.iter().filter(|r| r.1).count();
    }
    let eval_us = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    let start = Instant::now();
    for i in 0..iterations {
        let index = facts[i % facts.len()].index();
        let results = set.evaluate(&index, NOW_MS);
        matched += results.iter().filter(|r| r.1).count();
    }
    let total_us = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    println!(
        "{iterations} iterations over {DEVICES} devices with {packages} packages, {} rules",
        set.len()
    );
    println!("  evaluate 100 rules, index ready: {eval_us:8.1} µs per device");
    println!("  build index + evaluate:          {total_us:8.1} µs per device");
    println!(
        "  (of which the index:             {:8.1} µs)",
        total_us - eval_us
    );
    // Printed so the work above cannot be optimised away.
    println!("  (matches counted: {matched})");
    Ok(())
}

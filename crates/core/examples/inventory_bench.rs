//! Benchmark of the inventory hot path on the server: the digest of a full report and the
//! field-level diff against the previous one (a few packages changed), per report. Documents
//! are synthetic (`capstan_core::rules::synthetic`, 2,000 packages by default).
//!
//! `cargo run --release -p capstan-core --example inventory_bench [-- <iterations> [<packages>]]`

use std::time::Instant;

use anyhow::{Context, Result};
use capstan_core::inventory::{diff, digest};
use capstan_core::rules::synthetic;

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let iterations: usize = match args.next() {
        Some(a) => a.parse().context("iterations must be a number")?,
        None => 200,
    };
    let packages: usize = match args.next() {
        Some(a) => a.parse().context("packages must be a number")?,
        None => 2_000,
    };
    let old = synthetic::inventory(7, packages);
    let mut new = old.clone();
    // Ten upgrades, as in the load generator's steady state.
    if let Some(sw) = new.software.as_mut() {
        for p in sw.iter_mut().step_by((packages / 10).max(1)).take(10) {
            p.version.push_str("+b1");
        }
    }

    let start = Instant::now();
    let mut sink = 0usize;
    for _ in 0..iterations {
        sink += digest(&new).len();
    }
    let digest_us = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    let start = Instant::now();
    for _ in 0..iterations {
        sink += diff(&old, &new).len();
    }
    let diff_us = start.elapsed().as_secs_f64() * 1e6 / iterations as f64;

    println!("{packages} packages, {iterations} iterations (checksum {sink})");
    println!("digest: {digest_us:.0} µs per report");
    println!("diff (10 changes): {diff_us:.0} µs per report");
    Ok(())
}

//! A small latency histogram with logarithmic buckets (the idea of HdrHistogram, reduced to what
//! a benchmark report needs): every power of two is split into 128 linear sub-buckets, so any
//! recorded value is known to within 1/128 (< 0.8 %) whatever its magnitude, in a fixed few
//! kilobytes, and recording is a couple of integer operations — cheap enough to run inside the
//! measured loop without disturbing it. Values are microseconds.

use std::time::Duration;

/// Sub-buckets per power of two; values below this are recorded exactly.
const SUB: u64 = 128;
const SUB_BITS: u32 = 7;
/// Powers of two covered above `SUB`: up to 2^(SUB_BITS + OCTAVES) µs ≈ 39 hours.
const OCTAVES: usize = 40;

/// Latency histogram in microseconds.
#[derive(Debug, Clone)]
pub struct Histogram {
    counts: Vec<u64>,
    count: u64,
    sum: u128,
    min: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; SUB as usize * (OCTAVES + 1)],
            count: 0,
            sum: 0,
            min: u64::MAX,
            max: 0,
        }
    }

    fn index(v: u64) -> usize {
        if v < SUB {
            return v as usize;
        }
        let exp = 63 - v.leading_zeros(); // >= SUB_BITS
        let shift = exp - SUB_BITS;
        let mantissa = v >> shift; // in [SUB, 2 * SUB)
        let idx = SUB as usize + shift as usize * SUB as usize + (mantissa - SUB) as usize;
        // Beyond the covered range everything lands in the last bucket; `max` stays exact.
        idx.min(SUB as usize * (OCTAVES + 1) - 1)
    }

    /// Highest value that falls in bucket `idx`.
    fn upper_bound(idx: usize) -> u64 {
        let idx = idx as u64;
        if idx < SUB {
            return idx;
        }
        let shift = (idx - SUB) / SUB;
        let mantissa = SUB + (idx - SUB) % SUB;
        ((mantissa + 1) << shift) - 1
    }

    /// Record one value in microseconds.
    pub fn record_us(&mut self, v: u64) {
        self.counts[Self::index(v)] += 1;
        self.count += 1;
        self.sum += u128::from(v);
        self.min = self.min.min(v);
        self.max = self.max.max(v);
    }

    pub fn record(&mut self, d: Duration) {
        self.record_us(u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Add every sample of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max_us(&self) -> u64 {
        self.max
    }

    pub fn mean_us(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum as f64 / self.count as f64
        }
    }

    /// The value at percentile `p` (0..=100): the smallest recorded value such that at least
    /// `p` % of the samples are at or below it, reported as its bucket's upper bound (never
    /// above the true maximum). 0 when empty.
    pub fn percentile_us(&self, p: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((p / 100.0) * self.count as f64).ceil().max(1.0) as u64;
        let rank = rank.min(self.count);
        let mut seen = 0u64;
        for (idx, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::upper_bound(idx).clamp(self.min, self.max);
            }
        }
        self.max
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_are_exact() {
        let mut h = Histogram::new();
        for v in 1..=100 {
            h.record_us(v);
        }
        assert_eq!(h.percentile_us(50.0), 50);
        assert_eq!(h.percentile_us(99.0), 99);
        assert_eq!(h.percentile_us(100.0), 100);
        assert_eq!(h.percentile_us(0.0), 1);
        assert!((h.mean_us() - 50.5).abs() < 1e-9);
    }

    #[test]
    fn large_values_are_within_one_percent() {
        // Latencies from 1 ms to 10 s, uniformly spread: percentiles must match the sorted
        // samples to within the bucket precision.
        let samples: Vec<u64> = (0..10_000u64).map(|i| 1_000 + i * 999).collect();
        let mut h = Histogram::new();
        for &s in &samples {
            h.record_us(s);
        }
        for p in [50.0, 90.0, 99.0, 99.9] {
            let exact = samples[((p / 100.0) * samples.len() as f64).ceil() as usize - 1];
            let got = h.percentile_us(p);
            let err = (got as f64 - exact as f64).abs() / exact as f64;
            assert!(err < 0.01, "p{p}: got {got}, exact {exact}");
            assert!(
                got >= exact,
                "p{p}: the reported value must not understate latency"
            );
        }
        assert_eq!(h.percentile_us(100.0), *samples.last().unwrap());
    }

    #[test]
    fn tail_is_not_hidden_by_the_bulk() {
        // 990 fast requests and 10 very slow ones: p99 is fast, p99.9 and max are slow.
        let mut h = Histogram::new();
        for _ in 0..990 {
            h.record_us(2_000);
        }
        for _ in 0..10 {
            h.record_us(3_000_000);
        }
        assert!(h.percentile_us(99.0) < 2_100);
        assert!(h.percentile_us(99.9) >= 3_000_000);
        assert_eq!(h.max_us(), 3_000_000);
    }

    #[test]
    fn merge_equals_recording_everything_in_one() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        let mut all = Histogram::new();
        for v in (0..5_000u64).map(|i| i * 37 % 20_011) {
            if v % 2 == 0 { &mut a } else { &mut b }.record_us(v);
            all.record_us(v);
        }
        a.merge(&b);
        for p in [1.0, 50.0, 99.0, 100.0] {
            assert_eq!(a.percentile_us(p), all.percentile_us(p));
        }
        assert_eq!(a.count(), all.count());
    }

    #[test]
    fn empty_histogram_reports_zero() {
        let h = Histogram::new();
        assert_eq!(h.percentile_us(99.0), 0);
        assert_eq!(h.mean_us(), 0.0);
    }

    #[test]
    fn huge_values_do_not_panic() {
        let mut h = Histogram::new();
        h.record_us(u64::MAX);
        assert_eq!(h.percentile_us(50.0), u64::MAX);
    }
}

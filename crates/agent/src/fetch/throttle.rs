//! The download bandwidth limit of a deployment's network policy: a token bucket that paces
//! the bytes of one fetch, whatever source they come from. The bucket holds at most an eighth
//! of a second of the rate (a small burst, so a limited download never floods a slow link) and
//! may go into debt for a chunk larger than what it holds; the debt is paid by sleeping, so the
//! average rate is exact however the source cuts its chunks, and time overslept by the timer
//! comes back as tokens instead of lowering the rate.

use std::num::NonZeroU64;
use std::time::Duration;

use tokio::time::Instant;

/// The largest burst, whatever the rate: beyond this a "limit" would let whole installers
/// through at line speed.
const MAX_BURST: u64 = 1024 * 1024;

#[derive(Debug)]
pub(super) struct Throttle {
    rate: f64,
    burst: f64,
    /// Negative while in debt.
    tokens: f64,
    last: Instant,
}

impl Throttle {
    pub(super) fn new(bytes_per_sec: NonZeroU64) -> Self {
        Self::starting_at(bytes_per_sec, Instant::now())
    }

    fn starting_at(bytes_per_sec: NonZeroU64, now: Instant) -> Self {
        let rate = bytes_per_sec.get();
        let burst = (rate / 8).min(MAX_BURST) as f64;
        Throttle {
            rate: rate as f64,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// The most worth reading in one go from a source whose reads we choose (a file share):
    /// what the bucket holds when full, so the pace stays smooth instead of one long sleep per
    /// large read.
    pub(super) fn chunk_hint(&self) -> usize {
        (self.burst as usize).max(1)
    }

    /// Takes `bytes` from the bucket and says how long to wait before they may be passed on.
    fn delay_for(&mut self, bytes: usize, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst) - bytes as f64;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.rate)
        }
    }

    /// Waits until `bytes` more fit the rate.
    pub(super) async fn consume(&mut self, bytes: usize) {
        let delay = self.delay_for(bytes, Instant::now());
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(n: u64) -> NonZeroU64 {
        NonZeroU64::new(n).unwrap()
    }

    /// Feeds `chunks` through a bucket as a source would deliver them (each the moment the
    /// previous wait ended) and returns when the last one may pass, from the start.
    fn finish_time(bytes_per_sec: u64, chunks: &[usize]) -> Duration {
        let start = Instant::now();
        let mut t = Throttle::starting_at(rate(bytes_per_sec), start);
        let mut now = start;
        for &c in chunks {
            now += t.delay_for(c, now);
        }
        now - start
    }

    fn approx(actual: Duration, expected_secs: f64) -> bool {
        (actual.as_secs_f64() - expected_secs).abs() < 0.001
    }

    #[test]
    fn the_average_rate_holds_whatever_the_chunk_sizes() {
        // 512 KiB at 256 KiB/s with a 32 KiB burst: (512 - 32) / 256 s.
        let cases: &[(&str, Vec<usize>)] = &[
            ("16 KiB chunks", vec![16 * 1024; 32]),
            ("one chunk", vec![512 * 1024]),
            ("ragged", {
                let mut v = vec![1000; 500];
                v.push(512 * 1024 - 500_000);
                v
            }),
        ];
        for (name, chunks) in cases {
            assert_eq!(chunks.iter().sum::<usize>(), 512 * 1024, "{name}");
            let took = finish_time(256 * 1024, chunks);
            assert!(approx(took, 480.0 / 256.0), "{name}: {took:?}");
        }
    }

    #[test]
    fn the_burst_is_small_and_refills_only_up_to_its_size() {
        let start = Instant::now();
        let mut t = Throttle::starting_at(rate(80_000), start);
        // A tenth of a second's worth passes at once, the next byte waits.
        assert_eq!(t.delay_for(10_000, start), Duration::ZERO);
        assert!(t.delay_for(8_000, start) > Duration::from_millis(99));
        // A long idle pause does not bank more than the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!(t.delay_for(10_000, later), Duration::ZERO);
        assert!(approx(t.delay_for(8_000, later), 0.1));
        // The burst is capped for fast links too.
        assert_eq!(
            Throttle::starting_at(rate(1 << 30), start).chunk_hint(),
            1024 * 1024
        );
    }

    #[test]
    fn time_overslept_is_credited_to_the_next_chunks() {
        let start = Instant::now();
        let mut t = Throttle::starting_at(rate(1000), start);
        let wait = t.delay_for(1125, start);
        assert!(approx(wait, 1.0), "{wait:?}");
        // The timer woke half a second late: that time is credited, up to a burst's worth.
        let woke = start + wait + Duration::from_millis(500);
        assert_eq!(t.delay_for(125, woke), Duration::ZERO);
        assert!(approx(t.delay_for(125, woke), 0.125));
    }

    #[tokio::test]
    async fn consume_sleeps_off_the_debt() {
        let mut t = Throttle::new(rate(100_000));
        let started = std::time::Instant::now();
        t.consume(12_500).await;
        t.consume(20_000).await;
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(195), "{took:?}");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}

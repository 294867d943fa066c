//! The wake-up hub: how the server reaches an online agent within a second. Each device has a
//! generation counter; an agent long-polls with the generation it last saw and is answered as
//! soon as the counter moves (or at its timeout). Waking is only a hint — what to do is always
//! read from durable state at the following check-in — so losing a wake (e.g. across a restart)
//! delays work by at most one check-in interval, never loses it.
//!
//! Generations start at the server's start time in milliseconds, so after a restart every
//! agent's remembered generation differs and it checks in at once.
//!
//! Single-process for now: with several replicas, a wake must also be relayed through
//! PostgreSQL LISTEN/NOTIFY (DESIGN.md); that arrives with the scale-out work.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

#[derive(Debug, Default)]
struct Slot {
    generation: AtomicU64,
    waiters: AtomicUsize,
    notify: Notify,
}

#[derive(Debug)]
pub struct WakeHub {
    epoch: u64,
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

/// Outcome of [`WakeHub::wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitOutcome {
    pub woken: bool,
    pub generation: u64,
}

impl WakeHub {
    pub fn new(epoch: u64) -> WakeHub {
        WakeHub {
            epoch,
            slots: Mutex::new(HashMap::new()),
        }
    }

    fn slot(&self, device: &str) -> Arc<Slot> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(device.to_string())
            .or_insert_with(|| {
                let s = Slot::default();
                s.generation.store(self.epoch, Ordering::SeqCst);
                Arc::new(s)
            })
            .clone()
    }

    /// The device's current generation.
    pub fn generation(&self, device: &str) -> u64 {
        self.slot(device).generation.load(Ordering::SeqCst)
    }

    /// Wake the device. Returns whether an agent was waiting at that moment.
    pub fn wake(&self, device: &str) -> bool {
        let slot = self.slot(device);
        slot.generation.fetch_add(1, Ordering::SeqCst);
        let waiting = slot.waiters.load(Ordering::SeqCst) > 0;
        slot.notify.notify_waiters();
        waiting
    }

    /// Whether an agent currently holds a wait for this device.
    pub fn is_waiting(&self, device: &str) -> bool {
        self.slot(device).waiters.load(Ordering::SeqCst) > 0
    }

    /// Forget a device (deleted).
    pub fn remove(&self, device: &str) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(device);
        if let Some(slot) = slot {
            slot.generation.fetch_add(1, Ordering::SeqCst);
            slot.notify.notify_waiters();
        }
    }

    /// Wait until the generation differs from `known`, the timeout passes, or `cancel` fires.
    pub async fn wait(
        &self,
        device: &str,
        known: u64,
        timeout: Duration,
        cancel: impl std::future::Future<Output = ()>,
    ) -> WaitOutcome {
        let slot = self.slot(device);
        let notified = slot.notify.notified();
        tokio::pin!(notified);
        // Register interest before re-reading the generation, so a wake in between is not lost.
        notified.as_mut().enable();
        let current = slot.generation.load(Ordering::SeqCst);
        if current != known {
            return WaitOutcome {
                woken: true,
                generation: current,
            };
        }
        // Counted while this future lives: an agent that disconnects mid-wait (crash, pulled
        // cable) makes the server drop the request's future, and the count must drop with it,
        // or the device would look connected forever.
        let waiting = Waiting::new(&slot);
        let woken = tokio::select! {
            _ = notified => true,
            _ = tokio::time::sleep(timeout) => false,
            _ = cancel => false,
        };
        drop(waiting);
        WaitOutcome {
            woken,
            generation: slot.generation.load(Ordering::SeqCst),
        }
    }
}

/// One agent waiting on a slot, for as long as this value lives.
struct Waiting<'a>(&'a Slot);

impl<'a> Waiting<'a> {
    fn new(slot: &'a Slot) -> Waiting<'a> {
        slot.waiters.fetch_add(1, Ordering::SeqCst);
        Waiting(slot)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.waiters.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stale_generation_returns_at_once() {
        let hub = WakeHub::new(1000);
        let out = hub
            .wait("d", 5, Duration::from_secs(10), std::future::pending())
            .await;
        assert_eq!(
            out,
            WaitOutcome {
                woken: true,
                generation: 1000
            }
        );
    }

    #[tokio::test]
    async fn a_wait_dropped_midway_no_longer_counts_as_waiting() {
        let hub = Arc::new(WakeHub::new(7));
        let h2 = hub.clone();
        // The request future of an agent that disconnected is dropped, not completed.
        let waiter = tokio::spawn(async move {
            h2.wait("d", 7, Duration::from_secs(30), std::future::pending())
                .await
        });
        tokio::time::timeout(Duration::from_secs(5), async {
            while !hub.is_waiting("d") {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the waiter registers");
        waiter.abort();
        let _ = waiter.await;
        assert!(!hub.is_waiting("d"));
    }

    #[tokio::test]
    async fn wake_releases_a_waiter_promptly() {
        let hub = Arc::new(WakeHub::new(7));
        let h2 = hub.clone();
        let waiter = tokio::spawn(async move {
            h2.wait("d", 7, Duration::from_secs(30), std::future::pending())
                .await
        });
        // Let the waiter register.
        for _ in 0..100 {
            if hub.is_waiting("d") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(hub.wake("d"), "wake must see the waiter");
        let out = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            out,
            WaitOutcome {
                woken: true,
                generation: 8
            }
        );
        assert!(!hub.is_waiting("d"));
    }

    #[tokio::test]
    async fn wake_without_waiter_is_seen_by_the_next_wait() {
        let hub = WakeHub::new(1);
        assert!(!hub.wake("d"));
        let out = hub
            .wait("d", 1, Duration::from_secs(10), std::future::pending())
            .await;
        assert!(out.woken);
        assert_eq!(out.generation, 2);
    }

    #[tokio::test]
    async fn timeout_and_cancel_end_the_wait_unwoken() {
        let hub = WakeHub::new(1);
        let out = hub
            .wait("d", 1, Duration::from_millis(20), std::future::pending())
            .await;
        assert!(!out.woken);
        let out = hub.wait("d", 1, Duration::from_secs(30), async {}).await;
        assert!(!out.woken);
    }
}

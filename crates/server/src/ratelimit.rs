//! Brute-force protection for the unauthenticated routes that check a secret (login,
//! enrollment): after too many *failures* for one key (a client address or a username) within
//! a window, further attempts are refused with 429 `rate_limited` until the window passes.
//! Successes are never limited, so a busy office behind one NAT enrolling hundreds of machines
//! with a valid token is unaffected. In-memory and per replica: behind N replicas an attacker
//! gets at most N times the budget, which still turns an online guess into a hopeless one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;

/// At most this many keys are tracked; beyond it, expired entries are pruned and, if the map
/// is still full, the oldest window is evicted (bounded memory under a spray of addresses).
const MAX_KEYS: usize = 100_000;

#[derive(Debug)]
pub struct FailureLimiter {
    window: Duration,
    max_failures: u32,
    entries: Mutex<HashMap<String, (Instant, u32)>>,
}

impl FailureLimiter {
    pub fn new(max_failures: u32, window: Duration) -> FailureLimiter {
        FailureLimiter {
            window,
            max_failures,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Err(retry_after)` when the key has used up its failures in the current window.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.check_at(key, Instant::now())
    }

    fn check_at(&self, key: &str, now: Instant) -> Result<(), Duration> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        match entries.get(key) {
            Some((start, n))
                if *n >= self.max_failures && now.duration_since(*start) < self.window =>
            {
                Err(self.window - now.duration_since(*start))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, key: &str) {
        self.record_failure_at(key, Instant::now())
    }

    fn record_failure_at(&self, key: &str, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= MAX_KEYS && !entries.contains_key(key) {
            let window = self.window;
            entries.retain(|_, (start, _)| now.duration_since(*start) < window);
            if entries.len() >= MAX_KEYS
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(k, _)| k.clone())
            {
                entries.remove(&oldest);
            }
        }
        let e = entries.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= self.window {
            *e = (now, 0);
        }
        e.1 = e.1.saturating_add(1);
    }

    /// Forget a key's failures (after a successful login).
    pub fn reset(&self, key: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }
}

/// The client's address, when the server was started with connection info (always in
/// production; in-process router tests have none).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl ClientIp {
    /// A key for per-address limits: IPv6 clients are grouped by their /64, since one host
    /// usually owns a whole /64.
    pub fn key(&self, purpose: &str) -> Option<String> {
        self.0.map(|ip| match ip {
            IpAddr::V4(v4) => format!("{purpose}:{v4}"),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{purpose}:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_max_failures_until_the_window_passes() {
        let l = FailureLimiter::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert!(l.check_at("k", t0).is_ok());
            l.record_failure_at("k", t0);
        }
        let retry = l.check_at("k", t0 + Duration::from_secs(10)).unwrap_err();
        assert_eq!(retry, Duration::from_secs(50));
        assert!(l.check_at("other", t0).is_ok(), "keys are independent");
        assert!(
            l.check_at("k", t0 + Duration::from_secs(61)).is_ok(),
            "the window passes"
        );
        l.record_failure_at("k", t0 + Duration::from_secs(61));
        assert!(
            l.check_at("k", t0 + Duration::from_secs(62)).is_ok(),
            "a new window starts at one failure"
        );
    }

    #[test]
    fn reset_clears_failures() {
        let l = FailureLimiter::new(1, Duration::from_secs(60));
        l.record_failure("u");
        assert!(l.check("u").is_err());
        l.reset("u");
        assert!(l.check("u").is_ok());
    }

    #[test]
    fn memory_stays_bounded() {
        let l = FailureLimiter::new(5, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..(MAX_KEYS + 10) {
            l.record_failure_at(&format!("ip:{i}"), t0);
        }
        assert!(l.entries.lock().unwrap().len() <= MAX_KEYS);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a = ClientIp(Some("2001:db8:1:2::5".parse().unwrap()));
        let b = ClientIp(Some("2001:db8:1:2:ffff::9".parse().unwrap()));
        assert_eq!(a.key("login"), b.key("login"));
        assert_eq!(ClientIp(None).key("login"), None);
    }
}

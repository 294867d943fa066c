//! Waiting for something to become true with a deadline, and picking a free port. Tests poll
//! instead of sleeping a fixed time so they are as fast as the system allows and fail with a
//! message that says what never happened.

use std::future::Future;
use std::net::{Ipv4Addr, TcpListener};
use std::time::Duration;

use tokio::time::Instant;

/// How often [`wait_until`] asks again.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What a [`wait_until`] probe may return: `Option<T>` (not yet / done) or
/// `Result<Option<T>, E>` where an error ends the wait at once.
pub trait PollOutcome<T> {
    fn into_outcome(self) -> anyhow::Result<Option<T>>;
}

impl<T> PollOutcome<T> for Option<T> {
    fn into_outcome(self) -> anyhow::Result<Option<T>> {
        Ok(self)
    }
}

impl<T, E: Into<anyhow::Error>> PollOutcome<T> for Result<Option<T>, E> {
    fn into_outcome(self) -> anyhow::Result<Option<T>> {
        self.map_err(Into::into)
    }
}

/// Calls `probe` every 50 ms until it yields `Some(value)`, and returns that value. Fails when
/// `timeout` passes first (the error names `what` and the timeout), or as soon as the probe
/// returns an error. The probe is always called at least once, even with a zero timeout.
pub async fn wait_until<T, R, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = R>,
    R: PollOutcome<T>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let outcome = probe()
            .await
            .into_outcome()
            .map_err(|e| e.context(format!("while waiting for {what}")))?;
        if let Some(value) = outcome {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago. Another process can take it before the
/// caller binds it; prefer letting a server bind port 0 where it can report its address.
pub fn free_port() -> u16 {
    // Loopback with port 0 can only fail when the machine is out of ports or has no loopback,
    // which no test can work around.
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("cannot bind a port on 127.0.0.1");
    listener
        .local_addr()
        .expect("bound socket has an address")
        .port()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test]
    async fn returns_the_value_once_the_probe_succeeds() {
        let calls = AtomicU32::new(0);
        let got = wait_until("third call", Duration::from_secs(5), || async {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            (n == 3).then_some(n)
        })
        .await
        .unwrap();
        assert_eq!(got, 3);
    }

    #[tokio::test]
    async fn timeout_names_what_was_awaited() {
        let err = wait_until(
            "the moon to turn blue",
            Duration::from_millis(120),
            || async { None::<()> },
        )
        .await
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("the moon to turn blue") && msg.contains("120ms"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn probe_error_ends_the_wait_immediately() {
        let started = Instant::now();
        let err = wait_until("a row", Duration::from_secs(30), || async {
            Err::<Option<()>, _>(anyhow::anyhow!("database is gone"))
        })
        .await
        .unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        let msg = format!("{err:#}");
        assert!(
            msg.contains("database is gone") && msg.contains("a row"),
            "{msg}"
        );
    }

    #[test]
    fn free_port_can_be_bound() {
        let port = free_port();
        assert_ne!(port, 0);
        TcpListener::bind((Ipv4Addr::LOCALHOST, port)).unwrap();
    }
}

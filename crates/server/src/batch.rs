//! Write batching for the agents' hottest reports. A job fan-out wakes thousands of agents at
//! once, and each then claims, starts and finishes its run. One transaction per report would
//! queue them behind each other (SQLite has one writer; every statement is a round trip to the
//! database thread). A batcher instead hands all reports that arrived while the previous batch
//! was written to one store call, which writes them with a few set-based statements in one
//! transaction. Under light load a batch is a single report, so nothing waits for company.

use std::future::Future;
use std::sync::Arc;

use capstan_store::{
    CheckinRecord, CheckinRecorded, ClaimedRun, Control, FinishOutcome, FinishReport, StartReport,
    StoreError,
};
use tokio::sync::{mpsc, oneshot};

use crate::state::{AppState, now_ms};

/// Most reports written in one transaction.
const MAX_BATCH: usize = 500;

/// Why a batched call failed.
#[derive(Debug)]
pub enum BatchError {
    /// The store refused this item (not found, invalid …).
    Item(StoreError),
    /// The whole batch failed (database error); the message says why.
    Batch(String),
    /// The batch worker is gone (server shutting down).
    Closed,
}

impl BatchError {
    /// The API error for a failed call; `not_found` makes the answer for an item the store did
    /// not find (what that means depends on the route).
    pub fn into_api(
        self,
        not_found: impl FnOnce() -> crate::error::ApiError,
    ) -> crate::error::ApiError {
        use crate::error::ApiError;
        match self {
            BatchError::Item(StoreError::NotFound) => not_found(),
            BatchError::Item(other) => other.into(),
            BatchError::Batch(msg) => ApiError::internal(msg),
            BatchError::Closed => ApiError::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                capstan_proto::error::ErrorCode::Unavailable,
                "the server is shutting down",
            ),
        }
    }
}

type Reply<O> = oneshot::Sender<Result<O, BatchError>>;

/// A queue of items and the task that writes them in batches.
pub struct Batcher<I, O> {
    tx: mpsc::UnboundedSender<(I, Reply<O>)>,
}

impl<I, O> std::fmt::Debug for Batcher<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher").finish_non_exhaustive()
    }
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Start the worker. `write` gets every item of a batch and returns one result per item,
    /// in order (or fails as a whole).
    pub fn spawn<F, Fut>(write: F) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>> + Send,
    {
        let (tx, mut rx) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        let write = Arc::new(write);
        tokio::spawn(async move {
            while let Some(first) = rx.recv().await {
                let mut items = vec![first];
                while items.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(next) => items.push(next),
                        Err(_) => break,
                    }
                }
                let (inputs, replies): (Vec<I>, Vec<Reply<O>>) = items.into_iter().unzip();
                metrics::histogram!("capstan_write_batch_size").record(inputs.len() as f64);
                match write(inputs).await {
                    Ok(results) if results.len() == replies.len() => {
                        for (reply, result) in replies.into_iter().zip(results) {
                            let _ = reply.send(result.map_err(BatchError::Item));
                        }
                    }
                    Ok(results) => {
                        let msg = format!(
                            "a batch of {} reports returned {} results",
                            replies.len(),
                            results.len()
                        );
                        tracing::error!("{msg}");
                        for reply in replies {
                            let _ = reply.send(Err(BatchError::Batch(msg.clone())));
                        }
                    }
                    Err(e) => {
                        let msg = e.to_string();
                        tracing::warn!(error = %msg, "a batch of agent reports failed");
                        for reply in replies {
                            let _ = reply.send(Err(BatchError::Batch(msg.clone())));
                        }
                    }
                }
            }
        });
        Batcher { tx }
    }

    /// Queue `item` and wait for its result.
    pub async fn call(&self, item: I) -> Result<O, BatchError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((item, reply))
            .map_err(|_| BatchError::Closed)?;
        rx.await.map_err(|_| BatchError::Closed)?
    }
}

/// The batched agent writes of one server: check-ins, and the claim, start and finish
/// reports of job runs.
#[derive(Debug)]
pub struct AgentWrites {
    pub checkin: Batcher<CheckinRecord, CheckinRecorded>,
    pub claim: Batcher<String, Vec<ClaimedRun>>,
    pub start: Batcher<StartReport, Control>,
    pub finish: Batcher<FinishReport, FinishOutcome>,
}

/// The server's batchers, started on first use (inside the runtime).
pub fn writes(state: &AppState) -> &AgentWrites {
    state.agent_writes.get_or_init(|| {
        let store = state.store.clone();
        let threshold = state.config.job_breaker_threshold;
        let (s0, s1, s2, s3) = (store.clone(), store.clone(), store.clone(), store);
        AgentWrites {
            checkin: Batcher::spawn(move |items: Vec<CheckinRecord>| {
                let store = s0.clone();
                async move { store.record_checkins_batch(&items, now_ms()).await }
            }),
            claim: Batcher::spawn(move |devices: Vec<String>| {
                let store = s1.clone();
                async move {
                    let limit = crate::jobs::CLAIM_LIMIT as i64;
                    let out = store.claim_runs_batch(&devices, now_ms(), limit).await?;
                    Ok(out.into_iter().map(Ok).collect())
                }
            }),
            start: Batcher::spawn(move |items: Vec<StartReport>| {
                let store = s2.clone();
                async move { store.start_runs_batch(&items, now_ms()).await }
            }),
            finish: Batcher::spawn(move |items: Vec<FinishReport>| {
                let store = s3.clone();
                async move { store.finish_runs_batch(&items, threshold, now_ms()).await }
            }),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn concurrent_calls_share_batches_and_get_their_own_results() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::spawn(move |items: Vec<u32>| {
            c.fetch_add(1, Ordering::SeqCst);
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Ok(items
                    .into_iter()
                    .map(|i| {
                        if i == 7 {
                            Err(StoreError::NotFound)
                        } else {
                            Ok(i * 10)
                        }
                    })
                    .collect())
            }
        }));
        let mut tasks = Vec::new();
        for i in 0..100u32 {
            let b = b.clone();
            tasks.push(tokio::spawn(async move { (i, b.call(i).await) }));
        }
        for t in tasks {
            let (i, r) = t.await.unwrap();
            match r {
                Ok(v) => assert_eq!(v, i * 10),
                Err(BatchError::Item(StoreError::NotFound)) => assert_eq!(i, 7),
                Err(e) => panic!("{i}: {e:?}"),
            }
        }
        let n = calls.load(Ordering::SeqCst);
        assert!(n < 100, "100 concurrent calls took {n} batches");
    }

    #[tokio::test]
    async fn a_failed_batch_fails_every_item_with_the_reason() {
        let b: Batcher<u32, u32> = Batcher::spawn(|_items: Vec<u32>| async {
            Err(StoreError::Conflict("db down".into()))
        });
        match b.call(1).await {
            Err(BatchError::Batch(m)) => assert!(m.contains("db down"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

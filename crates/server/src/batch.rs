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

/// The runtime the batch writers run on: a thread of their own. A fan-out wakes thousands of
/// request tasks at once; on the server's runtime each database round trip of a batch would
/// wait for its turn behind all of them, and a batch makes several.
fn writer_runtime() -> &'static tokio::runtime::Handle {
    static RT: std::sync::OnceLock<tokio::runtime::Handle> = std::sync::OnceLock::new();
    RT.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("capstan-writes")
            .build()
            .expect("the batch writer runtime starts");
        let handle = rt.handle().clone();
        std::thread::Builder::new()
            .name("capstan-writes".into())
            .spawn(move || rt.block_on(std::future::pending::<()>()))
            .expect("the batch writer thread starts");
        handle
    })
}

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
    /// in order (or fails as a whole). `kind` labels the batch metrics (size, seconds).
    pub fn spawn<F, Fut>(kind: &'static str, write: F) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>> + Send,
    {
        Self::spawn_workers(kind, 1, write)
    }

    /// [`Batcher::spawn`] with `workers` batches in flight at once (for a database that
    /// writes concurrently: while one batch waits for its commit, the next is written).
    pub fn spawn_workers<F, Fut>(kind: &'static str, workers: usize, write: F) -> Batcher<I, O>
    where
        F: Fn(Vec<I>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>> + Send,
    {
        let (tx, rx) = mpsc::unbounded_channel::<(I, Reply<O>)>();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let write = Arc::new(write);
        for _ in 0..workers.max(1) {
            let (rx, write) = (rx.clone(), write.clone());
            writer_runtime().spawn(async move {
                loop {
                    let items = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else {
                            return;
                        };
                        let mut items = vec![first];
                        while items.len() < MAX_BATCH {
                            match rx.try_recv() {
                                Ok(next) => items.push(next),
                                Err(_) => break,
                            }
                        }
                        items
                    };
                    write_batch(kind, &*write, items).await;
                }
            });
        }
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

/// Write one batch and answer every caller.
async fn write_batch<I, O, F, Fut>(kind: &'static str, write: &F, items: Vec<(I, Reply<O>)>)
where
    F: Fn(Vec<I>) -> Fut,
    Fut: Future<Output = Result<Vec<Result<O, StoreError>>, StoreError>>,
{
    let (inputs, replies): (Vec<I>, Vec<Reply<O>>) = items.into_iter().unzip();
    metrics::histogram!("capstan_write_batch_size", "kind" => kind).record(inputs.len() as f64);
    let started = std::time::Instant::now();
    let written = write(inputs).await;
    metrics::histogram!("capstan_write_batch_seconds", "kind" => kind)
        .record(started.elapsed().as_secs_f64());
    match written {
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
        // PostgreSQL writes concurrently: a second check-in batch is written while the first
        // waits for its commit. SQLite has one writer; a second worker would only queue.
        let checkin_workers = match store.backend() {
            capstan_store::Backend::Postgres => 2,
            capstan_store::Backend::Sqlite => 1,
        };
        let (s0, s1, s2, s3) = (store.clone(), store.clone(), store.clone(), store);
        AgentWrites {
            checkin: Batcher::spawn_workers(
                "checkin",
                checkin_workers,
                move |items: Vec<CheckinRecord>| {
                    let store = s0.clone();
                    async move {
                        let limit = crate::jobs::CLAIM_LIMIT as i64;
                        store.record_checkins_batch(&items, now_ms(), limit).await
                    }
                },
            ),
            claim: Batcher::spawn("claim", move |devices: Vec<String>| {
                let store = s1.clone();
                async move {
                    let limit = crate::jobs::CLAIM_LIMIT as i64;
                    let out = store.claim_runs_batch(&devices, now_ms(), limit).await?;
                    Ok(out.into_iter().map(Ok).collect())
                }
            }),
            start: Batcher::spawn("start", move |items: Vec<StartReport>| {
                let store = s2.clone();
                async move { store.start_runs_batch(&items, now_ms()).await }
            }),
            finish: Batcher::spawn("finish", move |items: Vec<FinishReport>| {
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
        let b: Arc<Batcher<u32, u32>> = Arc::new(Batcher::spawn("test", move |items: Vec<u32>| {
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
        let b: Batcher<u32, u32> = Batcher::spawn("test", |_items: Vec<u32>| async {
            Err(StoreError::Conflict("db down".into()))
        });
        match b.call(1).await {
            Err(BatchError::Batch(m)) => assert!(m.contains("db down"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}

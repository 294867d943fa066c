//! Streaming one attempt's output to the server while it runs: chunks from the executor are
//! batched into `output` reports (at most every 250 ms while output flows, a heartbeat with no
//! chunks every second otherwise), and the server's answer can cancel the attempt. Chunks that
//! could not be sent stay buffered and are retried with backoff; the buffer is bounded by the
//! executor's caps. If the server stays unreachable long after the process ended, the output
//! is given up — the result itself travels through the journal and is never dropped.

use std::collections::VecDeque;
use std::time::Duration;

use capstan_proto::jobs::{OutputChunk, OutputReport};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::api::RunApi;

/// Timing and size knobs of the reporter.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    pub flush_every: Duration,
    pub heartbeat: Duration,
    /// Largest sum of JSON-encoded chunk data in one report (the server takes 256 KiB bodies).
    pub max_report_bytes: usize,
    /// Once the process ended, how long failing sends are retried before the output is
    /// dropped.
    pub give_up_after: Duration,
    /// Once the agent is stopping, how long the remaining output may take.
    pub stop_deadline: Duration,
    /// Upper bound of buffered chunk data; only reachable if the caps were raised.
    pub max_buffered_bytes: usize,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            flush_every: Duration::from_millis(250),
            heartbeat: Duration::from_secs(1),
            max_report_bytes: 192 * 1024,
            give_up_after: Duration::from_secs(300),
            stop_deadline: Duration::from_secs(2),
            max_buffered_bytes: 8 * 1024 * 1024,
        }
    }
}

/// The length of `data` once encoded as a JSON string.
fn wire_len(data: &str) -> usize {
    serde_json::to_string(data)
        .map(|s| s.len())
        .unwrap_or(data.len() * 6 + 2)
}

/// Split a chunk whose encoded form is larger than `max` (mostly control characters, which
/// JSON escapes to six bytes each) into pieces at character boundaries, offsets adjusted.
pub fn split_for_wire(chunk: OutputChunk, max: usize) -> Vec<(OutputChunk, usize)> {
    let len = wire_len(&chunk.data);
    if len <= max || chunk.data.chars().nth(1).is_none() {
        return vec![(chunk, len)];
    }
    let mut mid = chunk.data.len() / 2;
    while !chunk.data.is_char_boundary(mid) {
        mid -= 1;
    }
    if mid == 0 {
        mid = chunk.data.chars().next().map_or(1, char::len_utf8);
    }
    let (a, b) = chunk.data.split_at(mid);
    let second = OutputChunk {
        stream: chunk.stream,
        offset: chunk.offset + mid as u64,
        data: b.to_string(),
    };
    let first = OutputChunk {
        stream: chunk.stream,
        offset: chunk.offset,
        data: a.to_string(),
    };
    let mut out = split_for_wire(first, max);
    out.extend(split_for_wire(second, max));
    out
}

/// Send the output of one attempt until `chunks` is closed and everything was sent (or given
/// up). `on_cancel` is called when the server answers that the run was cancelled.
pub async fn stream_output<A: RunApi>(
    api: A,
    run_id: String,
    attempt: u32,
    mut chunks: mpsc::UnboundedReceiver<OutputChunk>,
    on_cancel: impl Fn() + Send,
    mut stopping: watch::Receiver<bool>,
    opts: ReportOptions,
) {
    let mut buffer: VecDeque<(OutputChunk, usize)> = VecDeque::new();
    let mut buffered = 0usize;
    let mut closed = false;
    let mut last_sent = Instant::now();
    let mut retry_at: Option<Instant> = None;
    let mut failures = 0u32;
    let mut failing_since: Option<Instant> = None;
    let mut closed_at: Option<Instant> = None;
    let mut stop_by: Option<Instant> =
        (*stopping.borrow()).then(|| Instant::now() + opts.stop_deadline);
    let piece_max = opts.max_report_bytes / 2;

    loop {
        if closed && buffer.is_empty() {
            return;
        }
        if let Some(by) = stop_by
            && Instant::now() >= by
        {
            if !buffer.is_empty() {
                warn!(run_id = %run_id, chunks = buffer.len(), "agent stopping; unsent output dropped");
            }
            return;
        }
        let due = match retry_at {
            Some(at) => at,
            None if closed => Instant::now(),
            None if !buffer.is_empty() => last_sent + opts.flush_every,
            None => last_sent + opts.heartbeat,
        };
        let due = stop_by.map_or(due, |by| due.min(by));
        tokio::select! {
            chunk = chunks.recv(), if !closed => match chunk {
                Some(chunk) => {
                    for (piece, len) in split_for_wire(chunk, piece_max) {
                        buffered += piece.data.len();
                        buffer.push_back((piece, len));
                    }
                    while buffered > opts.max_buffered_bytes {
                        if let Some((dropped, _)) = buffer.pop_front() {
                            buffered -= dropped.data.len();
                            warn!(run_id = %run_id, offset = dropped.offset, "output buffer full; oldest chunk dropped");
                        }
                    }
                }
                None => {
                    closed = true;
                    closed_at = Some(Instant::now());
                }
            },
            changed = stopping.changed(), if stop_by.is_none() => {
                if changed.is_err() || *stopping.borrow() {
                    stop_by = Some(Instant::now() + opts.stop_deadline);
                }
            }
            _ = tokio::time::sleep_until(due) => {
                if stop_by.is_some_and(|by| Instant::now() >= by) {
                    continue;
                }
                // One report: as many chunks from the front as fit.
                let mut take = 0usize;
                let mut size = 0usize;
                for (_, len) in &buffer {
                    if take > 0 && size + len > opts.max_report_bytes {
                        break;
                    }
                    size += len;
                    take += 1;
                }
                let report = OutputReport {
                    attempt,
                    chunks: buffer.iter().take(take).map(|(c, _)| c.clone()).collect(),
                };
                let result = api.output(&run_id, &report).await;
                let now = Instant::now();
                match result {
                    Ok(control) => {
                        for _ in 0..take {
                            if let Some((c, _)) = buffer.pop_front() {
                                buffered -= c.data.len();
                            }
                        }
                        last_sent = now;
                        retry_at = None;
                        failures = 0;
                        failing_since = None;
                        if control.cancel {
                            debug!(run_id = %run_id, "the server cancelled the run");
                            on_cancel();
                        }
                    }
                    Err(e) if e.permanent => {
                        warn!(run_id = %run_id, error = %e, "the server refused output; dropped");
                        for _ in 0..take {
                            if let Some((c, _)) = buffer.pop_front() {
                                buffered -= c.data.len();
                            }
                        }
                        last_sent = now;
                        retry_at = None;
                    }
                    Err(e) => {
                        failures += 1;
                        let since = *failing_since.get_or_insert(now);
                        let delay = Duration::from_millis(500)
                            .saturating_mul(1 << failures.min(6))
                            .min(Duration::from_secs(30));
                        debug!(run_id = %run_id, error = %e, retry_in_ms = delay.as_millis() as u64, "output report failed");
                        retry_at = Some(now + delay);
                        let ended_long_ago = closed_at.is_some_and(|at| now.duration_since(at) >= opts.give_up_after)
                            && now.duration_since(since) >= opts.give_up_after;
                        if ended_long_ago {
                            warn!(run_id = %run_id, chunks = buffer.len(), error = %e, "server unreachable; output of the attempt dropped");
                            return;
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use capstan_proto::jobs::OutputStream;

    #[test]
    fn oversized_chunks_are_split_with_contiguous_offsets() {
        let data = "\u{1}".repeat(1000) + "é€" + &"x".repeat(10);
        let chunk = OutputChunk {
            stream: OutputStream::Stdout,
            offset: 500,
            data: data.clone(),
        };
        let pieces = split_for_wire(chunk, 1024);
        assert!(pieces.len() > 1);
        let mut next = 500u64;
        let mut joined = String::new();
        for (piece, len) in &pieces {
            assert_eq!(piece.offset, next);
            assert!(*len <= 1024, "{len}");
            assert_eq!(*len, serde_json::to_string(&piece.data).unwrap().len());
            next += piece.data.len() as u64;
            joined.push_str(&piece.data);
        }
        assert_eq!(joined, data);
    }
}

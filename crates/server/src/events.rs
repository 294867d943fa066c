//! Live domain events for the console: `GET /api/v1/events/stream` sends the `events` table
//! (`group.member_added`, `group.member_removed`, `software.status`, …) as server-sent events,
//! so open pages refresh what changed instead of polling every list. Each event's SSE `id` is
//! its row id: a browser that reconnects after a server restart sends it back as
//! `Last-Event-ID` and catches up on everything it missed.
//!
//! The table is read every second (and at once after a full batch), so events written by other
//! replicas arrive as promptly as local ones; the stream needs no in-process signal.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use capstan_proto::error::ErrorBody;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::{Authz, DevicesRead};
use crate::error::{ApiError, ApiResult, Query};
use crate::state::AppState;

/// Rows read per query; a full batch is followed by another read without waiting.
const BATCH: i64 = 500;
/// How often the table is read when nothing is pending.
const POLL: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(event_stream))
}

/// One domain event, as the stream sends it (SSE `data`, with the same `id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DomainEvent {
    /// Increases with every event; the SSE `id` of the message.
    pub id: i64,
    pub at_ms: i64,
    /// Dotted: `group.member_added`, `group.member_removed`, `software.status`, …
    pub kind: String,
    /// The device the event is about.
    pub subject: String,
    /// The group (membership events) or package (`software.status`) it concerns.
    pub object: Option<String>,
    /// Kind-specific details (for `software.status`: package, version, status, previous,
    /// exit_code, …).
    pub data: serde_json::Value,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamQuery {
    /// Send the events after this id (an older page catching up). Without it (and without a
    /// `Last-Event-ID` header) the stream starts at the newest event.
    after: Option<i64>,
}

/// Domain events as server-sent events. The first message is `event: ready` whose `id` is
/// where the stream starts; every domain event follows as a plain message (`data` is a
/// [`DomainEvent`], `id` its id). Resumes after the `Last-Event-ID` header (sent by a
/// reconnecting browser) or `?after=`, in that order; otherwise starts at the newest event.
/// A comment every 15 s keeps idle connections open through proxies.
#[utoipa::path(get, path = "/api/v1/events/stream", tag = "devices", params(StreamQuery),
    responses((status = 200, content_type = "text/event-stream", body = DomainEvent),
        (status = 401, body = ErrorBody)))]
async fn event_stream(
    State(state): State<AppState>,
    _auth: Authz<DevicesRead>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
) -> ApiResult<Sse<impl futures_util::Stream<Item = Result<Event, Infallible>>>> {
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(q.after);
    let cursor = match resume {
        Some(after) => after.max(0),
        None => state.store.last_event_id().await?,
    };
    let init = Streaming {
        store: state.store.clone(),
        shutdown: state.shutdown.clone(),
        cursor,
        pending: std::collections::VecDeque::from([Event::default()
            .event("ready")
            .id(cursor.to_string())
            .data(format!("{{\"after\":{cursor}}}"))]),
        wait: false,
    };
    let stream = futures_util::stream::unfold(init, |mut s| async move {
        loop {
            if let Some(ev) = s.pending.pop_front() {
                return Some((Ok(ev), s));
            }
            if *s.shutdown.borrow() {
                return None;
            }
            if s.wait {
                let mut shutdown = s.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(POLL) => {}
                    _ = shutdown.wait_for(|v| *v) => return None,
                }
            }
            if let Err(e) = s.fill().await {
                tracing::warn!(error = %e.message, "domain event stream failed");
                return None;
            }
        }
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

struct Streaming {
    store: capstan_store::Store,
    shutdown: watch::Receiver<bool>,
    cursor: i64,
    pending: std::collections::VecDeque<Event>,
    /// Whether the next read waits for the poll interval (the last batch was not full).
    wait: bool,
}

impl Streaming {
    async fn fill(&mut self) -> ApiResult<()> {
        let rows = self.store.events_after(self.cursor, BATCH).await?;
        self.wait = (rows.len() as i64) < BATCH;
        for row in rows {
            self.cursor = row.id;
            // A corrupt `data` column must not end everyone's stream: pass it on as text.
            let data = serde_json::from_str(&row.data)
                .unwrap_or(serde_json::Value::String(row.data.clone()));
            let ev = DomainEvent {
                id: row.id,
                at_ms: row.at,
                kind: row.kind,
                subject: row.subject,
                object: row.object,
                data,
            };
            let text = serde_json::to_string(&ev).map_err(ApiError::internal)?;
            self.pending
                .push_back(Event::default().id(ev.id.to_string()).data(text));
        }
        Ok(())
    }
}

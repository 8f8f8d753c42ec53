//! Audit events of the control plane (`admin.*`, `rebac.*`): who changed what, as one
//! structured event on the `nexus::audit` tracing target and, when Redis is configured, one
//! JSON line on `nexus:audit:admin`, published in order by one background task. Events
//! name key ids and subjects, never a token. A full queue or a Redis failure drops the
//! published copy (with a warning), never the change.

use super::{Caller, Control};
use std::time::Duration;
use tokio::sync::mpsc;

/// Longest a publish may take before it is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// Lines waiting for Redis; past it, lines are dropped.
const QUEUE: usize = 1024;

/// Starts the task that publishes queued lines; returns the queue.
pub(super) fn start_publisher(client: redis::Client) -> mpsc::Sender<String> {
    let (tx, mut rx) = mpsc::channel::<String>(QUEUE);
    tokio::spawn(async move {
        let mut conn: Option<redis::aio::MultiplexedConnection> = None;
        while let Some(line) = rx.recv().await {
            let publish = async {
                let c = match &mut conn {
                    Some(c) => c,
                    None => conn.insert(client.get_multiplexed_async_connection().await?),
                };
                redis::cmd("PUBLISH")
                    .arg(nexus_wire::stats::ADMIN_AUDIT_CHANNEL)
                    .arg(&line)
                    .query_async::<i64>(c)
                    .await
            };
            if !matches!(
                tokio::time::timeout(PUBLISH_TIMEOUT, publish).await,
                Ok(Ok(_))
            ) {
                // Reconnect for the next line.
                conn = None;
                tracing::warn!("could not publish an audit event on Redis");
            }
        }
    });
    tx
}

impl Control {
    /// Records one change made by `caller`. `detail` says what changed.
    pub(crate) fn audit(&self, event: &'static str, caller: &Caller, detail: serde_json::Value) {
        let key_id = caller.key_id.map(|k| k.to_string());
        tracing::info!(
            target: "nexus::audit",
            event,
            key_id = key_id.as_deref().unwrap_or("local"),
            subject = caller.subject_id.as_deref().unwrap_or(""),
            detail = %detail,
            "audit"
        );
        let Some(queue) = &self.audit_redis else {
            return;
        };
        let line = serde_json::json!({
            "ts": super::ts(chrono::Utc::now()),
            "event": event,
            "key_id": key_id,
            "subject_id": caller.subject_id,
            "detail": detail,
        })
        .to_string();
        if queue.try_send(line).is_err() {
            tracing::warn!(event, "audit queue full: event not published on Redis");
        }
    }
}

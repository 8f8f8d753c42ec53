//! Audit events of the control plane (`admin.*`, `rebac.*`): who changed what, as one
//! structured event on the `nexus::audit` tracing target and, when Redis is configured, one
//! JSON line on `nexus:audit:admin`. Events name key ids and subjects, never a token. A
//! Redis failure drops the published copy, never the change.

use super::{Caller, Control};
use std::time::Duration;

/// Longest a publish may take before it is dropped.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

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
        let Some(client) = self.audit_redis.clone() else {
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
        tokio::spawn(async move {
            let publish = async {
                let mut c = client.get_multiplexed_async_connection().await?;
                redis::cmd("PUBLISH")
                    .arg(nexus_wire::stats::ADMIN_AUDIT_CHANNEL)
                    .arg(line)
                    .query_async::<i64>(&mut c)
                    .await
            };
            match tokio::time::timeout(PUBLISH_TIMEOUT, publish).await {
                Ok(Ok(_)) => {}
                _ => tracing::warn!(event, "could not publish an audit event on Redis"),
            }
        });
    }
}

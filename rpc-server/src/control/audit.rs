//! Audit events of the control plane (`admin.*`, `rebac.*`): who changed what, as one
//! structured event on the `nexus::audit` tracing target. Events name key ids and subjects,
//! never a token.

use super::Caller;

/// Records one change made by `caller`. `detail` says what changed.
pub(crate) fn record(event: &'static str, caller: &Caller, detail: serde_json::Value) {
    tracing::info!(
        target: "nexus::audit",
        event,
        key_id = caller.key_id.map(|k| k.to_string()).as_deref().unwrap_or("local"),
        subject = caller.subject_id.as_deref().unwrap_or(""),
        detail = %detail,
        "audit"
    );
}

//! Every name this crate uses on a bus, and [`permissions`]: the NATS subjects each role's
//! node credential must allow for what this crate does, and nothing more. The CLI mints
//! operator-mode credentials from [`permissions`]; `tests/nats.rs` runs both roles against
//! a nats-server that grants exactly this and fails on any permissions violation, so a
//! subject async-nats needs and this list lacks is caught there. (Each entry was also
//! removed in turn once, by hand: every removal broke that test, except the consumer info
//! of the two short reads, kept for the reconnect path described at `read_stream`.)

use nexus_wire::bus::Role;

/// The Redis Stream of invalidations.
pub const REDIS_STREAM: &str = "nexus:bus";
/// The field of a [`REDIS_STREAM`] entry holding the JSON message.
pub const REDIS_FIELD: &str = "m";
/// Approximate length [`REDIS_STREAM`] is capped at (`XADD … MAXLEN ~`).
pub const REDIS_STREAM_MAXLEN: u64 = 100_000;
/// Prefix of a node's heartbeat key on Redis (`nexus:node:<name>`).
pub const REDIS_NODE_PREFIX: &str = "nexus:node:";

/// The JetStream stream of invalidations.
pub const INVAL_STREAM: &str = "NEXUS_INVAL";
/// Its subjects; an invalidation is published on `nexus.inval.<kind>`.
pub const INVAL_SUBJECTS: &str = "nexus.inval.>";
/// The durable audit stream.
pub const AUDIT_STREAM: &str = "NEXUS_AUDIT";
/// The subject of MCP audit lines.
pub const AUDIT_SUBJECT: &str = "nexus.audit.mcp";
/// The KV bucket of heartbeats (key = node name).
pub const NODES_BUCKET: &str = "nexus_nodes";
/// The stream behind [`NODES_BUCKET`].
pub const NODES_STREAM: &str = "KV_nexus_nodes";

/// The subject an invalidation of `kind` is published on.
pub fn inval_subject(kind: &str) -> String {
    format!("nexus.inval.{kind}")
}

/// The subject of `node`'s heartbeat key.
pub fn node_key_subject(node: &str) -> String {
    format!("$KV.{NODES_BUCKET}.{node}")
}

/// `node`'s inbox prefix: replies to its requests arrive under it, and its credential may
/// subscribe to nothing else, so no node reads another's replies.
pub fn inbox_prefix(node: &str) -> String {
    format!("_INBOX_{node}")
}

/// The subjects a NATS user may publish to and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// The JetStream API requests of reading `stream` with ephemeral ordered consumers: look
/// the stream up, create a consumer (named, so the subject carries the name), pull from it,
/// ask about it and delete it when done. async-nats asks for a pull consumer's info after
/// every reconnect while it reads; the invalidation reader is always reading, so the test
/// shows that request, and the short reads of heartbeats and audit take the same path
/// when a reconnect falls in the middle of one.
fn read_stream(stream: &str) -> [String; 5] {
    [
        format!("$JS.API.STREAM.INFO.{stream}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
        format!("$JS.API.CONSUMER.DELETE.{stream}.>"),
    ]
}

/// The least subject permissions a node of `role` named `node` needs for this crate.
/// `node` must be a valid node name ([`nexus_wire::bus::is_valid_node_name`]): it is
/// placed in subjects verbatim.
///
/// Both roles read invalidations, write their own heartbeat key (only theirs: a node cannot
/// pretend another is alive) and receive replies on their own inbox. Frontends publish
/// audit lines and may create the audit stream; they cannot publish invalidations. rpc
/// nodes publish invalidations, create the invalidation stream and the heartbeat bucket,
/// list heartbeats and read the audit stream.
pub fn permissions(role: Role, node: &str) -> Permissions {
    let mut publish: Vec<String> = read_stream(INVAL_STREAM).into();
    publish.push(node_key_subject(node));
    match role {
        Role::Frontend => {
            publish.push(AUDIT_SUBJECT.to_owned());
            publish.push(format!("$JS.API.STREAM.INFO.{AUDIT_STREAM}"));
            publish.push(format!("$JS.API.STREAM.CREATE.{AUDIT_STREAM}"));
        }
        Role::Rpc => {
            publish.push(INVAL_SUBJECTS.to_owned());
            publish.push(format!("$JS.API.STREAM.CREATE.{INVAL_STREAM}"));
            // Creating the KV bucket asks for the account's limits first.
            publish.push("$JS.API.INFO".to_owned());
            publish.push(format!("$JS.API.STREAM.CREATE.{NODES_STREAM}"));
            publish.extend(read_stream(NODES_STREAM));
            publish.extend(read_stream(AUDIT_STREAM));
        }
    }
    Permissions {
        publish,
        subscribe: vec![format!("{}.>", inbox_prefix(node))],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frontends_cannot_publish_invalidations_or_others_heartbeats() {
        let p = permissions(Role::Frontend, "fe-1");
        assert!(p.publish.iter().all(|s| !s.starts_with("nexus.inval")));
        assert!(p.publish.contains(&"$KV.nexus_nodes.fe-1".to_owned()));
        assert!(
            p.publish
                .iter()
                .all(|s| !s.starts_with("$KV.") || s == "$KV.nexus_nodes.fe-1")
        );
        assert_eq!(p.subscribe, vec!["_INBOX_fe-1.>".to_owned()]);
        assert!(p.publish.contains(&AUDIT_SUBJECT.to_owned()));
        // Only reads of the invalidation stream; no stream may be deleted or purged.
        for s in &p.publish {
            assert!(
                !s.contains("DELETE.NEXUS_") || s.contains("CONSUMER"),
                "{s}"
            );
            assert!(!s.contains("PURGE") && !s.contains("UPDATE"), "{s}");
        }
    }

    #[test]
    fn rpc_nodes_publish_invalidations_and_read_everything() {
        let p = permissions(Role::Rpc, "rpc-1");
        assert!(p.publish.contains(&"nexus.inval.>".to_owned()));
        assert!(!p.publish.contains(&AUDIT_SUBJECT.to_owned()));
        assert!(
            p.publish
                .contains(&"$JS.API.CONSUMER.CREATE.NEXUS_AUDIT.>".to_owned())
        );
        assert_eq!(p.subscribe, vec!["_INBOX_rpc-1.>".to_owned()]);
        let mut sorted = p.publish.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), p.publish.len(), "no duplicates");
    }
}

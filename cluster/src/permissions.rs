//! The subjects a node may publish and subscribe to, by role.
//!
//! INTERIM: the authoritative version of [`permissions`] lives in the bus crate (the code
//! that actually uses these subjects); this copy follows its draft and is replaced by it, so
//! it stays alone in this file with the same signature.
//!
//! Least privilege: a node subscribes only to its own inbox (`_INBOX_<node>.>`, set with
//! the client's custom inbox prefix), so it cannot read other nodes' replies; everything it
//! consumes arrives through JetStream consumers delivering into that inbox. Publishing is
//! limited to the JetStream API calls its role makes on the named streams, and to the bus
//! subjects it writes.

use crate::Role;

/// Publish and subscribe allow-lists of one node's user JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
}

/// What a node named `node_name` with `role` may publish and subscribe to.
pub fn permissions(role: Role, node_name: &str) -> Permissions {
    // Both roles read invalidations (a consumer on NEXUS_INVAL) and write their own
    // liveness entry in the `nexus_nodes` KV bucket.
    let mut publish: Vec<String> = [
        "$JS.API.INFO",
        "$JS.API.STREAM.INFO.NEXUS_INVAL",
        "$JS.API.CONSUMER.CREATE.NEXUS_INVAL",
        "$JS.API.CONSUMER.CREATE.NEXUS_INVAL.>",
        "$JS.API.CONSUMER.INFO.NEXUS_INVAL.>",
        "$JS.API.CONSUMER.DELETE.NEXUS_INVAL.>",
        "$JS.API.CONSUMER.MSG.NEXT.NEXUS_INVAL.>",
        "$JS.ACK.NEXUS_INVAL.>",
        "$JS.FC.NEXUS_INVAL.>",
        "$JS.API.STREAM.INFO.KV_nexus_nodes",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    publish.push(format!("$KV.nexus_nodes.{node_name}"));
    let role_specific: &[&str] = match role {
        // Frontends write the durable audit stream.
        Role::Frontend => &[
            "nexus.audit.mcp",
            "$JS.API.STREAM.CREATE.NEXUS_AUDIT",
            "$JS.API.STREAM.INFO.NEXUS_AUDIT",
        ],
        // rpc nodes publish invalidations, own the streams, read the audit stream and
        // every node's liveness entry (`hub status`).
        Role::Rpc => &[
            "nexus.inval.>",
            "$JS.API.STREAM.CREATE.NEXUS_INVAL",
            "$JS.API.STREAM.UPDATE.NEXUS_INVAL",
            "$JS.API.STREAM.CREATE.KV_nexus_nodes",
            "$JS.API.STREAM.INFO.NEXUS_AUDIT",
            "$JS.API.CONSUMER.CREATE.NEXUS_AUDIT.>",
            "$JS.API.CONSUMER.CREATE.NEXUS_AUDIT",
            "$JS.API.CONSUMER.MSG.NEXT.NEXUS_AUDIT.>",
            "$JS.ACK.NEXUS_AUDIT.>",
            "$JS.API.CONSUMER.CREATE.KV_nexus_nodes.>",
            "$JS.API.DIRECT.GET.KV_nexus_nodes.>",
            "$JS.API.STREAM.MSG.GET.KV_nexus_nodes",
        ],
    };
    publish.extend(role_specific.iter().map(|s| (*s).to_owned()));
    Permissions {
        publish,
        subscribe: vec![format!("_INBOX_{node_name}.>")],
    }
}

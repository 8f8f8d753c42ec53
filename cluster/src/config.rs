//! The nats-server configuration of one clustered node, in operator mode with JetStream.
//!
//! The text is self-contained (the operator JWT and the account JWTs are inline), so it can
//! be copied to the node's host as it is; it holds no secret: JWTs are signed public
//! statements, and the seeds stay in the cluster directory.

use crate::jwt::{self, AccountNats, Claims, OperatorNats};
use crate::store::{Layout, OPERATOR_JWT};
use crate::{ClusterError, SYS_ACCOUNT};
use std::fmt::Write as _;
use std::path::Path;

/// The cluster's name in every node's `cluster` block.
pub const CLUSTER_NAME: &str = "nexus";

/// One node's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `server_name`: unique in the cluster (JetStream's peers are named by it).
    pub node: String,
    /// Route URLs of the cluster's nodes (`nats://host:6222`); this node's own may be in it.
    pub routes: Vec<String>,
    /// Client port.
    pub port: u16,
    /// Route port.
    pub cluster_port: u16,
    /// JetStream's store; the resolver keeps account JWTs in `<store_dir>/jwt`.
    pub store_dir: String,
    /// Monitoring port (`/healthz`, `/varz`), off when `None`.
    pub monitor_port: Option<u16>,
    /// Address every listener binds: `0.0.0.0` by default (peers connect from other hosts).
    pub host: String,
}

impl NatsConfig {
    /// Defaults of `nexus hub cluster nats-config`: ports 4222 and 6222, store
    /// `/var/lib/nats`, no monitoring port, every interface.
    pub fn new(node: impl Into<String>, routes: Vec<String>) -> Self {
        Self {
            node: node.into(),
            routes,
            port: 4222,
            cluster_port: 6222,
            store_dir: "/var/lib/nats".into(),
            monitor_port: None,
            host: "0.0.0.0".into(),
        }
    }
}

fn invalid(s: String) -> ClusterError {
    ClusterError::Invalid(s)
}

/// A host name or IP literal (IPv6 in brackets in URLs), nothing that could break out of a
/// quoted config string.
fn valid_host(h: &str) -> bool {
    if let Some(inner) = h.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner.parse::<std::net::Ipv6Addr>().is_ok();
    }
    !h.is_empty()
        && h.len() <= 253
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_')
}

/// `nats://host:port` or `nats-route://host:port`, without credentials or a path: routes
/// carry no secrets here (see the note in the output).
fn check_route(r: &str) -> Result<String, ClusterError> {
    let bad = |why: &str| invalid(format!("route {r:?}: {why} (expected nats://host:6222)"));
    let rest = r
        .strip_prefix("nats://")
        .or_else(|| r.strip_prefix("nats-route://"))
        .ok_or_else(|| bad("the scheme must be nats:// or nats-route://"))?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains('@') {
        return Err(bad("credentials in route URLs are not supported"));
    }
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| bad("a port is required"))?;
    if !valid_host(host) {
        return Err(bad("invalid host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(r.to_owned()),
        _ => Err(bad("invalid port")),
    }
}

/// Characters a config value may not contain: it is written inside double quotes.
fn check_quotable(what: &str, v: &str) -> Result<(), ClusterError> {
    if v.is_empty() {
        return Err(invalid(format!("{what} is empty")));
    }
    if v.chars().any(|c| c == '"' || c == '\\' || c.is_control()) {
        return Err(invalid(format!(
            "{what} {v:?} may not contain quotes, backslashes or control characters"
        )));
    }
    Ok(())
}

fn check(c: &NatsConfig) -> Result<Vec<String>, ClusterError> {
    crate::validate_name(&c.node).map_err(|e| invalid(format!("--node: {e}")))?;
    let routes: Vec<String> = c
        .routes
        .iter()
        .flat_map(|r| r.split(','))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(check_route)
        .collect::<Result<_, _>>()?;
    if routes.is_empty() {
        return Err(invalid(
            "--routes: give the route URL of every node of the cluster (nats://host:6222,…)".into(),
        ));
    }
    let mut ports = vec![("--port", c.port), ("--cluster-port", c.cluster_port)];
    if let Some(m) = c.monitor_port {
        ports.push(("monitor port", m));
    }
    for (i, (name, p)) in ports.iter().enumerate() {
        if *p == 0 {
            return Err(invalid(format!("{name} must be 1 to 65535")));
        }
        if let Some((other, _)) = ports[..i].iter().find(|(_, q)| q == p) {
            return Err(invalid(format!("{name} and {other} are both {p}")));
        }
    }
    check_quotable("--store-dir", &c.store_dir)?;
    if c.host.parse::<std::net::IpAddr>().is_err() && !valid_host(&c.host) {
        return Err(invalid(format!("listen host {:?} is not valid", c.host)));
    }
    Ok(routes)
}

fn listen(host: &str, port: u16) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// The nats-server configuration text of node `c.node`, from the cluster in `dir`.
pub fn nats_config(dir: &Path, c: &NatsConfig) -> Result<String, ClusterError> {
    let routes = check(c)?;
    let layout = Layout::existing(dir)?;
    let info = crate::read_info(&layout)?;
    // Check every JWT before handing it to servers: a damaged file fails here, not at boot.
    let operator_jwt = layout.read_text(&layout.file(OPERATOR_JWT))?;
    let op: Claims<OperatorNats> = jwt::decode(&operator_jwt)?;
    if op.sub != info.operator.public_key || op.iss != op.sub {
        return Err(ClusterError::Corrupt(format!(
            "{} is not this cluster's operator JWT",
            layout.file(OPERATOR_JWT).display()
        )));
    }
    let mut preload = Vec::new();
    for account in [&info.account, &info.system_account] {
        let path = layout.account_jwt(&account.name);
        let text = layout.read_text(&path)?;
        let claims: Claims<AccountNats> = jwt::decode(&text)?;
        if claims.sub != account.public_key || claims.iss != info.operator.public_key {
            return Err(ClusterError::Corrupt(format!(
                "{} is not the {} account JWT signed by this operator",
                path.display(),
                account.name
            )));
        }
        preload.push((account, text.trim().to_owned(), claims.iat));
    }
    let store = c.store_dir.trim_end_matches('/');
    let store = if store.is_empty() { "/" } else { store };
    let jwt_dir = if store == "/" {
        "/jwt".to_owned()
    } else {
        format!("{store}/jwt")
    };
    let mut s = String::new();
    let w = &mut s;
    // `write!` to a String cannot fail.
    let _ = writeln!(
        w,
        "# nats-server configuration of node {:?} of the Nexus Hub cluster {CLUSTER_NAME:?},\n\
         # written by `nexus hub cluster nats-config` from {}.\n\
         #\n\
         # Operator mode: clients authenticate with creds signed for this operator (one per\n\
         # node: `nexus hub cluster add-node`); accounts come from the `full` resolver, which\n\
         # starts from the account JWTs preloaded below and learns newer ones when they are\n\
         # pushed (`nexus hub cluster revoke-node … --server …`) or from the other nodes.\n\
         #\n\
         # SECURITY: routes are not authenticated (no route credentials). Expose the cluster\n\
         # port {} only to the other nodes of this cluster (a private network or a firewall\n\
         # rule): whoever reaches it can join the cluster as a route and see every message.\n\
         # The client port {} may face the nodes: every client needs creds of this operator.",
        c.node,
        dir.display(),
        c.cluster_port,
        c.port
    );
    let _ = writeln!(w);
    let _ = writeln!(w, "server_name: \"{}\"", c.node);
    let _ = writeln!(w, "listen: \"{}\"", listen(&c.host, c.port));
    match c.monitor_port {
        Some(m) => {
            let _ = writeln!(w, "http: \"{}\"", listen(&c.host, m));
        }
        None => {
            let _ = writeln!(
                w,
                "# Monitoring (/healthz, /varz, /jsz), off; to turn it on:\n# http: \"127.0.0.1:8222\""
            );
        }
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "# The operator ({}), root of trust.\noperator: \"{}\"",
        info.operator.public_key,
        operator_jwt.trim()
    );
    let _ = writeln!(
        w,
        "# The system account ({SYS_ACCOUNT}): server events and $SYS.REQ requests.\nsystem_account: \"{}\"",
        info.system_account.public_key
    );
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "resolver: {{\n  type: full\n  # Account JWTs, kept across restarts.\n  dir: \"{jwt_dir}\"\n  # Accounts are never deleted by a push.\n  allow_delete: false\n  # How often nodes compare their JWTs and fetch newer ones from each other.\n  interval: \"2m\"\n  timeout: \"1.9s\"\n}}"
    );
    let _ = writeln!(w, "# Loaded at start when newer than what {jwt_dir} holds.");
    let _ = writeln!(w, "resolver_preload: {{");
    for (account, text, iat) in &preload {
        let issued = chrono::DateTime::from_timestamp(*iat, 0)
            .map(|t| t.to_rfc3339())
            .unwrap_or_default();
        let _ = writeln!(
            w,
            "  # {} (issued {issued})\n  {}: \"{text}\"",
            account.name, account.public_key
        );
    }
    let _ = writeln!(w, "}}");
    let _ = writeln!(w);
    let _ = writeln!(w, "jetstream {{\n  store_dir: \"{store}\"\n}}");
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "cluster {{\n  name: \"{CLUSTER_NAME}\"\n  listen: \"{}\"\n  routes: [",
        listen(&c.host, c.cluster_port)
    );
    for r in &routes {
        let _ = writeln!(w, "    \"{r}\"");
    }
    let _ = writeln!(w, "  ]\n}}");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_values_are_checked() {
        assert!(check_route("nats://n1:6222").is_ok());
        assert!(check_route("nats-route://10.0.0.2:6222").is_ok());
        assert!(check_route("nats://[::1]:6222").is_ok());
        for bad in [
            "n1:6222",
            "http://n1:6222",
            "nats://u:p@n1:6222",
            "nats://n1",
            "nats://n1:0",
            "nats://n1:99999",
            "nats://n\"1:6222",
            "nats://:6222",
        ] {
            assert!(check_route(bad).is_err(), "{bad}");
        }
        let mut c = NatsConfig::new("n1", vec!["nats://n1:6222,nats://n2:6222".into()]);
        assert_eq!(check(&c).expect("valid").len(), 2);
        c.cluster_port = 4222;
        assert!(check(&c).is_err());
        c.cluster_port = 6222;
        c.store_dir = "/x\"y".into();
        assert!(check(&c).is_err());
        c.store_dir = "/data".into();
        c.node = "N1".into();
        assert!(check(&c).is_err());
        c.node = "n1".into();
        c.routes = vec![" , ".into()];
        assert!(check(&c).is_err());
    }
}

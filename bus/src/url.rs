//! `NEXUS_BUS_URL`: which bus, and where. Parsed once at start so a typo stops the node with
//! a message that says what is wrong, instead of a connection that never comes up.

use std::fmt;
use std::path::Path;

/// A parsed `NEXUS_BUS_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum BusUrl {
    /// `redis://…` or `rediss://…`, as given (the Redis client parses the rest).
    Redis(String),
    /// `nats://h1:4222,h2:4222,…`: every server, so the client fails over in the cluster.
    Nats {
        servers: Vec<NatsServer>,
        /// `nats://user:password@…` (plain server-config users, for tests and small setups).
        user: Option<(String, String)>,
    },
}

/// One NATS server of a [`BusUrl::Nats`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsServer {
    pub host: String,
    pub port: u16,
    /// `tls://host:port`: TLS required.
    pub tls: bool,
}

impl NatsServer {
    /// The address as async-nats reads it.
    pub(crate) fn addr(&self) -> String {
        let scheme = if self.tls { "tls" } else { "nats" };
        if self.host.contains(':') {
            format!("{scheme}://[{}]:{}", self.host, self.port)
        } else {
            format!("{scheme}://{}:{}", self.host, self.port)
        }
    }

    fn is_loopback(&self) -> bool {
        matches!(self.host.as_str(), "127.0.0.1" | "localhost" | "::1")
    }
}

/// Why a `NEXUS_BUS_URL` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBusUrl {
    #[error("NEXUS_BUS_URL is empty")]
    Empty,
    #[error("NEXUS_BUS_URL has an unknown scheme {0:?}: expected redis://, rediss:// or nats://")]
    UnknownScheme(String),
    #[error("NEXUS_BUS_URL names no NATS server")]
    NoHosts,
    #[error("NEXUS_BUS_URL: bad NATS server {0:?}: {1}")]
    BadHost(String, &'static str),
    #[error("NEXUS_BUS_URL: bad Redis URL: {0}")]
    BadRedis(String),
    #[error(
        "NEXUS_BUS_URL names NATS servers other than 127.0.0.1/localhost, so NEXUS_NATS_CREDS \
         must name this node's credentials file (`nexus hub cluster add-node`)"
    )]
    CredentialsRequired,
}

impl BusUrl {
    /// Parses `url`. `has_creds`: whether `NEXUS_NATS_CREDS` was given.
    pub fn parse(url: &str, has_creds: bool) -> Result<Self, BadBusUrl> {
        let url = url.trim();
        if url.is_empty() {
            return Err(BadBusUrl::Empty);
        }
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(BadBusUrl::UnknownScheme(String::new()));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "redis" | "rediss" => {
                // The client's own parser, so what we accept is what it connects to.
                redis::Client::open(url).map_err(|e| BadBusUrl::BadRedis(e.to_string()))?;
                Ok(Self::Redis(url.to_owned()))
            }
            "nats" | "tls" => parse_nats(scheme, rest, has_creds),
            other => Err(BadBusUrl::UnknownScheme(other.chars().take(32).collect())),
        }
    }

    pub fn backend(&self) -> crate::BackendKind {
        match self {
            Self::Redis(_) => crate::BackendKind::Redis,
            Self::Nats { .. } => crate::BackendKind::Nats,
        }
    }
}

fn parse_nats(scheme: &str, rest: &str, has_creds: bool) -> Result<BusUrl, BadBusUrl> {
    let mut user = None;
    let mut servers = Vec::new();
    for (i, part) in rest.split(',').enumerate() {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        // Later entries may repeat a scheme: `nats://h1:4222,nats://h2:4222`.
        let (tls, part) = if i == 0 {
            (scheme.eq_ignore_ascii_case("tls"), part)
        } else if let Some((s, p)) = part.split_once("://") {
            match s.to_ascii_lowercase().as_str() {
                "nats" => (false, p),
                "tls" => (true, p),
                other => return Err(BadBusUrl::UnknownScheme(other.chars().take(32).collect())),
            }
        } else {
            (scheme.eq_ignore_ascii_case("tls"), part)
        };
        let part = part.trim_end_matches('/');
        let hostport = match part.rsplit_once('@') {
            Some((info, hp)) => {
                if i != 0 {
                    return Err(BadBusUrl::BadHost(
                        redact(part),
                        "only the first server may carry user:password",
                    ));
                }
                let (u, p) = info
                    .split_once(':')
                    .ok_or(BadBusUrl::BadHost(redact(part), "user without password"))?;
                if u.is_empty() {
                    return Err(BadBusUrl::BadHost(redact(part), "empty user"));
                }
                user = Some((u.to_owned(), p.to_owned()));
                hp
            }
            None => part,
        };
        let mut server = parse_host_port(hostport)?;
        server.tls = tls;
        servers.push(server);
    }
    if servers.is_empty() {
        return Err(BadBusUrl::NoHosts);
    }
    // A production NATS cluster authenticates every node with its own credential (operator
    // mode, `nexus hub cluster add-node`), which also carries the node's subject permissions.
    // Without one a node would connect with whatever the server allows anonymous clients,
    // so that is only accepted for a server on this machine (development, tests).
    if !has_creds && !servers.iter().all(NatsServer::is_loopback) {
        return Err(BadBusUrl::CredentialsRequired);
    }
    Ok(BusUrl::Nats { servers, user })
}

fn parse_host_port(s: &str) -> Result<NatsServer, BadBusUrl> {
    let bad = |why| BadBusUrl::BadHost(s.chars().take(128).collect(), why);
    let (host, port) = if let Some(v6) = s.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ]"))?),
        };
        (h, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    if !host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
    {
        return Err(bad("invalid character in host"));
    }
    let port = match port {
        None => 4222,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("port is not 1-65535"))?,
    };
    Ok(NatsServer {
        host: host.to_ascii_lowercase(),
        port,
        tls: false,
    })
}

/// `part` with any `user:password@` replaced, for error messages.
fn redact(part: &str) -> String {
    match part.rsplit_once('@') {
        Some((_, hp)) => format!("***@{hp}"),
        None => part.to_owned(),
    }
}

/// Passwords never reach logs: the Debug and Display forms hide them.
impl fmt::Debug for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BusUrl({self})")
    }
}

impl fmt::Display for BusUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Redis(u) => match u.split_once("://") {
                Some((scheme, rest)) => write!(f, "{scheme}://{}", redact(rest)),
                None => f.write_str("redis://"),
            },
            Self::Nats { servers, user } => {
                for (i, s) in servers.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    let addr = s.addr();
                    match (i, user) {
                        (0, Some((u, _))) => {
                            let (scheme, hp) = addr.split_once("://").unwrap_or(("nats", &addr));
                            write!(f, "{scheme}://{u}:***@{hp}")?;
                        }
                        _ => f.write_str(&addr)?,
                    }
                }
                Ok(())
            }
        }
    }
}

/// Whether a credentials file looks usable before connecting, so a wrong path fails the
/// start rather than every reconnect.
pub(crate) fn check_creds_file(path: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read NEXUS_NATS_CREDS {}: {e}", path.display()))?;
    if !text.contains("BEGIN NATS USER JWT") || !text.contains("BEGIN USER NKEY SEED") {
        return Err(format!(
            "NEXUS_NATS_CREDS {} is not a NATS .creds file (user JWT and nkey seed)",
            path.display()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nats(url: &str, creds: bool) -> Result<Vec<(String, u16, bool)>, BadBusUrl> {
        match BusUrl::parse(url, creds)? {
            BusUrl::Nats { servers, .. } => Ok(servers
                .into_iter()
                .map(|s| (s.host, s.port, s.tls))
                .collect()),
            BusUrl::Redis(_) => panic!("{url} parsed as Redis"),
        }
    }

    #[test]
    fn redis_urls() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://:secret@redis.internal:6379/2",
            "rediss://user:secret@redis.example.com",
            " redis://localhost ",
        ] {
            let u = BusUrl::parse(ok, false).expect(ok);
            assert_eq!(u.backend(), crate::BackendKind::Redis);
            assert!(!format!("{u} {u:?}").contains("secret"), "{u}");
        }
        assert!(matches!(
            BusUrl::parse("redis://[::1", false),
            Err(BadBusUrl::BadRedis(_))
        ));
    }

    #[test]
    fn nats_urls() {
        assert_eq!(
            nats("nats://h1:4222,h2:4223,h3", true).expect("three"),
            vec![
                ("h1".into(), 4222, false),
                ("h2".into(), 4223, false),
                ("h3".into(), 4222, false)
            ]
        );
        assert_eq!(
            nats("nats://h1:4222,nats://h2:4222", true).expect("repeated scheme"),
            vec![("h1".into(), 4222, false), ("h2".into(), 4222, false)]
        );
        assert_eq!(
            nats("tls://h1,h2:7422", true).expect("tls"),
            vec![("h1".into(), 4222, true), ("h2".into(), 7422, true)]
        );
        assert_eq!(
            nats("nats://[::1]:14300", false).expect("v6 loopback"),
            vec![("::1".into(), 14300, false)]
        );
        assert_eq!(
            nats("NATS://LocalHost:14300/", false).expect("case"),
            vec![("localhost".into(), 14300, false)]
        );
        let u =
            BusUrl::parse("nats://fe-1:pw@127.0.0.1:14300,127.0.0.1:14301", false).expect("user");
        assert!(
            matches!(&u, BusUrl::Nats { user: Some((n, p)), servers } if n == "fe-1" && p == "pw" && servers.len() == 2)
        );
        assert_eq!(
            u.to_string(),
            "nats://fe-1:***@127.0.0.1:14300,nats://127.0.0.1:14301"
        );
    }

    #[test]
    fn refusals() {
        use BadBusUrl::*;
        type Expect = fn(&BadBusUrl) -> bool;
        let cases: &[(&str, bool, Expect)] = &[
            ("", true, |e| matches!(e, Empty)),
            ("   ", true, |e| matches!(e, Empty)),
            ("127.0.0.1:4222", true, |e| matches!(e, UnknownScheme(_))),
            (
                "http://h:4222",
                true,
                |e| matches!(e, UnknownScheme(s) if s == "http"),
            ),
            ("amqp://h", true, |e| matches!(e, UnknownScheme(_))),
            ("nats://", true, |e| matches!(e, NoHosts)),
            ("nats://,,", true, |e| matches!(e, NoHosts)),
            ("nats://h1,http://h2", true, |e| {
                matches!(e, UnknownScheme(_))
            }),
            ("nats://h1:0", true, |e| matches!(e, BadHost(..))),
            ("nats://h1:70000", true, |e| matches!(e, BadHost(..))),
            ("nats://h1:x", true, |e| matches!(e, BadHost(..))),
            ("nats://:4222", true, |e| matches!(e, BadHost(..))),
            ("nats://h 1:4222", true, |e| matches!(e, BadHost(..))),
            ("nats://[::1:4222", true, |e| matches!(e, BadHost(..))),
            ("nats://u@h1", true, |e| matches!(e, BadHost(..))),
            ("nats://h1,u:p@h2", true, |e| matches!(e, BadHost(..))),
            // Production NATS needs a node credential.
            ("nats://nats.internal:4222", false, |e| {
                matches!(e, CredentialsRequired)
            }),
            ("nats://127.0.0.1:4222,10.0.0.2:4222", false, |e| {
                matches!(e, CredentialsRequired)
            }),
            ("nats://u:p@nats.internal:4222", false, |e| {
                matches!(e, CredentialsRequired)
            }),
        ];
        for (url, creds, want) in cases {
            let got = BusUrl::parse(url, *creds);
            match &got {
                Err(e) => assert!(want(e), "{url}: {e:?}"),
                Ok(u) => panic!("{url} parsed as {u:?}"),
            }
        }
        // A refusal never echoes a password.
        let e = BusUrl::parse("nats://h1,u:hunter2@h2", true).expect_err("refused");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        // Loopback servers need no credentials.
        for ok in [
            "nats://127.0.0.1:14300",
            "nats://localhost",
            "nats://127.0.0.1:1,localhost:2",
        ] {
            assert!(BusUrl::parse(ok, false).is_ok(), "{ok}");
        }
    }
}

//! Pushing an account JWT to running servers: a request on `$SYS.REQ.CLAIMS.UPDATE` as the
//! system account's `sys` user.
//!
//! Every server of a cluster with the `full` resolver subscribes to that subject, so one
//! request reaches all of them over the routes and each answers on the reply inbox. There
//! is no count of servers to wait for, hence: up to [`FIRST_ANSWER`] for the first answer,
//! then until no new answer came for [`QUIET`], at most [`ALL_ANSWERS`] in all.

use crate::ClusterError;
use async_nats::ServerAddr;
use futures_util::StreamExt;
use serde::Deserialize;
use std::path::Path;
use std::time::Duration;
use tokio::time::{Instant, timeout, timeout_at};

const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";
const CONNECT: Duration = Duration::from_secs(3);
const FIRST_ANSWER: Duration = Duration::from_secs(3);
const QUIET: Duration = Duration::from_millis(750);
const ALL_ANSWERS: Duration = Duration::from_secs(6);

/// One server's answer to the account JWT update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAnswer {
    /// The server's name (`server_name`), or its id when it has none.
    pub server: String,
    /// It stored the JWT ("jwt updated").
    pub ok: bool,
    /// What it said.
    pub message: String,
}

/// What came of pushing the account JWT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushOutcome {
    /// No server was named.
    NotRequested,
    /// The request went out; these servers answered (none, when none did in time).
    Pushed(Vec<ServerAnswer>),
    /// No server could be reached (or the system user was refused).
    Failed(String),
}

/// Checks the `--server` URLs before anything is changed.
pub(crate) fn parse_servers(urls: &[String]) -> Result<Vec<ServerAddr>, ClusterError> {
    urls.iter()
        .flat_map(|u| u.split(','))
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| {
            u.parse::<ServerAddr>()
                .map_err(|e| ClusterError::Invalid(format!("--server {u:?}: {e}")))
        })
        .collect()
}

#[derive(Deserialize)]
struct Reply {
    server: Option<ReplyServer>,
    data: Option<ReplyData>,
    error: Option<ReplyError>,
}

#[derive(Deserialize)]
struct ReplyServer {
    #[serde(default)]
    name: String,
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct ReplyData {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct ReplyError {
    #[serde(default)]
    code: u16,
    #[serde(default)]
    description: String,
}

fn answer_of(payload: &[u8]) -> ServerAnswer {
    let Ok(r) = serde_json::from_slice::<Reply>(payload) else {
        return ServerAnswer {
            server: "?".into(),
            ok: false,
            message: format!(
                "unreadable answer: {}",
                String::from_utf8_lossy(payload)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ),
        };
    };
    let server = r
        .server
        .map(|s| if s.name.is_empty() { s.id } else { s.name })
        .unwrap_or_else(|| "?".into());
    match (r.data, r.error) {
        (_, Some(e)) => ServerAnswer {
            server,
            ok: false,
            message: format!("{} ({})", e.description, e.code),
        },
        (Some(d), None) => ServerAnswer {
            server,
            ok: d.code == 200,
            message: d.message,
        },
        (None, None) => ServerAnswer {
            server,
            ok: false,
            message: "empty answer".into(),
        },
    }
}

pub(crate) async fn push_account_jwt(
    sys_creds: &Path,
    servers: Vec<ServerAddr>,
    account_jwt: &str,
) -> PushOutcome {
    match push(sys_creds, servers, account_jwt).await {
        Ok(answers) => PushOutcome::Pushed(answers),
        Err(why) => PushOutcome::Failed(why),
    }
}

async fn push(
    sys_creds: &Path,
    servers: Vec<ServerAddr>,
    account_jwt: &str,
) -> Result<Vec<ServerAnswer>, String> {
    let options = async_nats::ConnectOptions::with_credentials_file(sys_creds)
        .await
        .map_err(|e| format!("cannot read {}: {e}", sys_creds.display()))?
        .name("nexus hub cluster revoke-node")
        .connection_timeout(CONNECT)
        // One pass over the given servers, without backing off: this is a command, not a
        // long-lived client (the client counts its first connect's attempts as reconnects).
        .max_reconnects(servers.len())
        .reconnect_delay_callback(|_| Duration::ZERO)
        .ignore_discovered_servers();
    let pass = CONNECT * u32::try_from(servers.len() + 1).unwrap_or(u32::MAX);
    let client = timeout(pass, options.connect(servers))
        .await
        .map_err(|_| "no server answered in time".to_owned())?
        .map_err(|e| format!("cannot connect as the system user: {e}"))?;
    let result = collect(&client, account_jwt).await;
    // Best effort: the answers are in already.
    let _ = timeout(Duration::from_secs(1), client.drain()).await;
    result
}

async fn collect(
    client: &async_nats::Client,
    account_jwt: &str,
) -> Result<Vec<ServerAnswer>, String> {
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| format!("cannot subscribe to the reply inbox: {e}"))?;
    client
        .publish_with_reply(CLAIMS_UPDATE, inbox, account_jwt.to_owned().into())
        .await
        .map_err(|e| format!("cannot send the update: {e}"))?;
    client
        .flush()
        .await
        .map_err(|e| format!("cannot send the update: {e}"))?;
    let deadline = Instant::now() + ALL_ANSWERS;
    let mut answers: Vec<ServerAnswer> = Vec::new();
    let mut wait = FIRST_ANSWER;
    loop {
        let until = (Instant::now() + wait).min(deadline);
        match timeout_at(until, replies.next()).await {
            Ok(Some(msg)) => {
                answers.push(answer_of(&msg.payload));
                wait = QUIET;
            }
            Ok(None) | Err(_) => break,
        }
    }
    answers.sort_by(|a, b| a.server.cmp(&b.server));
    Ok(answers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_parse() {
        let ok = answer_of(
            br#"{"server":{"name":"n1","id":"NX"},"data":{"account":"A","code":200,"message":"jwt updated"}}"#,
        );
        assert_eq!(
            ok,
            ServerAnswer {
                server: "n1".into(),
                ok: true,
                message: "jwt updated".into()
            }
        );
        let err = answer_of(
            br#"{"server":{"name":"","id":"NX"},"error":{"account":"A","code":500,"description":"jwt validation failed - x"}}"#,
        );
        assert_eq!(err.server, "NX");
        assert!(!err.ok);
        assert!(err.message.contains("validation failed"));
        assert!(!answer_of(b"nope").ok);
    }

    #[test]
    fn server_urls_are_checked() {
        assert_eq!(
            parse_servers(&["nats://a:4222,nats://b:4222".into()])
                .expect("valid")
                .len(),
            2
        );
        assert!(parse_servers(&["http://[x".into()]).is_err());
    }
}

//! Reads the traffic figures the frontend keeps in Redis (see `nexus_wire::stats`) for
//! `hub status`: distinct verified clients and requests per second over the last five
//! minutes, and with `detail`, per zone, per token and rate-limit rejections.

use nexus_wire::methods::{HubStatus, StatusDetail, TokenSeen, ZoneTraffic};
use nexus_wire::stats;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Traffic figures kept in this process by a frontend that runs in it (the embedded hub
/// has no Redis to hold them): distinct clients, requests per second and, with `detail`,
/// per zone and per token, over the same window as the Redis counters.
pub trait LiveTraffic: Send + Sync + std::fmt::Debug {
    fn figures(&self, detail: bool) -> (u64, f64, Option<StatusDetail>);
}

/// Fills `connections`, `qps_5m` and `detail` from `live` (no Redis: `redis` stays
/// `n/a`); rate-limit rejections by tier come from this process's own counters.
pub fn fill_live(
    status: &mut HubStatus,
    live: &dyn LiveTraffic,
    detail: bool,
    names: &HashMap<String, String>,
    rate_limited: BTreeMap<String, u64>,
) {
    let (clients, qps, d) = live.figures(detail);
    status.connections = Some(clients);
    status.qps_5m = Some((qps * 10_000.0).round() / 10_000.0);
    status.detail = d.map(|mut d| {
        for t in &mut d.tokens {
            t.name = names.get(&t.key_id).cloned();
        }
        d.rate_limited = rate_limited;
        d
    });
}

/// Traffic figures, or `None` when Redis cannot be read.
pub(crate) async fn read(url: &str, detail: bool) -> Option<(u64, f64, Option<StatusDetail>)> {
    let work = async {
        let client = redis::Client::open(url)?;
        let mut c = client.get_multiplexed_async_connection().await?;
        let now = stats::minute(chrono::Utc::now().timestamp());
        let minutes: Vec<i64> = (now - stats::WINDOW_MINUTES + 1..=now).collect();
        let window_secs = (stats::WINDOW_MINUTES * 60) as f64;
        let clients: u64 = redis::cmd("PFCOUNT")
            .arg(
                minutes
                    .iter()
                    .map(|m| stats::clients_key(*m))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut c)
            .await?;
        let counts: Vec<Option<u64>> = redis::cmd("MGET")
            .arg(
                minutes
                    .iter()
                    .map(|m| stats::requests_key(*m))
                    .collect::<Vec<_>>(),
            )
            .query_async(&mut c)
            .await?;
        let qps = counts.into_iter().flatten().sum::<u64>() as f64 / window_secs;
        if !detail {
            return Ok::<_, redis::RedisError>((clients, qps, None));
        }
        let seen: HashMap<String, i64> = redis::cmd("HGETALL")
            .arg(stats::ZONES_SEEN_KEY)
            .query_async(&mut c)
            .await?;
        let mut zones = Vec::new();
        let mut names: Vec<&String> = seen
            .iter()
            .filter(|(_, m)| **m >= now - stats::WINDOW_MINUTES)
            .map(|(z, _)| z)
            .collect();
        names.sort();
        for z in names {
            let zc: u64 = redis::cmd("PFCOUNT")
                .arg(
                    minutes
                        .iter()
                        .map(|m| stats::zone_clients_key(z, *m))
                        .collect::<Vec<_>>(),
                )
                .query_async(&mut c)
                .await?;
            let zr: Vec<Option<u64>> = redis::cmd("MGET")
                .arg(
                    minutes
                        .iter()
                        .map(|m| stats::zone_requests_key(z, *m))
                        .collect::<Vec<_>>(),
                )
                .query_async(&mut c)
                .await?;
            zones.push(ZoneTraffic {
                zone: z.clone(),
                clients: zc,
                qps_5m: zr.into_iter().flatten().sum::<u64>() as f64 / window_secs,
            });
        }
        let last: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(stats::LAST_SEEN_KEY)
            .query_async(&mut c)
            .await?;
        // Only tokens seen within the window (RFC 3339 UTC strings order like times).
        let since = (chrono::Utc::now() - chrono::Duration::minutes(stats::WINDOW_MINUTES))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut tokens: Vec<TokenSeen> = last
            .into_iter()
            .filter(|(_, seen)| *seen >= since)
            .map(|(key_id, last_seen)| TokenSeen {
                key_id,
                name: None,
                last_seen,
            })
            .collect();
        tokens.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
        let rate_limited: BTreeMap<String, u64> = redis::cmd("HGETALL")
            .arg(stats::RATE_LIMITED_KEY)
            .query_async(&mut c)
            .await?;
        Ok((
            clients,
            qps,
            Some(StatusDetail {
                zones,
                tokens,
                rate_limited,
            }),
        ))
    };
    match tokio::time::timeout(Duration::from_secs(2), work).await {
        Ok(Ok(v)) => Some(v),
        _ => None,
    }
}

/// Fills the Redis-backed parts of a status: `redis`, `connections`, `qps_5m`, `detail`.
/// Token names come from `names` (key id → name).
pub async fn fill(
    status: &mut HubStatus,
    url: Option<&str>,
    detail: bool,
    names: &HashMap<String, String>,
) {
    let Some(url) = url else {
        status.redis = "n/a".into();
        return;
    };
    match read(url, detail).await {
        Some((clients, qps, d)) => {
            status.redis = "ok".into();
            status.connections = Some(clients);
            status.qps_5m = Some((qps * 10_000.0).round() / 10_000.0);
            status.detail = d.map(|mut d| {
                for t in &mut d.tokens {
                    t.name = names.get(&t.key_id).cloned();
                }
                d
            });
        }
        None => {
            status.redis = "err".into();
            status.connections = None;
            status.qps_5m = None;
        }
    }
}

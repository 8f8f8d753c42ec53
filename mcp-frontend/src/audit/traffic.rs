//! Traffic figures kept in this process: the same ones the Redis counters hold
//! (`nexus_wire::stats`: distinct verified clients and requests per minute, per zone, and
//! when each key id was last seen, over the last `WINDOW_MINUTES`), for a hub with no
//! Redis — the embedded `nexus hub up`, whose rpc-server asks for them when `hub status`
//! does. Updated by the audit writer once per batch, never on a request's path. Key ids
//! only, never tokens; bounded by the number of key ids seen in the window.

use super::AuditEvent;
use nexus_wire::methods::{StatusDetail, TokenSeen, ZoneTraffic};
use nexus_wire::stats;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Mutex;

/// At most this many distinct key ids a minute are remembered (a token flood cannot grow
/// memory without bound; past it, requests are still counted).
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Traffic {
    window: Mutex<Window>,
}

#[derive(Debug, Default)]
struct Window {
    /// Oldest first; at most `WINDOW_MINUTES` minutes, the current one last.
    minutes: VecDeque<Minute>,
    /// Key id → (minute, RFC 3339 time) it was last seen.
    last_seen: HashMap<String, (i64, String)>,
}

#[derive(Debug, Default)]
struct Minute {
    m: i64,
    requests: u64,
    clients: HashSet<String>,
    zones: HashMap<String, (u64, HashSet<String>)>,
}

fn remember(set: &mut HashSet<String>, key: &str) {
    if set.len() < MAX_KEYS && !set.contains(key) {
        set.insert(key.to_owned());
    }
}

impl Window {
    /// Drops minutes (and last-seen entries) older than the window ending at `m`.
    fn roll(&mut self, m: i64) {
        let oldest = m - stats::WINDOW_MINUTES + 1;
        while self.minutes.front().is_some_and(|x| x.m < oldest) {
            self.minutes.pop_front();
        }
        self.last_seen.retain(|_, (seen, _)| *seen >= oldest);
    }
}

impl Traffic {
    /// Counts a batch of finished requests at `now_secs` (verified callers only, as the
    /// Redis counters do).
    pub(crate) fn record<'a>(&self, events: impl Iterator<Item = &'a AuditEvent>, now_secs: i64) {
        let m = stats::minute(now_secs);
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        if w.minutes.back().is_none_or(|x| x.m != m) {
            w.roll(m);
            w.minutes.push_back(Minute {
                m,
                ..Default::default()
            });
        }
        let Window {
            minutes, last_seen, ..
        } = &mut *w;
        let Some(cur) = minutes.back_mut() else {
            return;
        };
        for ev in events {
            let Some(key) = ev.key_id.as_deref() else {
                continue;
            };
            cur.requests += 1;
            remember(&mut cur.clients, key);
            // Known keys and zones are updated in place: no allocation per event for them.
            let room = last_seen.len() < MAX_KEYS;
            match last_seen.get_mut(key) {
                Some(seen) => {
                    seen.0 = m;
                    seen.1.clone_from(&ev.ts);
                }
                None if room => {
                    last_seen.insert(key.to_owned(), (m, ev.ts.clone()));
                }
                None => {}
            }
            if let Some(zones) = &ev.zone_id {
                for z in zones.split(',').filter(|z| !z.is_empty() && *z != "*") {
                    let room = cur.zones.len() < MAX_KEYS;
                    match cur.zones.get_mut(z) {
                        Some(e) => {
                            e.0 += 1;
                            remember(&mut e.1, key);
                        }
                        None if room => {
                            let keys = HashSet::from([key.to_owned()]);
                            cur.zones.insert(z.to_owned(), (1, keys));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    /// Distinct clients and requests per second over the window ending at `now_secs`,
    /// and with `detail`, per zone and per token (rate-limit rejections are the
    /// rpc-server's to add).
    pub fn figures(&self, detail: bool, now_secs: i64) -> (u64, f64, Option<StatusDetail>) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.roll(stats::minute(now_secs));
        let window_secs = (stats::WINDOW_MINUTES * 60) as f64;
        let clients: HashSet<&str> = w
            .minutes
            .iter()
            .flat_map(|x| x.clients.iter().map(String::as_str))
            .collect();
        let requests: u64 = w.minutes.iter().map(|x| x.requests).sum();
        let qps = requests as f64 / window_secs;
        if !detail {
            return (clients.len() as u64, qps, None);
        }
        let mut zones: BTreeMap<&str, (u64, HashSet<&str>)> = BTreeMap::new();
        for x in &w.minutes {
            for (z, (n, keys)) in &x.zones {
                let e = zones.entry(z.as_str()).or_default();
                e.0 += n;
                e.1.extend(keys.iter().map(String::as_str));
            }
        }
        let zones = zones
            .into_iter()
            .map(|(z, (n, keys))| ZoneTraffic {
                zone: z.to_owned(),
                clients: keys.len() as u64,
                qps_5m: n as f64 / window_secs,
            })
            .collect();
        let mut tokens: Vec<TokenSeen> = w
            .last_seen
            .iter()
            .map(|(key_id, (_, ts))| TokenSeen {
                key_id: key_id.clone(),
                name: None,
                last_seen: ts.clone(),
            })
            .collect();
        tokens.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
        (
            clients.len() as u64,
            qps,
            Some(StatusDetail {
                zones,
                tokens,
                rate_limited: BTreeMap::new(),
            }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(key: Option<&str>, zone: Option<&str>, ts: &str) -> AuditEvent {
        AuditEvent {
            ts: ts.into(),
            event: "mcp.request",
            request_id: None,
            client_request_id: None,
            key_id: key.map(str::to_owned),
            subject_id: None,
            zone_id: zone.map(str::to_owned),
            rpc_method: "tools/call",
            tool_name: None,
            status_code: 200,
            outcome: "ok",
            latency_ms: 1.0,
            user_agent: None,
        }
    }

    #[test]
    fn counts_verified_clients_over_the_window() {
        let t = Traffic::default();
        // The start of a minute (1_800_000_000 is a multiple of 60).
        let t0: i64 = 1_800_000_000;
        let batch = [
            ev(Some("a"), Some("eng"), "2027-01-15T08:00:01.000Z"),
            ev(Some("a"), Some("eng,ops"), "2027-01-15T08:00:02.000Z"),
            ev(Some("b"), Some("*"), "2027-01-15T08:00:03.000Z"),
            ev(None, None, "2027-01-15T08:00:04.000Z"),
        ];
        t.record(batch.iter(), t0);
        t.record(
            [ev(Some("b"), Some("ops"), "2027-01-15T08:02:00.000Z")].iter(),
            t0 + 120,
        );
        let (clients, qps, detail) = t.figures(true, t0 + 130);
        assert_eq!(clients, 2);
        assert!((qps - 4.0 / 300.0).abs() < 1e-9, "{qps}");
        let d = detail.expect("detail");
        let zones: Vec<(&str, u64)> = d
            .zones
            .iter()
            .map(|z| (z.zone.as_str(), z.clients))
            .collect();
        assert_eq!(zones, [("eng", 1), ("ops", 2)]);
        assert_eq!(d.tokens[0].key_id, "b", "most recent first");
        // Five minutes on, the first minute has left the window.
        let (clients, qps, _) = t.figures(false, t0 + 5 * 60 + 1);
        assert_eq!(clients, 1);
        assert!((qps - 1.0 / 300.0).abs() < 1e-9, "{qps}");
        let (clients, qps, _) = t.figures(false, t0 + 20 * 60);
        assert_eq!((clients, qps), (0, 0.0));
    }
}

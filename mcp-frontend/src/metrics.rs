//! Frontend metrics. Label values come from closed sets: MCP methods and tool names we
//! know, HTTP status codes we emit; anything else is `other`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
    TextEncoder,
};
use std::sync::Arc;
use std::time::Duration;

const MCP_METHODS: &[&str] = &[
    "initialize",
    "ping",
    "tools/list",
    "tools/call",
    "server/discover",
    "notifications/initialized",
    "notifications/cancelled",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "resources/subscribe",
    "resources/unsubscribe",
    "prompts/list",
    "prompts/get",
    "logging/setLevel",
    "completion/complete",
];

/// A bounded label for a JSON-RPC method (or the HTTP verb for GET/DELETE on `/mcp`).
pub fn method_label(m: &str) -> &'static str {
    match m {
        "GET" => "GET",
        "DELETE" => "DELETE",
        "batch" => "batch",
        _ => MCP_METHODS
            .iter()
            .find(|k| **k == m)
            .copied()
            .unwrap_or("other"),
    }
}

pub fn status_label(code: u16) -> &'static str {
    match code {
        200 => "200",
        202 => "202",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        406 => "406",
        413 => "413",
        415 => "415",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        _ => "other",
    }
}

/// How stale an active-client entry's TTL may get before a request refreshes it.
const CLIENT_REFRESH: Duration = Duration::from_secs(5);

#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    registry: Registry,
    /// `rpc_method`, `tool_name`, `status`
    pub requests: IntCounterVec,
    /// `rpc_method`
    pub latency: HistogramVec,
    /// `rpc_method`, `tool_name`, `status` (HTTP status, or `tool_error`)
    pub errors: IntCounterVec,
    pub active_clients: IntGauge,
    /// Stateless requests answered by the direct path rather than the general transport.
    pub direct: IntCounter,
    /// `reason`: queue_full, stdout_backlog, redis_unavailable, publish_failed (lines the
    /// cluster bus could not take or send are in `nexus_bus_dropped_total`)
    pub audit_dropped: IntCounterVec,
    /// `trigger` (bus, timer), `outcome` (changed, unchanged, error): re-reads of the
    /// session secret file.
    pub secret_reloads: IntCounterVec,
    redis_up: std::sync::atomic::AtomicU8,
    /// Key id → when its entry was last (re)inserted.
    recent_clients: moka::sync::Cache<String, std::time::Instant>,
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "nexus_mcp_requests_total",
                "MCP requests by method, tool and HTTP status",
            ),
            &["rpc_method", "tool_name", "status"],
        )
        .expect("valid metric");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "nexus_mcp_request_latency_seconds",
                "MCP request latency by method",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                1.0, 2.5, 5.0,
            ]),
            &["rpc_method"],
        )
        .expect("valid metric");
        let errors = IntCounterVec::new(
            Opts::new(
                "nexus_mcp_errors_total",
                "Failed MCP requests and tool calls",
            ),
            &["rpc_method", "tool_name", "status"],
        )
        .expect("valid metric");
        let active_clients = IntGauge::new(
            "nexus_mcp_active_clients",
            "Distinct verified tokens seen in the last 5 minutes",
        )
        .expect("valid metric");
        let direct = IntCounter::new(
            "nexus_mcp_direct_requests_total",
            "Stateless MCP requests answered by the direct path",
        )
        .expect("valid metric");
        let audit_dropped = IntCounterVec::new(
            Opts::new(
                "nexus_audit_dropped_total",
                "Audit events not delivered, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let secret_reloads = IntCounterVec::new(
            Opts::new(
                "nexus_mcp_session_secret_reloads_total",
                "Re-reads of the session secret file, by trigger and outcome",
            ),
            &["trigger", "outcome"],
        )
        .expect("valid metric");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(secret_reloads.clone()),
            Box::new(latency.clone()),
            Box::new(errors.clone()),
            Box::new(active_clients.clone()),
            Box::new(direct.clone()),
            Box::new(audit_dropped.clone()),
        ] {
            registry.register(c).expect("unique metric");
        }
        Self(Arc::new(Inner {
            registry,
            requests,
            latency,
            errors,
            active_clients,
            direct,
            audit_dropped,
            secret_reloads,
            redis_up: std::sync::atomic::AtomicU8::new(0),
            recent_clients: moka::sync::Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(Duration::from_secs(300))
                .build(),
        }))
    }

    /// The registry `/metrics` renders; the bus registers its `nexus_bus_*` metrics here.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn set_redis_up(&self, up: bool) {
        self.redis_up
            .store(if up { 2 } else { 1 }, std::sync::atomic::Ordering::Relaxed);
    }

    /// `ok`, `err`, or `n/a` before any Redis use (or without Redis).
    pub fn redis_status(&self) -> &'static str {
        match self.redis_up.load(std::sync::atomic::Ordering::Relaxed) {
            2 => "ok",
            1 => "err",
            _ => "n/a",
        }
    }

    /// Notes a verified caller by key id (never by token).
    pub fn saw_client(&self, key_id: &str) {
        if key_id.is_empty() {
            return;
        }
        // A lookup is much cheaper than an insert; refreshing the TTL at most every
        // CLIENT_REFRESH keeps the count exact to within that.
        let fresh = self
            .recent_clients
            .get(key_id)
            .is_some_and(|at| at.elapsed() < CLIENT_REFRESH);
        if !fresh {
            self.recent_clients
                .insert(key_id.to_owned(), std::time::Instant::now());
        }
    }

    pub fn render(&self) -> String {
        self.recent_clients.run_pending_tasks();
        self.active_clients
            .set(self.recent_clients.entry_count() as i64);
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

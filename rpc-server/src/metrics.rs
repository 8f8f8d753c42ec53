//! The rpc-server's Prometheus metrics. Every label value comes from a closed set
//! (method names via [`nexus_wire::methods::method_label`], fixed outcome words), never
//! from raw request text.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};
use std::sync::Arc;

#[derive(Clone, Debug)]
pub struct Metrics(Arc<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub registry: Registry,
    /// `method`, `outcome` (ok, rpc_error, unauthorized, unavailable, too_large, bad_request).
    pub rpc_requests: IntCounterVec,
    /// `method`
    pub rpc_latency: HistogramVec,
    /// `route` (matched route template), `status` (HTTP status class)
    pub http_requests: IntCounterVec,
    /// `result`: hit, miss, negative_hit
    pub auth_cache: IntCounterVec,
    pub auth_cache_entries: IntGauge,
    /// `result`: ok, malformed, unknown, revoked, expired, zone_inactive, unavailable, missing
    pub auth_results: IntCounterVec,
    /// `op`
    pub db_errors: IntCounterVec,
    /// `op`
    pub db_query_seconds: HistogramVec,
    /// `event`: published, publish_failed, dropped, received
    pub invalidations: IntCounterVec,
    /// Time from a change in one process to its invalidation in this one.
    pub invalidation_lag: prometheus::Histogram,
    /// `tier`: token, admin, custom, auth_failures
    pub rate_limited: IntCounterVec,
    /// Rate-limit checks that fell back to local limits because Redis failed.
    pub rate_limit_fallbacks: prometheus::IntCounter,
    /// `outcome`: ok, budget, deadline, cancelled, busy
    pub greps: IntCounterVec,
    /// Greps whose work is running now (a dropped request's until it stops).
    pub greps_running: IntGauge,
    /// Bytes of files greps have read.
    pub grep_scanned_bytes: prometheus::IntCounter,
    /// Semantic or hybrid searches answered by keyword instead, by `reason`: `unconfigured`,
    /// `timeout`, `connect`, `status`, `malformed`, `store`.
    pub search_degraded: IntCounterVec,
    /// ReBAC decisions on file paths: `op` (read, write), `outcome` (allowed, denied).
    pub rebac_checks: IntCounterVec,
    /// Compiled grants asked for: `result` (hit, compiled, error).
    pub rebac_compiles: IntCounterVec,
    /// File reads by `source`: `database` (inline blobs) or `store` (the blob store, through
    /// the content cache).
    pub file_reads: IntCounterVec,
    /// OIDC key-set fetches by `outcome`: ok, unreachable, too_large, invalid,
    /// issuer_mismatch (the issuer is not a label: the set of issuers is the operator's).
    pub oidc_jwks_fetches: IntCounterVec,
    /// OIDC tokens refused, by `reason` (`nexus_providers::oidc::Rejection::label`, and
    /// `disabled` for a disabled subject).
    pub oidc_refusals: IntCounterVec,
    cache_probe: std::sync::Mutex<Option<SizeProbe>>,
}

/// How many entries a cache holds, asked at scrape time.
#[derive(Clone)]
struct SizeProbe(Arc<dyn Fn() -> u64 + Send + Sync>);

impl std::fmt::Debug for SizeProbe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SizeProbe")
    }
}

impl std::ops::Deref for Metrics {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

fn counter(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
    reg.register(Box::new(c.clone())).expect("unique metric");
    c
}

fn histogram(reg: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(
        HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
        labels,
    )
    .expect("valid metric");
    reg.register(Box::new(h.clone())).expect("unique metric");
    h
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let auth_cache_entries = IntGauge::new(
            "nexus_auth_cache_entries",
            "Identities held in the auth cache",
        )
        .expect("valid");
        registry
            .register(Box::new(auth_cache_entries.clone()))
            .expect("unique metric");
        Self(Arc::new(Inner {
            rpc_requests: counter(
                &registry,
                "nexus_rpc_requests_total",
                "RPC requests by method and outcome",
                &["method", "outcome"],
            ),
            rpc_latency: histogram(
                &registry,
                "nexus_rpc_request_duration_seconds",
                "RPC request latency by method",
                &["method"],
            ),
            http_requests: counter(
                &registry,
                "nexus_http_requests_total",
                "HTTP requests by matched route and status class",
                &["route", "status"],
            ),
            auth_cache: counter(
                &registry,
                "nexus_auth_cache_requests_total",
                "Identity cache lookups by result",
                &["result"],
            ),
            auth_cache_entries,
            auth_results: counter(
                &registry,
                "nexus_auth_results_total",
                "Token verifications by result",
                &["result"],
            ),
            db_errors: counter(
                &registry,
                "nexus_db_errors_total",
                "Database errors by operation",
                &["op"],
            ),
            db_query_seconds: histogram(
                &registry,
                "nexus_db_query_duration_seconds",
                "Database query latency by operation",
                &["op"],
            ),
            invalidations: counter(
                &registry,
                "nexus_invalidations_total",
                "Cache invalidation broadcasts by event",
                &["event"],
            ),
            invalidation_lag: {
                let h = prometheus::Histogram::with_opts(
                    HistogramOpts::new("nexus_invalidation_lag_seconds", "Time from a token or zone change in another process to its invalidation here")
                        .buckets(LATENCY_BUCKETS.to_vec()),
                )
                .expect("valid metric");
                registry
                    .register(Box::new(h.clone()))
                    .expect("unique metric");
                h
            },
            rate_limited: counter(
                &registry,
                "nexus_rate_limited_total",
                "Requests refused by rate limits, by tier",
                &["tier"],
            ),
            rate_limit_fallbacks: {
                let c = prometheus::IntCounter::new(
                    "nexus_rate_limit_fallbacks_total",
                    "Rate-limit checks done locally because Redis failed",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("unique metric");
                c
            },
            greps: counter(
                &registry,
                "nexus_grep_searches_total",
                "Greps by outcome (ok; budget, deadline: stopped by their limits; cancelled: the request ended first; busy: refused by a concurrency cap; error: a failed read or a pattern too broad for the tree)",
                &["outcome"],
            ),
            greps_running: {
                let g = IntGauge::new("nexus_grep_running", "Greps whose work is running now")
                    .expect("valid metric");
                registry
                    .register(Box::new(g.clone()))
                    .expect("unique metric");
                g
            },
            grep_scanned_bytes: {
                let c = prometheus::IntCounter::new(
                    "nexus_grep_scanned_bytes_total",
                    "Bytes of files read by greps",
                )
                .expect("valid metric");
                registry
                    .register(Box::new(c.clone()))
                    .expect("unique metric");
                c
            },
            search_degraded: counter(
                &registry,
                "nexus_search_semantic_degraded_total",
                "Semantic or hybrid searches answered by keyword ranking, by reason (unconfigured: no embeddings endpoint; timeout, connect, status, malformed: the endpoint failed; store: the vector cache failed)",
                &["reason"],
            ),
            rebac_checks: counter(
                &registry,
                "nexus_rebac_checks_total",
                "File access decisions that consulted zone modes or ReBAC grants, by operation and outcome",
                &["op", "outcome"],
            ),
            rebac_compiles: counter(
                &registry,
                "nexus_rebac_grant_compiles_total",
                "Compiled ReBAC grant lookups: hit (cached), compiled (rebuilt from the database), error",
                &["result"],
            ),
            oidc_jwks_fetches: counter(
                &registry,
                "nexus_oidc_jwks_fetches_total",
                "OIDC issuer key-set fetches by outcome",
                &["outcome"],
            ),
            oidc_refusals: counter(
                &registry,
                "nexus_oidc_refusals_total",
                "OIDC access tokens refused, by reason",
                &["reason"],
            ),
            file_reads: counter(
                &registry,
                "nexus_file_reads_total",
                "File reads by where the bytes live: database (small files, inline) or store (the blob store, through the content cache)",
                &["source"],
            ),
            registry,
            cache_probe: std::sync::Mutex::new(None),
        }))
    }

    /// Renders the Prometheus text exposition format.
    pub fn render(&self) -> String {
        self.refresh_gauges();
        let mut buf = Vec::new();
        let enc = TextEncoder::new();
        if enc.encode(&self.registry.gather(), &mut buf).is_err() {
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

impl Metrics {
    /// Keeps `nexus_auth_cache_entries` current at scrape time: `size` is asked for the
    /// identity cache's entry count on each scrape.
    pub fn register_cache_size(&self, size: impl Fn() -> u64 + Send + Sync + 'static) {
        *self.0.cache_probe.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(SizeProbe(Arc::new(size)));
    }

    pub fn refresh_gauges(&self) {
        let probe = self
            .0
            .cache_probe
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(size) = probe {
            self.auth_cache_entries
                .set(i64::try_from((size.0)()).unwrap_or(i64::MAX));
        }
    }
}

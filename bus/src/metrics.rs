//! The `nexus_bus_*` metrics. Labels come from the enums below, so a call site cannot invent a
//! label value a dashboard does not know about.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// How a publish of an invalidation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The bus confirmed it (Redis answered the XADD, JetStream acknowledged it).
    Ok,
    /// Given up on after retrying for the publish patience.
    Failed,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
        }
    }
}

/// Why a message was not delivered or not sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Received, but not a valid message ([`nexus_wire::bus::parse`] refused it).
    Malformed,
    /// Received, but larger than [`nexus_wire::bus::MAX_MESSAGE_BYTES`]; or an audit line
    /// too large to send.
    TooLarge,
    /// Not sent: the outgoing queue was full.
    QueueFull,
    /// Not sent: the bus was unreachable for longer than we wait.
    Unavailable,
    /// Not sent: an audit id that cannot be a `Nats-Msg-Id`.
    BadId,
}

impl DropReason {
    fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::QueueFull => "queue_full",
            Self::Unavailable => "unavailable",
            Self::BadId => "bad_id",
        }
    }
}

/// What JetStream said about one audit line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuditOutcome {
    Stored,
    /// Its id was seen within the duplicate window: not stored again.
    Duplicate,
}

impl AuditOutcome {
    fn label(self) -> &'static str {
        match self {
            Self::Stored => "stored",
            Self::Duplicate => "duplicate",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Metrics {
    connected: IntGauge,
    reconnects: IntCounter,
    replayed: IntCounter,
    gaps: IntCounterVec,
    lag: Histogram,
    published: IntCounterVec,
    dropped: IntCounterVec,
    audit: IntCounterVec,
    denied: IntCounter,
}

impl Metrics {
    /// The metrics, registered in `registry` when given (unregistered ones still count, so
    /// the code paths are the same either way).
    pub(crate) fn new(registry: Option<&Registry>) -> prometheus::Result<Self> {
        let m = Self {
            connected: IntGauge::new(
                "nexus_bus_connected",
                "1 while this node is connected to the bus",
            )?,
            reconnects: IntCounter::new(
                "nexus_bus_reconnects_total",
                "Times this node reconnected to the bus after losing it",
            )?,
            replayed: IntCounter::new(
                "nexus_bus_replayed_total",
                "Invalidations delivered by a replay after a reconnect (missed while away)",
            )?,
            gaps: IntCounterVec::new(
                Opts::new(
                    "nexus_bus_gaps_total",
                    "Times the subscriber could not replay what it missed and told its consumer to drop every cache",
                ),
                &["reason"],
            )?,
            lag: Histogram::with_opts(
                HistogramOpts::new(
                    "nexus_bus_lag_seconds",
                    "Time from an invalidation being made to its delivery here",
                )
                .buckets(vec![
                    0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 120.0, 600.0,
                ]),
            )?,
            published: IntCounterVec::new(
                Opts::new(
                    "nexus_bus_published_total",
                    "Invalidations this node published, by outcome",
                ),
                &["outcome"],
            )?,
            dropped: IntCounterVec::new(
                Opts::new(
                    "nexus_bus_dropped_total",
                    "Messages dropped (received and refused, or never sent), by reason",
                ),
                &["reason"],
            )?,
            audit: IntCounterVec::new(
                Opts::new(
                    "nexus_bus_audit_total",
                    "Audit lines the audit stream acknowledged, by outcome",
                ),
                &["outcome"],
            )?,
            denied: IntCounter::new(
                "nexus_bus_permission_denied_total",
                "Requests the NATS server refused for lack of a subject permission (a credential minted without something this node needs)",
            )?,
        };
        if let Some(r) = registry {
            r.register(Box::new(m.connected.clone()))?;
            r.register(Box::new(m.reconnects.clone()))?;
            r.register(Box::new(m.replayed.clone()))?;
            r.register(Box::new(m.gaps.clone()))?;
            r.register(Box::new(m.lag.clone()))?;
            r.register(Box::new(m.published.clone()))?;
            r.register(Box::new(m.dropped.clone()))?;
            r.register(Box::new(m.audit.clone()))?;
            r.register(Box::new(m.denied.clone()))?;
        }
        Ok(m)
    }

    pub(crate) fn set_connected(&self, up: bool) {
        self.connected.set(i64::from(up));
    }

    pub(crate) fn reconnected(&self) {
        self.reconnects.inc();
    }

    pub(crate) fn replayed(&self) {
        self.replayed.inc();
    }

    pub(crate) fn gap(&self, reason: crate::Gap) {
        self.gaps.with_label_values(&[reason.label()]).inc();
    }

    /// One delivery of a message made at `at_ms`; a clock behind the publisher's counts 0.
    pub(crate) fn lag(&self, at_ms: i64) {
        let ms = (crate::now_ms() - at_ms).max(0);
        self.lag.observe(ms as f64 / 1000.0);
    }

    pub(crate) fn published(&self, outcome: Outcome) {
        self.published.with_label_values(&[outcome.label()]).inc();
    }

    pub(crate) fn dropped(&self, reason: DropReason) {
        self.dropped.with_label_values(&[reason.label()]).inc();
    }

    pub(crate) fn permission_denied(&self) {
        self.denied.inc();
    }

    pub(crate) fn audit(&self, outcome: AuditOutcome) {
        self.audit.with_label_values(&[outcome.label()]).inc();
    }
}

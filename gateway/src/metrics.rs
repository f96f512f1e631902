//! Prometheus metrics, served on the admin listener at `/metrics`. Labels never carry repository or user
//! names (unbounded and sensitive): only routes, actions, decisions, status codes and error kinds.

use std::sync::LazyLock;

use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

use crate::reload::Snapshot;

/// The gateway's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests by route, action, decision and status.
    pub requests: IntCounterVec,
    /// Request latency by route and decision.
    pub duration: HistogramVec,
    /// Failed calls to the upstream, by kind.
    pub upstream_errors: IntCounterVec,
    /// Policy reloads by result.
    pub reloads: IntCounterVec,
    /// Authentication failures by method.
    pub authn_failures: IntCounterVec,
    /// Rules in the current policy.
    pub policy_rules: IntGauge,
    /// When the current policy was loaded (Unix seconds).
    pub policy_loaded: Gauge,
    /// The current policy's revision (value 1).
    pub policy_revision: IntGaugeVec,
    /// Decision log lines dropped because the writer fell behind.
    pub decision_log_dropped: IntCounter,
    /// Requests in progress.
    pub in_flight: IntGauge,
}

/// The process-wide metrics.
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let requests = counter(
            "ocigate_requests_total",
            "Requests by route, action, decision (allow, deny, would_deny, invalid, unauthenticated, error) and status",
            &["route", "action", "decision", "status"],
        );
        let upstream_errors = counter(
            "ocigate_upstream_errors_total",
            "Failed calls to the upstream registry, by kind",
            &["kind"],
        );
        let reloads = counter(
            "ocigate_policy_reloads_total",
            "Policy reloads by result (success, failure)",
            &["result"],
        );
        let authn_failures = counter(
            "ocigate_authn_failures_total",
            "Refused credentials by method (basic, bearer, none, other)",
            &["method"],
        );
        let duration = HistogramVec::new(
            HistogramOpts::new("ocigate_request_duration_seconds", "Request latency by route and decision")
                .buckets(vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                    2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
            &["route", "decision"],
        )
        .expect("valid metric");
        registry.register(Box::new(duration.clone())).expect("unique metric");
        let policy_rules =
            IntGauge::new("ocigate_policy_rules", "Rules in the current policy").expect("valid metric");
        registry.register(Box::new(policy_rules.clone())).expect("unique metric");
        let policy_loaded = Gauge::new(
            "ocigate_policy_loaded_timestamp_seconds",
            "When the current policy was loaded (Unix time)",
        )
        .expect("valid metric");
        registry.register(Box::new(policy_loaded.clone())).expect("unique metric");
        let policy_revision = IntGaugeVec::new(
            Opts::new("ocigate_policy_revision_info", "The current policy's revision (always 1)"),
            &["revision"],
        )
        .expect("valid metric");
        registry.register(Box::new(policy_revision.clone())).expect("unique metric");
        let decision_log_dropped = IntCounter::new(
            "ocigate_decision_log_dropped_total",
            "Decision log lines dropped because the log writer fell behind",
        )
        .expect("valid metric");
        registry.register(Box::new(decision_log_dropped.clone())).expect("unique metric");
        let in_flight =
            IntGauge::new("ocigate_requests_in_flight", "Requests in progress").expect("valid metric");
        registry.register(Box::new(in_flight.clone())).expect("unique metric");
        for r in ["success", "failure"] {
            reloads.with_label_values(&[r]);
        }
        Metrics {
            registry,
            requests,
            duration,
            upstream_errors,
            reloads,
            authn_failures,
            policy_rules,
            policy_loaded,
            policy_revision,
            decision_log_dropped,
            in_flight,
        }
    }

    /// Records a newly loaded policy.
    pub fn policy_loaded(&self, s: &Snapshot) {
        self.policy_rules.set(i64::try_from(s.policy.rule_count()).unwrap_or(i64::MAX));
        let at = s.loaded_at.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        self.policy_loaded.set(at);
        self.policy_revision.reset();
        self.policy_revision.with_label_values(&[&s.revision]).set(1);
    }

    /// The text exposition format.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Err(e) = prometheus::TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

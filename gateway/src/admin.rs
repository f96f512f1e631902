//! The admin listener: `/metrics` (Prometheus text), `/healthz` (the process answers) and `/readyz` (a
//! policy is loaded and the upstream is reachable; shows the policy revision).

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use serde_json::json;

use crate::config::PolicyMode;
use crate::metrics::METRICS;
use crate::reload::PolicyStore;
use crate::upstream::Upstream;

/// The admin application.
pub struct Admin {
    /// The policy.
    pub policy: Arc<PolicyStore>,
    /// The upstream.
    pub upstream: Arc<Upstream>,
    /// Enforce or dry-run.
    pub mode: PolicyMode,
}

fn respond(status: u16, content_type: &str, body: Vec<u8>) -> Response<Vec<u8>> {
    let mut r = Response::new(body);
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    if let Ok(v) = http::HeaderValue::from_str(&r.body().len().to_string()) {
        r.headers_mut().insert(http::header::CONTENT_LENGTH, v);
    }
    r
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        match path {
            "/metrics" => respond(200, "text/plain; version=0.0.4", METRICS.render()),
            "/healthz" => respond(200, "text/plain", b"ok\n".to_vec()),
            "/readyz" => {
                let snapshot = self.policy.current();
                let upstream = self.upstream.ready();
                let body = json!({
                    "ready": upstream.is_ok(),
                    "policy": {
                        "revision": snapshot.revision,
                        "rules": snapshot.policy.rule_count(),
                        "loaded_at": humantime::format_rfc3339_seconds(snapshot.loaded_at).to_string(),
                        "mode": self.mode.as_str(),
                    },
                    "upstream": match &upstream { Ok(()) => json!({"ok": true}), Err(e) => json!({"ok": false, "error": e}) },
                });
                let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
                text.push(b'\n');
                respond(if upstream.is_ok() { 200 } else { 503 }, "application/json", text)
            }
            _ => respond(404, "text/plain", b"not found: try /metrics, /healthz or /readyz\n".to_vec()),
        }
    }
}

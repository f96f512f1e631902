//! The request path: classify -> authenticate -> authorize -> forward, as Pingora filters.
//!
//! ```text
//! request_filter           classify, authenticate, authorize; answer the ping, lists and refusals here
//! upstream_peer            the bundled registry's socket or the remote upstream
//! upstream_request_filter  canonical path, client credentials out, the gateway's own credentials in
//! upstream_response_filter upstream challenges out, Locations made relative, upstream 401 -> 502
//! logging                  one decision line and the metrics
//! ```

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use pingora::{Error, ErrorType};
use policy::cel::Cidr;
use policy::{Action, Principal};
use serde_json::json;

use oci::paging::Paging;

use crate::authn::basic::BasicError;
use crate::authn::{Authenticator, Failure, Identity, Need, Origin, access_allows};
use crate::classify::{Classified, Endpoint, classify, strip_mount};
use crate::config::PolicyMode;
use crate::decisions::{DecisionLog, Entry, now_rfc3339};
use crate::metrics::METRICS;
use crate::reload::{PolicyStore, Snapshot};
use crate::reply::Reply;
use crate::tls::PeerCert;
use crate::token::{MAX_FORM, TokenRequest, TokenService};
use crate::upstream::{Scope, Upstream, UpstreamError};

/// `/v2/_catalog` page size when the client gives no `n`.
const CATALOG_PAGE: usize = 1000;
/// Largest manifest read when checking whether a push onto an existing tag changes it.
const MAX_MANIFEST: usize = 4 << 20;
/// A refused request's body is read and discarded (so the client sees the answer) up to this size.
const DRAIN_LIMIT: u64 = 16 << 20;

/// What every request shares.
pub struct Shared {
    /// The policy.
    pub policy: Arc<PolicyStore>,
    /// Authentication.
    pub authn: Arc<Authenticator>,
    /// Where allowed requests go.
    pub upstream: Arc<Upstream>,
    /// Enforce or dry-run.
    pub mode: PolicyMode,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<Cidr>,
    /// Decision lines.
    pub log: DecisionLog,
    /// Requests in progress (for the drain on shutdown).
    pub in_flight: Arc<AtomicUsize>,
    /// The built-in token service.
    pub tokens: Option<Arc<TokenService>>,
}

/// The Pingora application.
pub struct Gateway {
    /// Shared state.
    pub shared: Arc<Shared>,
    ids: AtomicU64,
    id_seed: u64,
}

impl Gateway {
    /// A gateway over shared state.
    pub fn new(shared: Arc<Shared>) -> Gateway {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(std::process::id().into());
        Gateway { shared, ids: AtomicU64::new(0), id_seed: h.finish() }
    }
}

/// Counts a request in flight for as long as it lives.
pub struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
        METRICS.in_flight.dec();
    }
}

/// Per-request state.
pub struct Ctx {
    start: Instant,
    id: String,
    _in_flight: InFlight,
    snapshot: Option<Arc<Snapshot>>,
    class: Option<Classified>,
    principal: Option<Arc<Principal>>,
    client_ip: Option<IpAddr>,
    decision: &'static str,
    route: Option<&'static str>,
    action: Option<Action>,
    rule: Option<Arc<str>>,
    reason: Cow<'static, str>,
    scope: Scope,
    query: Option<String>,
    upstream_error: Option<UpstreamError>,
    replace_body: Option<Bytes>,
    status: u16,
    bytes: u64,
}

/// The outcome of asking the policy (and the token's `access` claim) about one action.
struct Verdict {
    allowed: bool,
    rule: Option<Arc<str>>,
    reason: Cow<'static, str>,
    message: Option<Arc<str>>,
    /// Denied only because the caller's token grants too little.
    insufficient: bool,
}

/// The facts about a request the policy sees besides its action, repository and reference.
struct Facts<'a> {
    mount_from: Option<&'a str>,
    method: &'a str,
    path: &'a str,
    time: SystemTime,
    client: policy::Client<'a>,
}

impl Gateway {
    fn verdict(
        &self,
        snapshot: &Snapshot,
        identity: &Identity,
        facts: &Facts<'_>,
        action: Action,
        repository: &str,
        reference: Option<&str>,
    ) -> Verdict {
        let request = policy::Request {
            action,
            repository,
            reference,
            method: facts.method,
            path: facts.path,
            mount_from: facts.mount_from,
            time: facts.time,
            client: facts.client,
        };
        let d = snapshot.policy.decide(&identity.principal, &request);
        if let Some(e) = &d.error {
            tracing::warn!(rule = d.rule.as_deref().unwrap_or(""), error = %e, "policy condition failed; denying");
        }
        // The policy decides first: a request it denies is refused as such (403), whatever the token says.
        // One it allows but the token's `access` claim does not cover needs a wider token (401).
        if d.allowed
            && let Some(access) = &identity.access
            && !access_allows(access, repository, action)
        {
            return Verdict {
                allowed: false,
                rule: d.rule,
                reason: Cow::Borrowed("token_scope"),
                message: Some(Arc::from(format!(
                    "the token does not grant {} on {}",
                    action.as_str(),
                    if action == Action::Catalog { "the catalog" } else { repository }
                ))),
                insufficient: true,
            };
        }
        Verdict {
            allowed: d.allowed,
            rule: d.rule,
            reason: Cow::Borrowed(d.reason.as_str()),
            message: d.message,
            insufficient: false,
        }
    }

    /// Records a verdict; on a denial (in enforce mode) answers 401/403 and returns `true`.
    async fn enforce(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        v: Verdict,
        action: Action,
        class: &Classified,
    ) -> pingora::Result<bool> {
        let repository = class.repository.as_str();
        ctx.action = Some(action);
        ctx.rule = v.rule;
        ctx.reason = v.reason;
        if v.allowed {
            ctx.decision = "allow";
            return Ok(false);
        }
        if self.shared.mode == PolicyMode::DryRun {
            ctx.decision = "would_deny";
            return Ok(false);
        }
        ctx.decision = "deny";
        let detail = json!({ "action": action.as_str(), "repository": repository, "reason": ctx.reason });
        let anonymous = ctx.principal.as_ref().is_none_or(|p| p.is_anonymous());
        let wider_token = v.insufficient && self.shared.authn.token_realm().is_some();
        let reply = if anonymous || wider_token {
            let scope = need_scope(action, class);
            let need = Need { scope: Some(&scope), insufficient: v.insufficient };
            let challenges =
                self.shared.authn.challenges(None, need, origin(session, &self.shared.trusted_proxies));
            let why = if v.insufficient {
                "the token does not grant this access"
            } else {
                "authentication required"
            };
            Reply::unauthorized(challenges, why)
        } else {
            Reply::denied(v.message.as_deref(), detail)
        };
        self.send(session, ctx, reply).await
    }

    /// Writes a reply of the gateway's own, after reading a small request body so the client sees it.
    async fn send(&self, session: &mut Session, ctx: &mut Ctx, reply: Reply) -> pingora::Result<bool> {
        ctx.status = reply.status;
        drain(session).await;
        ctx.bytes = reply.send(session, &ctx.id).await? as u64;
        Ok(true)
    }

    fn facts<'a>(&self, session: &'a Session, mount_from: Option<&'a str>) -> Facts<'a> {
        let req = session.req_header();
        let (_, client) = self.client_facts(session);
        Facts {
            mount_from,
            method: req.method.as_str(),
            path: req.uri.path(),
            time: SystemTime::now(),
            client,
        }
    }

    fn client_facts<'a>(&self, session: &'a Session) -> (Option<IpAddr>, policy::Client<'a>) {
        let peer_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let forwarded_for = session.get_header("x-forwarded-for").and_then(|v| v.to_str().ok());
        let ip = client_ip(peer_ip, forwarded_for, &self.shared.trusted_proxies);
        let tls = session.digest().and_then(|d| d.ssl_digest.as_deref()).map(|ssl| policy::Tls {
            version: &ssl.version,
            cert: ssl.extension.get::<PeerCert>().map(|c| policy::Cert {
                subject: &c.subject,
                sans: &c.sans,
                fingerprint: &c.fingerprint,
            }),
        });
        (ip, policy::Client { ip, peer_ip, forwarded_for, tls })
    }
}

impl Gateway {
    /// The token endpoint: reads a small form body, lets the token service answer, logs the outcome.
    async fn token_endpoint(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        tokens: &TokenService,
    ) -> pingora::Result<bool> {
        ctx.route = Some("token");
        let method = session.req_header().method.clone();
        if session.req_header().uri.path() != tokens.path() {
            // `<path>/jwks`: the public keys.
            ctx.reason = Cow::Borrowed("jwks");
            let reply = if method == http::Method::GET || method == http::Method::HEAD {
                ctx.decision = "allow";
                tokens.jwks()
            } else {
                ctx.decision = "invalid";
                Reply::method_not_allowed(method.as_str(), "jwks").header("allow", "GET, HEAD")
            };
            return self.send(session, ctx, reply).await;
        }
        let mut body = Vec::new();
        if method == http::Method::POST {
            let declared = session
                .get_header("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<usize>().ok());
            let read = async {
                if declared.is_some_and(|n| n > MAX_FORM) {
                    return Err(true);
                }
                while let Some(b) = session.read_request_body().await.map_err(|_| false)? {
                    if body.len() + b.len() > MAX_FORM {
                        return Err(true);
                    }
                    body.extend_from_slice(&b);
                }
                Ok(())
            };
            // One deadline for the whole form, however slowly it trickles in.
            let outcome = tokio::time::timeout(Duration::from_secs(10), read).await;
            if !matches!(outcome, Ok(Ok(()))) {
                let too_large = matches!(outcome, Ok(Err(true)));
                ctx.decision = "invalid";
                ctx.reason = Cow::Borrowed(if too_large { "form too large" } else { "body not read" });
                session.as_downstream_mut().set_keepalive(None);
                let reply = if too_large {
                    Reply::error(413, "SIZE_INVALID", "the form is too large", None)
                } else {
                    Reply::error(400, "UNSUPPORTED", "the request body could not be read in time", None)
                };
                return self.send(session, ctx, reply).await;
            }
        }
        ctx.client_ip = self.client_facts(session).0;
        let req = session.req_header();
        let cert = session
            .digest()
            .and_then(|d| d.ssl_digest.as_deref())
            .and_then(|s| s.extension.get::<PeerCert>());
        let request = TokenRequest {
            method: req.method.as_str(),
            query: req.uri.query().unwrap_or(""),
            body: &body,
            authorization: session.get_header("authorization").map(|v| v.as_bytes()),
            cert,
        };
        let outcome = tokens.handle(request).await;
        if outcome.decision == "unauthenticated" {
            METRICS.authn_failures.with_label_values(&["token"]).inc();
        }
        ctx.principal = outcome.principal;
        ctx.decision = outcome.decision;
        ctx.reason = Cow::Owned(outcome.reason);
        self.send(session, ctx, outcome.reply).await
    }

    /// `/v2/_catalog`: the upstream's repositories the caller may pull, paged after filtering.
    async fn catalog(
        &self,
        session: &Session,
        identity: &Identity,
        snapshot: &Snapshot,
    ) -> Result<Reply, UpstreamError> {
        let q = session.req_header().uri.query().unwrap_or("");
        let paging = match Paging::from_query(q, Some(CATALOG_PAGE)) {
            Ok(p) => p,
            Err(e) => return Ok(pagination_error(e)),
        };
        let all = self.shared.upstream.repositories().await?;
        let mut repositories: Vec<String> = all.as_ref().clone();
        if self.shared.mode == PolicyMode::Enforce {
            let (_, client) = self.client_facts(session);
            let req = session.req_header();
            let mut base = policy::Request::new(Action::Pull, "");
            base.method = req.method.as_str();
            base.path = req.uri.path();
            base.client = client;
            snapshot.policy.filter_repositories(&identity.principal, &base, &mut repositories);
            if let Some(access) = &identity.access {
                repositories.retain(|r| access_allows(access, r, Action::Pull));
            }
        }
        let (page, next) = paging.apply(&repositories);
        let body = serde_json::to_vec(&json!({ "repositories": page })).unwrap_or_default();
        let mut reply = Reply::json(200, body);
        if let Some(last) = next {
            reply =
                reply.header("link", format!("</v2/_catalog?n={}&last={last}>; rel=\"next\"", page.len()));
        }
        Ok(reply)
    }

    /// `tags/list` when tag rules apply: the tags the caller may pull, paged after filtering.
    async fn tags(
        &self,
        session: &Session,
        identity: &Identity,
        snapshot: &Snapshot,
        class: &Classified,
    ) -> Result<Reply, UpstreamError> {
        let q = session.req_header().uri.query().unwrap_or("");
        let paging = match Paging::from_query(q, None) {
            Ok(p) => p,
            Err(e) => return Ok(pagination_error(e)),
        };
        let repository = class.repository.as_str();
        let Some(mut tags) = self.shared.upstream.tags(repository).await? else {
            return Ok(Reply::error(
                404,
                "NAME_UNKNOWN",
                "repository name not known to registry",
                Some(json!({ "name": repository })),
            ));
        };
        if self.shared.mode == PolicyMode::Enforce {
            let (_, client) = self.client_facts(session);
            let req = session.req_header();
            let mut base = policy::Request::new(Action::Pull, repository);
            base.method = req.method.as_str();
            base.path = req.uri.path();
            base.client = client;
            snapshot.policy.filter_tags(&identity.principal, &base, repository, &mut tags);
        }
        let (page, next) = paging.apply(&tags);
        let body = serde_json::to_vec(&json!({ "name": repository, "tags": page })).unwrap_or_default();
        let mut reply = Reply::json(200, body);
        if let Some(last) = next {
            reply = reply.header(
                "link",
                format!("</v2/{repository}/tags/list?n={}&last={last}>; rel=\"next\"", page.len()),
            );
        }
        Ok(reply)
    }
}

fn pagination_error(e: String) -> Reply {
    Reply::error(400, "PAGINATION_NUMBER_INVALID", "invalid number of results requested", Some(e.into()))
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy.
pub fn client_ip(peer: Option<IpAddr>, forwarded_for: Option<&str>, trusted: &[Cidr]) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer_ip = peer?;
    if !is_trusted(peer_ip) {
        return Some(peer_ip);
    }
    let Some(xff) = forwarded_for else { return Some(peer_ip) };
    let mut last = peer_ip;
    for hop in xff.rsplit(',').take(policy::cel::MAX_FORWARDED) {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else { return Some(last) };
        if !is_trusted(ip) {
            return Some(ip);
        }
        last = ip;
    }
    Some(last)
}

/// Reads and discards a refused request's body when it is small, so the client reads our answer instead of
/// a reset; a large or slow body closes the connection after the answer instead.
async fn drain(session: &mut Session) {
    let downstream = session.as_downstream_mut();
    if downstream.is_body_done() || downstream.is_body_empty() {
        return;
    }
    let length = downstream
        .get_header("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if length.is_some_and(|n| n <= DRAIN_LIMIT)
        && tokio::time::timeout(Duration::from_secs(5), downstream.drain_request_body())
            .await
            .is_ok_and(|r| r.is_ok())
    {
        return;
    }
    downstream.set_keepalive(None);
}

/// The scheme and host the client used (for a realm URL pointing back at this gateway): the connection's,
/// or, from a trusted proxy, its `X-Forwarded-Proto` and `X-Forwarded-Host`.
fn origin<'a>(session: &'a Session, trusted: &[Cidr]) -> Origin<'a> {
    let plain_host = |h: &&str| {
        !h.is_empty()
            && h.len() <= 260
            && h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b))
    };
    let header = |name: &str| session.get_header(name).and_then(|v| v.to_str().ok());
    let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    let req = session.req_header();
    let mut scheme = if tls { "https" } else { "http" };
    let mut host = header("host").or_else(|| req.uri.authority().map(|a| a.as_str())).filter(plain_host);
    let peer = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
    if peer.is_some_and(|ip| trusted.iter().any(|c| c.contains(ip))) {
        match header("x-forwarded-proto").map(|p| p.split(',').next().unwrap_or("").trim()) {
            Some("https") => scheme = "https",
            Some("http") => scheme = "http",
            _ => {}
        }
        if let Some(h) =
            header("x-forwarded-host").map(|h| h.split(',').next().unwrap_or("").trim()).filter(plain_host)
        {
            host = Some(h);
        }
    }
    Origin { scheme, host }
}

/// The token scope a request needs, as a challenge names it: `pull,push` for writes (what clients ask for),
/// the source's `pull` too for a cross-repository mount.
fn need_scope(action: Action, class: &Classified) -> String {
    let repo = class.repository.as_str();
    match action {
        Action::Catalog => "registry:catalog:*".to_owned(),
        Action::Pull => format!("repository:{repo}:pull"),
        Action::Delete => format!("repository:{repo}:delete"),
        Action::Push | Action::Overwrite => match class.mount_from.as_deref() {
            Some(from) => format!("repository:{repo}:pull,push repository:{from}:pull"),
            None => format!("repository:{repo}:pull,push"),
        },
    }
}

fn upstream_scope(action: Action, class: &Classified) -> Scope {
    match action {
        Action::Catalog => Scope::Catalog,
        Action::Pull => Scope::Repository { name: class.repository.clone(), actions: "pull", from: None },
        Action::Push | Action::Overwrite => Scope::Repository {
            name: class.repository.clone(),
            actions: "pull,push",
            from: class.mount_from.clone(),
        },
        Action::Delete => Scope::Repository { name: class.repository.clone(), actions: "delete", from: None },
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        self.shared.in_flight.fetch_add(1, Ordering::AcqRel);
        METRICS.in_flight.inc();
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        Ctx {
            start: Instant::now(),
            id: format!("{:016x}", self.id_seed ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            _in_flight: InFlight(self.shared.in_flight.clone()),
            snapshot: None,
            class: None,
            principal: None,
            client_ip: None,
            decision: "error",
            route: None,
            action: None,
            rule: None,
            reason: Cow::Borrowed(""),
            scope: Scope::None,
            query: None,
            upstream_error: None,
            replace_body: None,
            status: 0,
            bytes: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let snapshot = self.shared.policy.current();
        ctx.snapshot = Some(snapshot.clone());
        if let Some(tokens) = &self.shared.tokens
            && tokens.serves(session.req_header().uri.path())
        {
            let tokens = tokens.clone();
            return self.token_endpoint(session, ctx, &tokens).await;
        }
        let req = session.req_header();
        let class = match classify(req.method.as_str(), req.uri.path(), req.uri.query()) {
            Ok(c) => c,
            Err(reply) => {
                ctx.decision = "invalid";
                ctx.reason = Cow::Borrowed(reply.code.unwrap_or("invalid"));
                return self.send(session, ctx, reply).await;
            }
        };

        let cert = session
            .digest()
            .and_then(|d| d.ssl_digest.as_deref())
            .and_then(|s| s.extension.get::<PeerCert>());
        let authorization = session.get_header("authorization").map(|v| v.as_bytes());
        let identity = match self.shared.authn.authenticate(authorization, cert).await {
            Ok(i) => i,
            Err(failure) => {
                METRICS.authn_failures.with_label_values(&[failure.method()]).inc();
                ctx.decision = "unauthenticated";
                ctx.reason = Cow::Owned(failure.reason());
                let scope = class.action.map(|a| need_scope(a, &class));
                let need = Need { scope: scope.as_deref(), insufficient: false };
                let challenges = self.shared.authn.challenges(
                    Some(&failure),
                    need,
                    origin(session, &self.shared.trusted_proxies),
                );
                ctx.class = Some(class);
                let reply = if failure == Failure::Basic(BasicError::Busy) {
                    Reply::error(429, "TOOMANYREQUESTS", "too many requests", Some(failure.reason().into()))
                        .header("retry-after", "1")
                } else {
                    Reply::unauthorized(challenges, &failure.reason())
                };
                return self.send(session, ctx, reply).await;
            }
        };
        ctx.principal = Some(identity.principal.clone());

        ctx.client_ip = self.client_facts(session).0;

        let Some(action) = class.action else {
            // The ping: any authenticated caller (or anonymous, when allowed). A caller that sent nothing is
            // challenged when credentials are accepted: clients (skopeo, docker) only ever send the
            // credentials they have after the ping challenged them, and send `Basic Og==` (anonymous)
            // when they have none.
            ctx.class = Some(class);
            let sent_nothing =
                session.get_header("authorization").is_none() && identity.principal.is_anonymous();
            if sent_nothing && self.shared.authn.takes_credentials() {
                ctx.decision = "unauthenticated";
                ctx.reason = Cow::Borrowed("credentials requested");
                let challenges = self.shared.authn.challenges(
                    None,
                    Need::default(),
                    origin(session, &self.shared.trusted_proxies),
                );
                let reply = Reply::unauthorized(challenges, "authentication required");
                return self.send(session, ctx, reply).await;
            }
            ctx.decision = "allow";
            ctx.reason = Cow::Borrowed("authenticated");
            return self.send(session, ctx, Reply::json(200, b"{}".to_vec())).await;
        };
        let repository = class.repository.clone();

        // A mount from a repository the caller may not pull becomes a plain upload.
        // A mount the policy allows but the caller's token does not cover asks for a token naming both
        // repositories, as registries do.
        if class.mount {
            let source = class.mount_from.as_deref().map(|from| {
                let facts = self.facts(session, None);
                self.verdict(&snapshot, &identity, &facts, Action::Pull, from, None)
            });
            match source {
                Some(v) if v.allowed => {}
                Some(v) if v.insufficient && self.shared.authn.token_realm().is_some() => {
                    if self.enforce(session, ctx, v, action, &class).await? {
                        ctx.class = Some(class);
                        return Ok(true);
                    }
                }
                _ => ctx.query = Some(strip_mount(session.req_header().uri.query().unwrap_or(""))),
            }
        }
        let mut class = class;
        if ctx.query.is_some() {
            class.mount_from = None;
        }

        let facts = self.facts(session, class.mount_from.as_deref());
        let v = self.verdict(&snapshot, &identity, &facts, action, &repository, class.reference.as_deref());
        if self.enforce(session, ctx, v, action, &class).await? {
            ctx.class = Some(class);
            return Ok(true);
        }

        // Every tag a manifest push moves: push on each, and overwrite when it already exists.
        if class.endpoint == Endpoint::Manifest && action == Action::Push {
            let tags: Vec<String> =
                class.tag().map(str::to_owned).into_iter().chain(class.extra_tags.iter().cloned()).collect();
            for tag in &tags {
                let facts = self.facts(session, None);
                let push = self.verdict(&snapshot, &identity, &facts, Action::Push, &repository, Some(tag));
                let overwrite = (push.allowed && self.shared.mode == PolicyMode::Enforce).then(|| {
                    self.verdict(&snapshot, &identity, &facts, Action::Overwrite, &repository, Some(tag))
                });
                if !push.allowed {
                    if self.enforce(session, ctx, push, Action::Push, &class).await? {
                        ctx.class = Some(class);
                        return Ok(true);
                    }
                    continue;
                }
                let Some(overwrite) = overwrite.filter(|o| !o.allowed) else { continue };
                let existing = match self.shared.upstream.tag_digest(&repository, tag).await {
                    Ok(d) => d,
                    Err(e) => {
                        METRICS.upstream_errors.with_label_values(&[e.kind()]).inc();
                        ctx.class = Some(class);
                        ctx.decision = "error";
                        ctx.reason = Cow::Borrowed("upstream_error");
                        let reply = match &e {
                            UpstreamError::Timeout(d) => Reply::gateway_timeout(d),
                            other => Reply::bad_gateway(other.detail()),
                        };
                        return self.send(session, ctx, reply).await;
                    }
                };
                let Some(existing) = existing else { continue };
                // Pushing the very manifest the tag already points to changes nothing.
                let pushed = match class.reference.as_deref().filter(|r| r.contains(':')) {
                    Some(d) => Some(d.to_owned()),
                    None => read_manifest_digest(session, &existing).await,
                };
                if pushed.as_deref() == Some(existing.as_str()) && !existing.is_empty() {
                    if class.tag().is_some() {
                        // The body is consumed: answer as the registry would for an identical push.
                        ctx.class = Some(class);
                        ctx.action = Some(Action::Push);
                        ctx.decision = "allow";
                        ctx.reason = Cow::Borrowed("unchanged");
                        let location = format!("/v2/{repository}/manifests/{existing}");
                        let reply = Reply::json(201, Vec::new())
                            .header("location", location)
                            .header("docker-content-digest", existing);
                        return self.send(session, ctx, reply).await;
                    }
                    continue;
                }
                let mut v = overwrite;
                if v.message.is_none() {
                    v.message =
                        Some(Arc::from(format!("tag {tag} already exists and may not be overwritten")));
                }
                if v.reason == "no_matching_grant" {
                    v.reason = Cow::Borrowed("tag_exists");
                }
                if self.enforce(session, ctx, v, Action::Overwrite, &class).await? {
                    ctx.class = Some(class);
                    return Ok(true);
                }
            }
            ctx.action = Some(Action::Push);
        }

        ctx.scope = upstream_scope(action, &class);
        let answered = match class.endpoint {
            Endpoint::Catalog => self.catalog(session, &identity, &snapshot).await.map(Some),
            Endpoint::Tags if snapshot.has_tag_rules => {
                self.tags(session, &identity, &snapshot, &class).await.map(Some)
            }
            _ => Ok(None),
        };
        ctx.class = Some(class);
        match answered {
            Ok(Some(reply)) => self.send(session, ctx, reply).await,
            Ok(None) => Ok(false),
            Err(e) => {
                METRICS.upstream_errors.with_label_values(&[e.kind()]).inc();
                ctx.decision = "error";
                ctx.reason = Cow::Borrowed("upstream_error");
                let reply = match &e {
                    UpstreamError::Timeout(d) => Reply::gateway_timeout(d),
                    other => Reply::bad_gateway(other.detail()),
                };
                self.send(session, ctx, reply).await
            }
        }
    }

    async fn upstream_peer(&self, _session: &mut Session, _ctx: &mut Ctx) -> pingora::Result<Box<HttpPeer>> {
        self.shared.upstream.peer().ok_or_else(|| {
            Error::explain(ErrorType::ConnectNoRoute, "the upstream's address does not resolve")
        })
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        let Some(class) = &ctx.class else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "unclassified request reached the upstream",
            ));
        };
        let query =
            ctx.query.as_deref().or_else(|| session.req_header().uri.query()).filter(|q| !q.is_empty());
        let mut target = String::with_capacity(class.upstream_path.len() + query.map_or(0, |q| q.len() + 1));
        target.push_str(&class.upstream_path);
        if let Some(q) = query {
            target.push('?');
            target.push_str(q);
        }
        let uri = target
            .parse::<http::Uri>()
            .map_err(|e| Error::because(ErrorType::InternalError, "cannot build the upstream URI", e))?;
        upstream.set_uri(uri);
        upstream.remove_header("authorization");
        upstream.remove_header("proxy-authorization");
        upstream.remove_header("cookie");
        if let Some(authority) = self.shared.upstream.authority() {
            upstream.insert_header("host", authority)?;
        }
        match self.shared.upstream.authorization(&ctx.scope).await {
            Ok(Some(value)) => upstream.insert_header("authorization", value.as_ref())?,
            Ok(None) => {}
            Err(e) => {
                let kind = e.kind();
                ctx.upstream_error = Some(e);
                return Err(Error::explain(
                    ErrorType::HTTPStatus(502),
                    format!("upstream credentials: {kind}"),
                ));
            }
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        // The upstream's challenges are for the gateway, not for its clients.
        resp.remove_header("www-authenticate");
        if resp.status.as_u16() == 401 && self.shared.upstream.authority().is_some() {
            self.shared.upstream.rejected(&ctx.scope);
            METRICS.upstream_errors.with_label_values(&["unauthorized"]).inc();
            tracing::warn!(scope = ?ctx.scope.values(), "the upstream refused the gateway's credentials");
            let reply = Reply::bad_gateway("the upstream registry refused the gateway's credentials");
            let body = reply.into_body();
            resp.set_status(502)?;
            resp.remove_header("transfer-encoding");
            resp.insert_header("content-type", "application/json")?;
            resp.insert_header("content-length", body.len().to_string())?;
            ctx.replace_body = Some(body);
        }
        if let Some(location) = resp.headers.get("location").and_then(|v| v.to_str().ok()) {
            let host = session.get_header("host").and_then(|h| h.to_str().ok());
            if let Some(relative) = relative_location(location, self.shared.upstream.authority(), host) {
                resp.insert_header("location", relative)?;
            }
        }
        resp.insert_header("x-request-id", ctx.id.as_str())?;
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<Duration>> {
        if ctx.replace_body.is_some() {
            *body = if end_of_stream { ctx.replace_body.take() } else { None };
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        use pingora::ErrorSource;
        let timeout = matches!(
            e.etype(),
            ErrorType::ConnectTimedout
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
                | ErrorType::TLSHandshakeTimedout
        );
        let (code, reply) = if let Some(u) = &ctx.upstream_error {
            METRICS.upstream_errors.with_label_values(&[u.kind()]).inc();
            match u {
                UpstreamError::Timeout(d) => (504, Some(Reply::gateway_timeout(d))),
                other => (502, Some(Reply::bad_gateway(other.detail()))),
            }
        } else {
            match e.esource() {
                ErrorSource::Downstream => match e.etype() {
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => (0, None),
                    _ => (
                        400,
                        Some(Reply::error(400, "UNKNOWN", "bad request", Some(e.etype().as_str().into()))),
                    ),
                },
                ErrorSource::Upstream | ErrorSource::Unset if timeout => {
                    METRICS.upstream_errors.with_label_values(&["timeout"]).inc();
                    (504, Some(Reply::gateway_timeout(e.etype().as_str())))
                }
                ErrorSource::Upstream => {
                    METRICS.upstream_errors.with_label_values(&["unavailable"]).inc();
                    (502, Some(Reply::bad_gateway(e.etype().as_str())))
                }
                _ => (500, Some(Reply::error(500, "UNKNOWN", "internal error", None))),
            }
        };
        if ctx.decision == "allow" || ctx.decision == "would_deny" {
            ctx.reason = Cow::Borrowed("upstream_error");
        }
        ctx.status = code;
        if let Some(reply) = reply
            && session.response_written().is_none()
        {
            match reply.send(session, &ctx.id).await {
                Ok(n) => ctx.bytes = n as u64,
                Err(err) => tracing::debug!(error = %err, "cannot send the error response"),
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(ctx.status, |r| r.status.as_u16());
        let bytes = if ctx.bytes > 0 { ctx.bytes } else { session.body_bytes_sent() as u64 };
        let elapsed = ctx.start.elapsed();
        let route =
            ctx.route.unwrap_or_else(|| ctx.class.as_ref().map_or("invalid", |c| c.endpoint.as_str()));
        let action = ctx.action.or_else(|| ctx.class.as_ref().and_then(|c| c.action)).map(|a| a.as_str());
        METRICS
            .requests
            .with_label_values(&[route, action.unwrap_or("none"), ctx.decision, status_label(status)])
            .inc();
        METRICS.duration.with_label_values(&[route, ctx.decision]).observe(elapsed.as_secs_f64());
        if let Some(e) = e
            && ctx.upstream_error.is_none()
            && ctx.status == 0
        {
            tracing::debug!(id = %ctx.id, error = %e, "request ended with an error");
        }
        let req = session.req_header();
        let revision = ctx.snapshot.as_ref().map_or("", |s| s.revision.as_str());
        let principal = ctx.principal.as_deref();
        self.shared.log.write(&Entry {
            time: now_rfc3339(),
            id: &ctx.id,
            revision,
            principal: principal.map_or("", |p| p.name()),
            auth: principal.map_or("none", |p| p.method().as_str()),
            method: req.method.as_str(),
            client_ip: ctx
                .client_ip
                .or_else(|| session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip())),
            route,
            repository: ctx.class.as_ref().map_or("", |c| c.repository.as_str()),
            action,
            reference: ctx.class.as_ref().and_then(|c| c.reference.as_deref()),
            decision: ctx.decision,
            rule: ctx.rule.as_deref(),
            reason: &ctx.reason,
            status,
            bytes,
            duration_ms: (elapsed.as_secs_f64() * 1e6).round() / 1e3,
        });
    }
}

/// The `status` label: the code itself for the usual ones, the class for the rest.
fn status_label(status: u16) -> &'static str {
    match status {
        0 => "0",
        200 => "200",
        201 => "201",
        202 => "202",
        204 => "204",
        206 => "206",
        301 => "301",
        302 => "302",
        303 => "303",
        307 => "307",
        308 => "308",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        409 => "409",
        413 => "413",
        416 => "416",
        429 => "429",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        _ => match status / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

/// An upstream `Location` on the upstream itself (or naming the gateway, as registries build Locations
/// from the `Host` they saw) becomes relative, so the next request of an upload comes back through the
/// gateway; Locations on other hosts (object storage redirects) stay as they are.
pub fn relative_location(
    location: &str,
    upstream: Option<&str>,
    client_host: Option<&str>,
) -> Option<String> {
    let rest = location.strip_prefix("https://").or_else(|| location.strip_prefix("http://"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let same = |a: Option<&str>| {
        a.is_some_and(|a| {
            a.eq_ignore_ascii_case(authority)
                || a.strip_suffix(":80")
                    .or_else(|| a.strip_suffix(":443"))
                    .is_some_and(|h| h.eq_ignore_ascii_case(authority))
        })
    };
    if !(same(upstream) || same(client_host)) {
        return None;
    }
    Some(if path.is_empty() { "/".to_owned() } else { path.to_owned() })
}

/// Reads a manifest push's body (up to the largest manifest) and returns its digest in the algorithm of
/// `like`. `None` when it cannot be read or is too large.
async fn read_manifest_digest(session: &mut Session, like: &str) -> Option<String> {
    use sha2::Digest as _;
    let mut sha256 = sha2::Sha256::new();
    let mut sha512 = sha2::Sha512::new();
    let mut total = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_secs(30), session.read_request_body()).await {
            Ok(Ok(Some(chunk))) => {
                total += chunk.len();
                if total > MAX_MANIFEST {
                    return None;
                }
                sha256.update(&chunk);
                sha512.update(&chunk);
            }
            Ok(Ok(None)) => break,
            _ => return None,
        }
    }
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    Some(if like.starts_with("sha512:") {
        format!("sha512:{}", hex(&sha512.finalize()))
    } else {
        format!("sha256:{}", hex(&sha256.finalize()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_on_the_upstream_or_the_gateway_become_relative() {
        let up = Some("registry.internal:5000");
        assert_eq!(
            relative_location("http://registry.internal:5000/v2/a/blobs/uploads/x?_state=y", up, None)
                .as_deref(),
            Some("/v2/a/blobs/uploads/x?_state=y")
        );
        assert_eq!(
            relative_location("http://gw.example:8443/v2/a/blobs/uploads/x", up, Some("gw.example:8443"))
                .as_deref(),
            Some("/v2/a/blobs/uploads/x")
        );
        assert_eq!(relative_location("https://s3.amazonaws.com/bucket/blob?sig=1", up, Some("gw")), None);
        assert_eq!(relative_location("/v2/a/blobs/uploads/x", up, None), None);
        assert_eq!(
            relative_location("https://registry.example/v2/x", Some("registry.example:443"), None).as_deref(),
            Some("/v2/x")
        );
    }

    #[test]
    fn client_ip_through_trusted_proxies_only() {
        let trusted = [Cidr::parse("10.0.0.0/8").expect("cidr")];
        let peer: IpAddr = "10.1.2.3".parse().expect("ip");
        let outside: IpAddr = "203.0.113.9".parse().expect("ip");
        assert_eq!(client_ip(Some(outside), Some("1.2.3.4"), &trusted), Some(outside));
        assert_eq!(
            client_ip(Some(peer), Some("1.2.3.4, 198.51.100.7, 10.9.9.9"), &trusted),
            "198.51.100.7".parse().ok()
        );
        assert_eq!(client_ip(Some(peer), Some("10.0.0.1"), &trusted), "10.0.0.1".parse().ok());
        assert_eq!(client_ip(Some(peer), Some("garbage, 10.0.0.1"), &trusted), "10.0.0.1".parse().ok());
        assert_eq!(client_ip(Some(peer), None, &trusted), Some(peer));
    }
}

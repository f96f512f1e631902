//! A registry elsewhere, reached over HTTP or HTTPS with the gateway's own credentials.
//!
//! For the token dance the gateway learns the upstream's realm from its `/v2/` challenge, then asks that
//! realm for exactly the scope each request needs, computed from the request's own repository and action
//! (never copied from a challenge, which some registries get wrong), and keeps each token until shortly
//! before it expires.

use std::collections::HashMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::WrappedX509;
use reqwest::StatusCode;

use super::challenge;
use super::{Scope, UpstreamError};
use crate::config::{Credentials, UpstreamSettings};

/// Most tokens kept at once (one per scope).
const TOKEN_CACHE_CAP: usize = 10_000;
/// How long the upstream's repository list is reused while a client pages through the catalog.
const CATALOG_TTL: Duration = Duration::from_secs(2);
/// Most pages followed when reading a whole list from the upstream.
const MAX_PAGES: usize = 10_000;

/// Manifest media types accepted when checking whether a tag exists.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, \
     application/vnd.docker.distribution.manifest.v1+prettyjws, application/json";

/// How the upstream wants the gateway to authenticate, learned from its `/v2/` answer.
#[derive(Debug, Clone)]
enum Mode {
    Open,
    Basic,
    Bearer { realm: String, service: Option<String> },
}

/// A remote upstream.
pub struct Remote {
    tls: bool,
    host: String,
    port: u16,
    authority: String,
    base: String,
    ca: Option<Arc<[WrappedX509]>>,
    insecure: bool,
    connect_timeout: Duration,
    read_timeout: Duration,
    peer: ArcSwapOption<HttpPeer>,
    addr: Mutex<Option<SocketAddr>>,
    client: reqwest::Client,
    credentials: Credentials,
    basic_header: Option<Arc<str>>,
    static_bearer: Option<Arc<str>>,
    mode: RwLock<Option<Mode>>,
    tokens: RwLock<HashMap<String, (Arc<str>, Instant)>>,
    catalog: Mutex<Option<(Instant, Arc<Vec<String>>)>>,
    health: RwLock<Result<(), String>>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Remote {
    /// Sets up the connection settings (the address is resolved now and re-resolved by the health check).
    pub fn new(settings: &UpstreamSettings) -> Result<Arc<Remote>, String> {
        let UpstreamSettings::Remote {
            tls,
            host,
            port,
            ca,
            insecure_skip_verify,
            credentials,
            connect_timeout,
            read_timeout,
        } = settings
        else {
            return Err("not a remote upstream".into());
        };
        let authority =
            if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") };
        let base = format!("{}://{authority}", if *tls { "https" } else { "http" });
        let mut builder = reqwest::Client::builder()
            .connect_timeout(*connect_timeout)
            .read_timeout(*read_timeout)
            .timeout(Duration::from_secs(120))
            .redirect(reqwest::redirect::Policy::limited(5))
            .user_agent(concat!("ocigate/", env!("CARGO_PKG_VERSION")));
        let mut ca_certs = None;
        if let Some(path) = ca {
            let certs = crate::tls::read_certs(path).map_err(|e| format!("upstream.ca: {e}"))?;
            let mut wrapped = Vec::new();
            let mut roots = Vec::new();
            for c in &certs {
                use x509_parser::prelude::FromDer;
                x509_parser::certificate::X509Certificate::from_der(c)
                    .map_err(|e| format!("upstream.ca: {}: bad certificate: {e}", path.display()))?;
                wrapped.push(WrappedX509::new(c.to_vec(), pingora::utils::tls::parse_x509));
                roots.push(
                    reqwest::Certificate::from_der(c)
                        .map_err(|e| format!("upstream.ca: {}: {e}", path.display()))?,
                );
            }
            builder = builder.tls_certs_merge(roots);
            ca_certs = Some(Arc::from(wrapped));
        }
        if *insecure_skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder.build().map_err(|e| format!("upstream: cannot set up the HTTP client: {e}"))?;
        let basic = |u: &str, p: &str| -> Arc<str> {
            use base64::Engine as _;
            Arc::from(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            ))
        };
        let (basic_header, static_bearer) = match credentials {
            Credentials::Basic { username, password } => (Some(basic(username, password)), None),
            Credentials::Token(Some((u, p))) => (Some(basic(u, p)), None),
            Credentials::Bearer(t) => (None, Some(Arc::from(format!("Bearer {t}")))),
            Credentials::None | Credentials::Token(None) => (None, None),
        };
        let remote = Arc::new(Remote {
            tls: *tls,
            host: host.clone(),
            port: *port,
            authority,
            base,
            ca: ca_certs,
            insecure: *insecure_skip_verify,
            connect_timeout: *connect_timeout,
            read_timeout: *read_timeout,
            peer: ArcSwapOption::empty(),
            addr: Mutex::new(None),
            client,
            credentials: credentials.clone(),
            basic_header,
            static_bearer,
            mode: RwLock::new(None),
            tokens: RwLock::new(HashMap::new()),
            catalog: Mutex::new(None),
            health: RwLock::new(Err("not checked yet".into())),
        });
        if let Err(e) = remote.resolve() {
            tracing::warn!(upstream = %remote.base, error = %e, "cannot resolve the upstream yet; will retry");
        }
        Ok(remote)
    }

    /// `host:port`.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// Base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn resolve(&self) -> Result<(), String> {
        let addr: SocketAddr = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {}: {e}", self.host))?
            .next()
            .ok_or_else(|| format!("{} has no address", self.host))?;
        if let Ok(mut last) = self.addr.lock() {
            if *last == Some(addr) {
                return Ok(());
            }
            *last = Some(addr);
        }
        let mut peer = HttpPeer::new(addr, self.tls, self.host.clone());
        peer.options.connection_timeout = Some(self.connect_timeout);
        peer.options.read_timeout = Some(self.read_timeout);
        peer.options.write_timeout = Some(self.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer.options.verify_cert = !self.insecure;
        peer.options.verify_hostname = !self.insecure;
        peer.options.ca = self.ca.clone();
        self.peer.store(Some(Arc::new(peer)));
        Ok(())
    }

    pub(super) fn peer(&self) -> Option<Box<HttpPeer>> {
        self.peer.load().as_deref().map(|p| Box::new(p.clone()))
    }

    pub(super) async fn authorization(&self, scope: &Scope) -> Result<Option<Arc<str>>, UpstreamError> {
        match &self.credentials {
            Credentials::None => Ok(None),
            Credentials::Basic { .. } => Ok(self.basic_header.clone()),
            Credentials::Bearer(_) => Ok(self.static_bearer.clone()),
            Credentials::Token(_) => self.token(scope).await,
        }
    }

    pub(super) fn rejected(&self, scope: &Scope) {
        if let Ok(mut t) = self.tokens.write() {
            t.remove(&scope.values().join(" "));
        }
        if let Ok(mut m) = self.mode.write() {
            *m = None;
        }
    }

    async fn mode(&self) -> Result<Mode, UpstreamError> {
        if let Ok(m) = self.mode.read()
            && let Some(m) = m.as_ref()
        {
            return Ok(m.clone());
        }
        let resp = self.client.get(format!("{}/v2/", self.base)).send().await.map_err(transport)?;
        let mode = match resp.status() {
            s if s.is_success() => Mode::Open,
            StatusCode::UNAUTHORIZED => {
                let challenges: Vec<challenge::Challenge> = resp
                    .headers()
                    .get_all(reqwest::header::WWW_AUTHENTICATE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .flat_map(challenge::parse)
                    .collect();
                if let Some(b) =
                    challenges.iter().find(|c| c.scheme == "bearer" && c.params.contains_key("realm"))
                {
                    Mode::Bearer {
                        realm: b.params.get("realm").cloned().unwrap_or_default(),
                        service: b.params.get("service").cloned(),
                    }
                } else if challenges.iter().any(|c| c.scheme == "basic") {
                    Mode::Basic
                } else {
                    return Err(UpstreamError::Protocol(
                        "the upstream's 401 on /v2/ has no Bearer or Basic challenge".into(),
                    ));
                }
            }
            s => return Err(UpstreamError::Protocol(format!("the upstream answered /v2/ with {s}"))),
        };
        if let Ok(mut m) = self.mode.write() {
            *m = Some(mode.clone());
        }
        Ok(mode)
    }

    async fn token(&self, scope: &Scope) -> Result<Option<Arc<str>>, UpstreamError> {
        let (realm, service) = match self.mode().await? {
            Mode::Open => return Ok(None),
            Mode::Basic => return Ok(self.basic_header.clone()),
            Mode::Bearer { realm, service } => (realm, service),
        };
        let scopes = scope.values();
        let key = scopes.join(" ");
        if let Ok(t) = self.tokens.read()
            && let Some((value, until)) = t.get(&key)
            && Instant::now() < *until
        {
            return Ok(Some(value.clone()));
        }
        let mut url = realm.clone();
        let mut sep = if url.contains('?') { '&' } else { '?' };
        if let Some(s) = &service {
            url.push(sep);
            url.push_str("service=");
            oci::query::encode_component(s, &mut url);
            sep = '&';
        }
        for s in &scopes {
            url.push(sep);
            url.push_str("scope=");
            oci::query::encode_component(s, &mut url);
            sep = '&';
        }
        let mut req = self.client.get(&url);
        if let Some(b) = &self.basic_header {
            req = req.header(reqwest::header::AUTHORIZATION, b.as_ref());
        }
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(UpstreamError::Unauthorized(format!(
                "the upstream's token service ({realm}) answered {status}"
            )));
        }
        #[derive(serde::Deserialize)]
        struct TokenResponse {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let body: TokenResponse = json(resp).await.map_err(|e| {
            UpstreamError::Protocol(format!("the upstream's token service sent no token: {}", e.detail()))
        })?;
        let token =
            body.token.or(body.access_token).filter(|t| !t.is_empty()).ok_or_else(|| {
                UpstreamError::Protocol("the upstream's token service sent no token".into())
            })?;
        let lifetime = body.expires_in.unwrap_or(60).max(1);
        let keep = Duration::from_secs(lifetime - (lifetime / 10).min(30));
        let value: Arc<str> = Arc::from(format!("Bearer {token}"));
        if let Ok(mut t) = self.tokens.write() {
            if t.len() >= TOKEN_CACHE_CAP {
                let now = Instant::now();
                t.retain(|_, (_, until)| now < *until);
                if t.len() >= TOKEN_CACHE_CAP {
                    t.clear();
                }
            }
            t.insert(key, (value.clone(), Instant::now() + keep));
        }
        Ok(Some(value))
    }

    async fn get(&self, url: &str, scope: &Scope, head: bool) -> Result<reqwest::Response, UpstreamError> {
        let mut req = if head { self.client.head(url) } else { self.client.get(url) };
        if let Some(auth) = self.authorization(scope).await? {
            req = req.header(reqwest::header::AUTHORIZATION, auth.as_ref());
        }
        if head {
            req = req.header(reqwest::header::ACCEPT, MANIFEST_ACCEPT);
        }
        let resp = req.send().await.map_err(transport)?;
        if resp.status() == StatusCode::UNAUTHORIZED || resp.status() == StatusCode::FORBIDDEN {
            self.rejected(scope);
            return Err(UpstreamError::Unauthorized(format!(
                "the upstream refused the gateway's credentials ({}) for {}",
                resp.status(),
                scope.values().join(" ")
            )));
        }
        Ok(resp)
    }

    pub(super) async fn tag_digest(
        &self,
        repository: &str,
        tag: &str,
    ) -> Result<Option<String>, UpstreamError> {
        let scope = Scope::Repository { name: repository.to_owned(), actions: "pull", from: None };
        let resp = self.get(&format!("{}/v2/{repository}/manifests/{tag}", self.base), &scope, true).await?;
        match resp.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(
                resp.headers()
                    .get("docker-content-digest")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned(),
            )),
            s => Err(UpstreamError::Protocol(format!("HEAD of {repository}:{tag} answered {s}"))),
        }
    }

    pub(super) async fn repositories(&self) -> Result<Arc<Vec<String>>, UpstreamError> {
        if let Ok(c) = self.catalog.lock()
            && let Some((at, list)) = c.as_ref()
            && at.elapsed() < CATALOG_TTL
        {
            return Ok(list.clone());
        }
        let url = format!("{}/v2/_catalog?n=1000", self.base);
        let all = self.whole_list(url, &Scope::Catalog, "repositories").await?.unwrap_or_default();
        let list = Arc::new(all);
        if let Ok(mut c) = self.catalog.lock() {
            *c = Some((Instant::now(), list.clone()));
        }
        Ok(list)
    }

    pub(super) async fn tags(&self, repository: &str) -> Result<Option<Vec<String>>, UpstreamError> {
        let scope = Scope::Repository { name: repository.to_owned(), actions: "pull", from: None };
        let url = format!("{}/v2/{repository}/tags/list?n=1000", self.base);
        self.whole_list(url, &scope, "tags").await
    }

    /// Every entry of a paged list (`repositories` of the catalog, `tags` of a tag list), following
    /// `Link` headers; sorted and deduplicated. `None` when the upstream answers 404.
    async fn whole_list(
        &self,
        mut url: String,
        scope: &Scope,
        field: &str,
    ) -> Result<Option<Vec<String>>, UpstreamError> {
        let mut all = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.get(&url, scope, false).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(UpstreamError::Protocol(format!(
                    "{} answered {}",
                    resp.url().path(),
                    resp.status()
                )));
            }
            let next = next_link(&resp, &self.base);
            let page: serde_json::Value = json(resp).await?;
            if let Some(items) = page.get(field).and_then(|v| v.as_array()) {
                all.extend(items.iter().filter_map(|v| v.as_str().map(str::to_owned)));
            }
            match next {
                Some(n) => url = n,
                None => break,
            }
        }
        all.sort_unstable();
        all.dedup();
        Ok(Some(all))
    }

    pub(super) fn ready(&self) -> Result<(), String> {
        self.health.read().map_or_else(|_| Err("health state unavailable".into()), |h| h.clone())
    }

    async fn check(&self) {
        if let Err(e) = self.resolve() {
            self.set_health(Err(e));
            return;
        }
        let result = match self
            .client
            .get(format!("{}/v2/", self.base))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) if r.status().is_success() || r.status() == StatusCode::UNAUTHORIZED => Ok(()),
            Ok(r) => Err(format!("{}/v2/ answered {}", self.base, r.status())),
            Err(e) => Err(format!("{}/v2/: {}", self.base, transport(e).detail())),
        };
        self.set_health(result);
    }

    fn set_health(&self, result: Result<(), String>) {
        if let Ok(mut h) = self.health.write() {
            if h.is_ok() != result.is_ok() {
                match &result {
                    Ok(()) => tracing::info!(upstream = %self.base, "upstream is reachable"),
                    Err(e) => tracing::warn!(upstream = %self.base, error = %e, "upstream is not reachable"),
                }
            }
            *h = result;
        }
    }
}

/// The next page of a list: the `Link: <...>; rel="next"` target, made absolute.
fn next_link(resp: &reqwest::Response, base: &str) -> Option<String> {
    let link = resp.headers().get(reqwest::header::LINK)?.to_str().ok()?;
    let target = link.split(';').next()?.trim().strip_prefix('<')?.strip_suffix('>')?;
    if target.starts_with('/') {
        Some(format!("{base}{target}"))
    } else if target.starts_with(base) {
        Some(target.to_owned())
    } else {
        None
    }
}

/// A JSON body (at most 64 MiB).
async fn json<T: serde::de::DeserializeOwned>(resp: reqwest::Response) -> Result<T, UpstreamError> {
    const LIMIT: u64 = 64 << 20;
    if resp.content_length().is_some_and(|n| n > LIMIT) {
        return Err(UpstreamError::Protocol("the upstream's answer is too large".into()));
    }
    let url = resp.url().path().to_owned();
    let bytes = resp.bytes().await.map_err(transport)?;
    serde_json::from_slice(&bytes)
        .map_err(|e| UpstreamError::Protocol(format!("{url}: not the expected JSON: {e}")))
}

fn transport(e: reqwest::Error) -> UpstreamError {
    let mut msg = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    if e.is_timeout() { UpstreamError::Timeout(msg) } else { UpstreamError::Unavailable(msg) }
}

/// Checks the upstream every few seconds (and re-resolves its name) for `/readyz`.
pub struct HealthService {
    /// The upstream.
    pub remote: Arc<Remote>,
}

#[async_trait]
impl BackgroundService for HealthService {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = tick.tick() => self.remote.check().await,
                _ = shutdown.changed() => return,
            }
        }
    }
}

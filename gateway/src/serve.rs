//! `ocigate serve`: assembles the Pingora server from a checked configuration and runs it until SIGTERM
//! (drain requests in flight, bounded by `shutdown_timeout`) or SIGINT (stop now).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use async_trait::async_trait;
use pingora::apps::http_app::HttpServer;
use pingora::listeners::tls::TlsSettings;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownWatch};
use pingora::services::background::{BackgroundService, background_service};
use pingora::services::listening::Service;

use crate::admin::Admin;
use crate::authn::{Authenticator, Groups};
use crate::config::{self, Settings, UpstreamSettings};
use crate::decisions::DecisionLog;
use crate::proxy::{Gateway, Shared};
use crate::reload::{PolicyStore, ReloadService};
use crate::tls::{CertReloader, IdentityCallbacks, ListenerTls};
use crate::token::TokenService;
use crate::upstream::{Bundled, HealthService, Remote, Upstream};

/// Loads and checks a configuration file; every problem is in the error, one per line.
pub fn check(path: &Path) -> anyhow::Result<Settings> {
    config::load(path).map_err(|errors| {
        anyhow!("{} has {} problem(s):\n  {}", path.display(), errors.len(), errors.join("\n  "))
    })
}

/// Runs the gateway.
pub fn serve(path: &Path) -> anyhow::Result<()> {
    pingora::tls::install_default_crypto_provider();
    let mut settings = check(path)?;
    for (i, l) in settings.listeners.iter_mut().enumerate() {
        l.addr = reserve(l.addr)
            .with_context(|| format!("{}: listen[{i}].addr: cannot bind {}", path.display(), l.addr))?;
    }
    if let Some(a) = &mut settings.admin {
        *a = reserve(*a).with_context(|| format!("{}: admin.addr: cannot bind {a}", path.display()))?;
    }

    let groups = Arc::new(Groups::new(&settings.auth.groups));
    let token_keys = match &settings.auth.token_service {
        Some(t) => Some(TokenService::load_keys(t).map_err(|e| anyhow!("auth.token_service.keys: {e}"))?),
        None => None,
    };
    let own = settings
        .auth
        .token_service
        .as_ref()
        .zip(token_keys.as_deref())
        .map(|(t, k)| TokenService::own_issuer(t, k));
    let authn =
        Arc::new(Authenticator::load(&settings.auth, groups.clone(), own).map_err(|e| anyhow!("auth: {e}"))?);
    let policy = Arc::new(PolicyStore::load(&settings.policy_paths).map_err(|e| anyhow!("policy: {e}"))?);
    let tokens = settings.auth.token_service.clone().zip(token_keys).map(|(t, keys)| {
        tracing::info!(path = %t.path, service = %t.service, issuer = %t.issuer, "token service on");
        Arc::new(TokenService::new(t, keys, authn.clone(), policy.clone()))
    });
    let log = DecisionLog::open(settings.decisions.as_deref()).map_err(|e| anyhow!(e))?;

    // The drain below ends the process as soon as requests in flight are done; Pingora's grace period is
    // only the upper bound.
    let conf = ServerConf {
        threads: settings.threads,
        grace_period_seconds: Some(settings.shutdown_timeout.as_secs().max(1)),
        graceful_shutdown_timeout_seconds: Some(1),
        // One runtime per thread, like nginx's workers: 159 -> 124 us of CPU per proxied request in
        // bench/gateway.sh against Pingora's work-stealing default.
        work_stealing: false,
        ..ServerConf::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let upstream = match &settings.upstream {
        UpstreamSettings::Bundled { root, upload_ttl } => {
            let (b, service) = Bundled::open(root, *upload_ttl).map_err(|e| anyhow!(e))?;
            let mut service = background_service("bundled registry", service);
            service.threads = Some(settings.threads);
            server.add_service(service);
            Upstream::Bundled(Box::new(b))
        }
        remote @ UpstreamSettings::Remote { .. } => {
            let r = Remote::new(remote).map_err(|e| anyhow!(e))?;
            server.add_service(background_service("upstream health", HealthService { remote: r.clone() }));
            Upstream::Remote(r)
        }
    };
    let upstream = Arc::new(upstream);
    let in_flight = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Shared {
        policy: policy.clone(),
        authn: authn.clone(),
        upstream: upstream.clone(),
        mode: settings.policy_mode,
        trusted_proxies: settings.auth.trusted_proxies.clone(),
        log,
        in_flight: in_flight.clone(),
        tokens,
    });

    let mut proxy = pingora::proxy::http_proxy_service_with_name(
        &server.configuration,
        Gateway::new(shared.clone()),
        "ocigate",
    );
    let mut certs = Vec::new();
    for (i, l) in settings.listeners.iter().enumerate() {
        let addr = l.addr.to_string();
        match &l.tls {
            None => proxy.add_tcp(&addr),
            Some(t) => {
                let loaded = ListenerTls::load(t).map_err(|e| anyhow!("listen[{i}].tls: {e}"))?;
                let callbacks = IdentityCallbacks { identity: t.identity, groups: groups.clone() };
                let mut tls = TlsSettings::with_callbacks(Box::new(callbacks))
                    .map_err(|e| anyhow!("listen[{i}].tls: {e}"))?;
                tls.set_cert_resolver(loaded.store.clone());
                if let Some(v) = loaded.verifier {
                    tls.set_client_cert_verifier(v);
                }
                tls.enable_h2();
                proxy.add_tls_with_settings(&addr, None, tls);
                certs.push(loaded.store);
            }
        }
    }
    server.add_service(proxy);

    if let Some(addr) = settings.admin {
        let admin = Admin { policy: policy.clone(), upstream: upstream.clone(), mode: settings.policy_mode };
        let mut service = Service::new("admin".to_owned(), HttpServer::new_app(admin));
        service.add_tcp(&addr.to_string());
        service.threads = Some(1);
        server.add_service(service);
    }
    server.add_service(background_service(
        "reload",
        ReloadService { store: policy.clone(), authn: authn.clone(), certs: certs.clone() },
    ));
    server.add_service(background_service("certificates", CertReloader { stores: certs }));
    if authn.bearer().and_then(|b| b.url_refresh_interval()).is_some() {
        server.add_service(background_service("jwks", JwksRefresher { authn: authn.clone() }));
    }
    server.add_service(background_service(
        "drain",
        Drain { shared: shared.clone(), in_flight, timeout: settings.shutdown_timeout },
    ));

    for l in &settings.listeners {
        let mtls = l.tls.as_ref().is_some_and(|t| t.client_ca.is_some());
        tracing::info!(addr = %l.addr, tls = l.tls.is_some(), mtls, "listening");
    }
    if let Some(a) = settings.admin {
        tracing::info!(admin = %a, "admin listening (/metrics, /healthz, /readyz)");
    }
    tracing::info!(
        upstream = %match &*upstream { Upstream::Bundled(_) => "bundled".to_owned(), Upstream::Remote(r) => r.base().to_owned() },
        policy = %policy.current().revision,
        mode = settings.policy_mode.as_str(),
        threads = settings.threads,
        "ocigate serving"
    );
    server.run(RunArgs::default());
    finish(&shared);
    Ok(())
}

/// Checks that an address is free; port 0 becomes a free port chosen by the system (the log says which).
fn reserve(addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
    std::net::TcpListener::bind(addr)?.local_addr()
}

/// Writes out the decision log and removes the bundled registry's socket.
fn finish(shared: &Shared) {
    shared.log.flush(Duration::from_secs(2));
    if let Upstream::Bundled(b) = &*shared.upstream {
        b.remove_socket();
    }
}

/// On SIGTERM, once Pingora has stopped accepting: waits for requests in flight, then exits at once
/// rather than sleeping out the whole grace period.
struct Drain {
    shared: Arc<Shared>,
    in_flight: Arc<AtomicUsize>,
    timeout: Duration,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let start = Instant::now();
        tracing::info!(in_flight = self.in_flight.load(Ordering::Acquire), timeout = ?self.timeout, "shutting down: finishing requests in flight");
        tokio::time::sleep(Duration::from_millis(100)).await;
        while self.in_flight.load(Ordering::Acquire) > 0 && start.elapsed() < self.timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = self.in_flight.load(Ordering::Acquire);
        if left > 0 {
            tracing::warn!(
                in_flight = left,
                "requests still running after the shutdown timeout; exiting anyway"
            );
        } else {
            tracing::info!(elapsed = ?start.elapsed(), "all requests finished; exiting");
        }
        finish(&self.shared);
        std::process::exit(0);
    }
}

/// Fetches the issuers' JWKS URLs at start and then every `jwks_refresh` (retrying every 30s while a
/// fetch fails).
struct JwksRefresher {
    authn: Arc<Authenticator>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        let Some(bearer) = self.authn.bearer() else { return };
        let Some(every) = bearer.url_refresh_interval() else { return };
        loop {
            bearer.refresh_urls().await;
            let wait = if bearer.urls_missing_keys() { every.min(Duration::from_secs(30)) } else { every };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

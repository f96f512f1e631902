//! [`ConfigFile`] -> [`Settings`]: every problem collected, each with its path in the file.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use policy::cel::Cidr;

use super::{ConfigFile, CredentialsSpec, IssuerSpec, ListenSpec, TlsSpec, UpstreamSpec};

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The file it came from.
    pub source: PathBuf,
    /// Client listeners.
    pub listeners: Vec<Listener>,
    /// Admin listener.
    pub admin: Option<SocketAddr>,
    /// Where requests go.
    pub upstream: UpstreamSettings,
    /// Authentication.
    pub auth: AuthSettings,
    /// Policy files and folders.
    pub policy_paths: Vec<PathBuf>,
    /// Enforce or dry-run.
    pub policy_mode: PolicyMode,
    /// Decision log target: `None` = off, `Some("stdout")`, `Some("stderr")` or a path.
    pub decisions: Option<String>,
    /// Proxy worker threads.
    pub threads: usize,
    /// Grace for requests in flight on SIGTERM.
    pub shutdown_timeout: Duration,
}

/// A client listener.
#[derive(Debug, Clone)]
pub struct Listener {
    /// Address.
    pub addr: SocketAddr,
    /// TLS, if any.
    pub tls: Option<TlsListener>,
}

/// TLS settings of a listener.
#[derive(Debug, Clone)]
pub struct TlsListener {
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Key file.
    pub key: PathBuf,
    /// Client CA bundle (mTLS).
    pub client_ca: Option<PathBuf>,
    /// Client certificate required?
    pub require_client_cert: bool,
    /// Which certificate field names the principal.
    pub identity: ClientIdentity,
}

/// Which part of a client certificate names the principal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientIdentity {
    /// Subject common name.
    Cn,
    /// First DNS SAN.
    SanDns,
    /// First URI SAN (e.g. a SPIFFE id).
    SanUri,
    /// First e-mail SAN.
    SanEmail,
}

/// Where requests go.
#[derive(Debug, Clone)]
pub enum UpstreamSettings {
    /// The bundled registry.
    Bundled {
        /// Storage root.
        root: PathBuf,
        /// Upload session TTL.
        upload_ttl: Duration,
    },
    /// Another registry.
    Remote {
        /// `https` or `http`.
        tls: bool,
        /// Host name or address.
        host: String,
        /// Port.
        port: u16,
        /// Private CA.
        ca: Option<PathBuf>,
        /// Skip verification.
        insecure_skip_verify: bool,
        /// The gateway's credentials there.
        credentials: Credentials,
        /// Connect timeout.
        connect_timeout: Duration,
        /// Read timeout.
        read_timeout: Duration,
    },
}

/// The gateway's credentials at a remote upstream.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// None.
    None,
    /// Static Basic.
    Basic {
        /// User.
        username: String,
        /// Password.
        password: String,
    },
    /// Static bearer token.
    Bearer(String),
    /// The token dance, with Basic credentials at the realm or anonymously.
    Token(Option<(String, String)>),
}

/// Authentication settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Anonymous callers allowed in.
    pub anonymous: bool,
    /// Basic realm.
    pub realm: String,
    /// htpasswd file.
    pub htpasswd: Option<PathBuf>,
    /// Token issuers.
    pub issuers: Vec<Issuer>,
    /// Proxies trusted for `X-Forwarded-For`.
    pub trusted_proxies: Vec<Cidr>,
    /// `group -> users`.
    pub groups: std::collections::BTreeMap<String, Vec<String>>,
    /// The built-in token service.
    pub token_service: Option<TokenServiceSettings>,
}

/// The built-in token service.
#[derive(Debug, Clone)]
pub struct TokenServiceSettings {
    /// `service` and the tokens' audience.
    pub service: String,
    /// The tokens' `iss`.
    pub issuer: String,
    /// Realm URL, when fixed by the operator.
    pub realm: Option<String>,
    /// Path of the endpoint.
    pub path: String,
    /// Key files (empty: an ephemeral key).
    pub keys: Vec<PathBuf>,
    /// Access token lifetime.
    pub lifetime: Duration,
    /// Refresh token lifetime.
    pub refresh_lifetime: Duration,
}

/// A token issuer.
#[derive(Debug, Clone)]
pub struct Issuer {
    /// `iss`.
    pub issuer: String,
    /// Accepted audiences.
    pub audiences: Vec<String>,
    /// PEM key or certificate files.
    pub keys: Vec<PathBuf>,
    /// CA bundle for `x5c` chains.
    pub root_cert_bundle: Option<PathBuf>,
    /// JWKS file.
    pub jwks_file: Option<PathBuf>,
    /// JWKS URL.
    pub jwks_url: Option<String>,
    /// How often the JWKS URL is fetched.
    pub jwks_refresh: Duration,
    /// CA bundle for the JWKS URL.
    pub jwks_ca: Option<PathBuf>,
    /// Bearer token file for the JWKS URL.
    pub jwks_token_file: Option<PathBuf>,
    /// Accepted algorithms (names as in JWS `alg`).
    pub algorithms: Vec<String>,
    /// Leeway for exp/nbf.
    pub leeway: Duration,
    /// Subject claim.
    pub subject_claim: String,
    /// Prefix of the subjects.
    pub subject_prefix: String,
    /// Groups claim (dotted path).
    pub groups_claim: String,
}

/// Policy mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyMode {
    /// Deny what the policy denies.
    Enforce,
    /// Log what would be denied, allow it.
    DryRun,
}

impl PolicyMode {
    /// Name in logs and /readyz.
    pub fn as_str(&self) -> &'static str {
        match self {
            PolicyMode::Enforce => "enforce",
            PolicyMode::DryRun => "dry-run",
        }
    }
}

/// Asymmetric JWS algorithms accepted by default (`none` and HMAC are never accepted).
pub const DEFAULT_ALGORITHMS: &[&str] =
    &["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"];

/// Reads, parses and checks a configuration file. Every problem is reported, one per line, each with the
/// file and its path in the file.
pub fn load(path: &Path) -> Result<Settings, Vec<String>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![format!("{}: cannot read: {e}", path.display())])?;
    let file: ConfigFile = serde_saphyr::from_str(&text).map_err(|e| {
        let pos = e.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
        let msg = e.to_string();
        let msg = msg.lines().next().unwrap_or("").trim();
        let msg = msg.strip_prefix("error: ").unwrap_or(msg);
        let msg = match msg.strip_prefix("line ").and_then(|r| r.split_once(": ")) {
            Some((p, rest)) if p.contains("column") => rest,
            _ => msg,
        };
        vec![format!("{}{pos}: {msg}", path.display())]
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    validate(&file, path, base)
        .map_err(|errors| errors.into_iter().map(|e| format!("{}: {e}", path.display())).collect())
}

/// Checks a parsed file; relative paths are resolved against `base` (the file's folder).
pub fn validate(file: &ConfigFile, source: &Path, base: &Path) -> Result<Settings, Vec<String>> {
    let mut errors = Vec::new();
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };

    if file.listen.is_empty() {
        errors.push("listen: add at least one listener, e.g. `- addr: 0.0.0.0:5000`".to_owned());
    }
    let mut listeners = Vec::new();
    for (i, l) in file.listen.iter().enumerate() {
        if let Some(listener) = listener(l, &format!("listen[{i}]"), &resolve, &mut errors) {
            if listener.addr.port() != 0 && listeners.iter().any(|x: &Listener| x.addr == listener.addr) {
                errors.push(format!("listen[{i}].addr: {} is listed twice", listener.addr));
            }
            listeners.push(listener);
        }
    }
    let admin = file.admin.as_ref().and_then(|a| match a.addr.parse::<SocketAddr>() {
        Ok(addr) if addr.port() != 0 && listeners.iter().any(|l| l.addr == addr) => {
            errors.push(format!("admin.addr: {addr} is also a client listener"));
            None
        }
        Ok(addr) => Some(addr),
        Err(e) => {
            errors.push(format!("admin.addr: {:?} is not an IP:port ({e})", a.addr));
            None
        }
    });
    let upstream = upstream(&file.upstream, &resolve, &mut errors);
    let mtls = listeners.iter().any(|l| l.tls.as_ref().is_some_and(|t| t.client_ca.is_some()));
    let auth = auth(&file.auth, mtls, &resolve, &mut errors);

    if file.policy.paths.is_empty() {
        errors.push("policy.paths: name at least one policy file or folder".to_owned());
    }
    let policy_paths: Vec<PathBuf> = file.policy.paths.iter().map(|p| resolve(p)).collect();
    for (i, p) in policy_paths.iter().enumerate() {
        if !p.exists() {
            errors.push(format!("policy.paths[{i}]: {} does not exist", p.display()));
        }
    }
    if errors.is_empty() {
        match crate::policy_files::read(&policy_paths) {
            Ok(texts) => {
                if let Err(e) = crate::policy_files::compile(&texts) {
                    errors.extend(e.0.iter().map(|e| format!("policy: {e}")));
                }
            }
            Err(e) => errors.push(format!("policy.paths: {e:#}")),
        }
    }
    let policy_mode = match file.policy.mode.as_deref() {
        None | Some("enforce") => PolicyMode::Enforce,
        Some("dry-run") => PolicyMode::DryRun,
        Some(other) => {
            errors.push(format!("policy.mode: {other:?} is not `enforce` or `dry-run`"));
            PolicyMode::Enforce
        }
    };
    let decisions = match file.log.decisions.as_deref() {
        None | Some("stdout") => Some("stdout".to_owned()),
        Some("off") => None,
        Some("stderr") => Some("stderr".to_owned()),
        Some(path) => Some(resolve(Path::new(path)).display().to_string()),
    };
    let threads = match file.threads {
        Some(0) => {
            errors.push("threads: must be at least 1".into());
            1
        }
        Some(n) => n,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let shutdown_timeout =
        duration(file.shutdown_timeout.as_deref(), "shutdown_timeout", Duration::from_secs(30), &mut errors);

    if !errors.is_empty() {
        return Err(errors);
    }
    let (Some(upstream), Some(auth)) = (upstream, auth) else {
        return Err(vec!["upstream or auth: invalid".into()]);
    };
    Ok(Settings {
        source: source.to_path_buf(),
        listeners,
        admin,
        upstream,
        auth,
        policy_paths,
        policy_mode,
        decisions,
        threads,
        shutdown_timeout,
    })
}

fn listener(
    l: &ListenSpec,
    at: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<Listener> {
    let addr = match l.addr.parse::<SocketAddr>() {
        Ok(a) => a,
        Err(e) => {
            errors.push(format!("{at}.addr: {:?} is not an IP:port, like 0.0.0.0:5000 ({e})", l.addr));
            return None;
        }
    };
    let tls = l.tls.as_ref().and_then(|t| tls(t, &format!("{at}.tls"), resolve, errors));
    Some(Listener { addr, tls })
}

fn tls(
    t: &TlsSpec,
    at: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<TlsListener> {
    let cert = resolve(&t.cert);
    let key = resolve(&t.key);
    let n = errors.len();
    match crate::tls::read_certs(&cert) {
        Ok(c) if c.is_empty() => errors.push(format!("{at}.cert: no certificate in {}", cert.display())),
        Ok(_) => {}
        Err(e) => errors.push(format!("{at}.cert: {e}")),
    }
    if let Err(e) = crate::tls::read_key(&key) {
        errors.push(format!("{at}.key: {e}"));
    }
    let client_ca = t.client_ca.as_ref().map(|p| resolve(p));
    if let Some(ca) = &client_ca {
        match crate::tls::read_certs(ca) {
            Ok(c) if c.is_empty() => {
                errors.push(format!("{at}.client_ca: no certificate in {}", ca.display()))
            }
            Ok(_) => {}
            Err(e) => errors.push(format!("{at}.client_ca: {e}")),
        }
    } else if t.require_client_cert {
        errors.push(format!("{at}.require_client_cert: needs client_ca"));
    }
    let identity = match t.client_identity.as_deref() {
        None | Some("cn") => ClientIdentity::Cn,
        Some("san-dns") => ClientIdentity::SanDns,
        Some("san-uri") => ClientIdentity::SanUri,
        Some("san-email") => ClientIdentity::SanEmail,
        Some(other) => {
            errors.push(format!("{at}.client_identity: {other:?} is not cn, san-dns, san-uri or san-email"));
            ClientIdentity::Cn
        }
    };
    (errors.len() == n).then_some(TlsListener {
        cert,
        key,
        client_ca,
        require_client_cert: t.require_client_cert,
        identity,
    })
}

fn upstream(
    u: &UpstreamSpec,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<UpstreamSettings> {
    match (&u.bundled, &u.url) {
        (Some(_), Some(_)) | (None, None) => {
            errors.push("upstream: give exactly one of `bundled` (ocigate's own registry) or `url`".into());
            None
        }
        (Some(b), None) => {
            let remote_only =
                u.ca.is_some() || u.insecure_skip_verify || u.credentials.is_some() || !u.timeouts.is_empty();
            if remote_only {
                errors.push(
                    "upstream: ca, insecure_skip_verify, credentials and timeouts apply to `url` only".into(),
                );
            }
            let upload_ttl = duration(
                b.upload_ttl.as_deref(),
                "upstream.bundled.upload_ttl",
                Duration::from_secs(86400),
                errors,
            );
            Some(UpstreamSettings::Bundled { root: resolve(&b.root), upload_ttl })
        }
        (None, Some(url)) => {
            let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
                (true, r)
            } else if let Some(r) = url.strip_prefix("http://") {
                (false, r)
            } else {
                errors.push(format!("upstream.url: {url:?} must start with http:// or https://"));
                return None;
            };
            let authority = rest.trim_end_matches('/');
            if authority.contains(['/', '?', '#', '@']) || authority.is_empty() {
                errors.push(format!(
                    "upstream.url: {url:?} must be a base URL (scheme, host, optional port; no path)"
                ));
                return None;
            }
            let (host, port) = match authority.rsplit_once(':') {
                Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => match p.parse::<u16>() {
                    Ok(port) => (h.trim_start_matches('[').trim_end_matches(']').to_owned(), port),
                    Err(_) => {
                        errors.push(format!("upstream.url: bad port in {url:?}"));
                        return None;
                    }
                },
                _ => (
                    authority.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    if tls { 443 } else { 80 },
                ),
            };
            let ca = u.ca.as_ref().map(|p| resolve(p));
            if let Some(ca) = &ca {
                if !tls {
                    errors.push("upstream.ca: only for https:// upstreams".into());
                }
                if let Err(e) = crate::tls::read_certs(ca) {
                    errors.push(format!("upstream.ca: {e}"));
                }
            }
            let credentials = credentials(u.credentials.as_ref(), resolve, errors);
            let mut connect_timeout = Duration::from_secs(5);
            let mut read_timeout = Duration::from_secs(300);
            for (k, v) in &u.timeouts {
                match k.as_str() {
                    "connect" => {
                        connect_timeout =
                            duration(Some(v), "upstream.timeouts.connect", connect_timeout, errors)
                    }
                    "read" => {
                        read_timeout = duration(Some(v), "upstream.timeouts.read", read_timeout, errors)
                    }
                    other => errors.push(format!("upstream.timeouts.{other}: unknown (connect, read)")),
                }
            }
            Some(UpstreamSettings::Remote {
                tls,
                host,
                port,
                ca,
                insecure_skip_verify: u.insecure_skip_verify,
                credentials,
                connect_timeout,
                read_timeout,
            })
        }
    }
}

fn secret(
    inline: &Option<String>,
    file: &Option<PathBuf>,
    at: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<String> {
    match (inline, file) {
        (Some(s), None) => Some(s.clone()),
        (None, Some(f)) => {
            let f = resolve(f);
            match std::fs::read_to_string(&f) {
                Ok(s) => Some(s.trim_end_matches(['\n', '\r']).to_owned()),
                Err(e) => {
                    errors.push(format!("{at}_file: cannot read {}: {e}", f.display()));
                    None
                }
            }
        }
        (Some(_), Some(_)) => {
            errors.push(format!(
                "{at}: give `{}` or `{}_file`, not both",
                at.rsplit('.').next().unwrap_or(at),
                at.rsplit('.').next().unwrap_or(at)
            ));
            None
        }
        (None, None) => None,
    }
}

fn credentials(
    c: Option<&CredentialsSpec>,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Credentials {
    let Some(c) = c else { return Credentials::None };
    let given =
        usize::from(c.basic.is_some()) + usize::from(c.bearer.is_some()) + usize::from(c.token.is_some());
    if given != 1 {
        errors.push("upstream.credentials: give exactly one of basic, bearer or token".into());
        return Credentials::None;
    }
    if let Some(b) = &c.basic {
        let Some(password) =
            secret(&b.password, &b.password_file, "upstream.credentials.basic.password", resolve, errors)
        else {
            errors.push("upstream.credentials.basic: needs password or password_file".into());
            return Credentials::None;
        };
        return Credentials::Basic { username: b.username.clone(), password };
    }
    if let Some(b) = &c.bearer {
        let Some(token) =
            secret(&b.token, &b.token_file, "upstream.credentials.bearer.token", resolve, errors)
        else {
            errors.push("upstream.credentials.bearer: needs token or token_file".into());
            return Credentials::None;
        };
        return Credentials::Bearer(token);
    }
    let default = super::TokenDanceSpec::default();
    let t = c.token.as_ref().unwrap_or(&default);
    let password =
        secret(&t.password, &t.password_file, "upstream.credentials.token.password", resolve, errors);
    match (&t.username, password) {
        (Some(u), Some(p)) => Credentials::Token(Some((u.clone(), p))),
        (None, None) => Credentials::Token(None),
        _ => {
            errors.push(
                "upstream.credentials.token: give both username and a password, or neither (anonymous)"
                    .into(),
            );
            Credentials::None
        }
    }
}

fn auth(
    a: &super::AuthSpec,
    mtls: bool,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<AuthSettings> {
    let htpasswd = a.htpasswd.as_ref().map(|p| resolve(p));
    if let Some(h) = &htpasswd
        && let Err(e) = crate::authn::basic::Htpasswd::load(h)
    {
        errors.push(format!("auth.htpasswd: {e}"));
    }
    let issuers = a
        .issuers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| issuer(s, &format!("auth.issuers[{i}]"), resolve, errors))
        .collect();
    for (i, s) in a.issuers.iter().enumerate() {
        if let Some(j) = a.issuers[..i].iter().position(|x| x.issuer == s.issuer) {
            errors.push(format!(
                "auth.issuers[{i}].issuer: {:?} is also auth.issuers[{j}]; merge their keys into one entry",
                s.issuer
            ));
        }
    }
    let mut trusted_proxies = Vec::new();
    for (i, c) in a.trusted_proxies.iter().enumerate() {
        match Cidr::parse(c) {
            Some(c) => trusted_proxies.push(c),
            None => errors.push(format!("auth.trusted_proxies[{i}]: {c:?} is not a CIDR like 10.0.0.0/8")),
        }
    }
    let token_service = a.token_service.as_ref().and_then(|t| token_service(t, &a.issuers, resolve, errors));
    if !a.anonymous && htpasswd.is_none() && a.issuers.is_empty() && !mtls {
        errors.push(
            "auth: nobody could get in: set `anonymous: true`, an `htpasswd` file, `issuers`, or a listener with \
             `tls.client_ca` (mTLS)"
                .into(),
        );
    }
    for (group, users) in &a.groups {
        if group.is_empty() || users.iter().any(String::is_empty) {
            errors.push(format!("auth.groups.{group}: group and user names must not be empty"));
        }
    }
    let realm = a.realm.clone().unwrap_or_else(|| "ocigate".into());
    if realm.contains(['"', '\\']) || realm.chars().any(char::is_control) {
        errors.push("auth.realm: must not contain quotes, backslashes or control characters".into());
    }
    Some(AuthSettings {
        anonymous: a.anonymous,
        realm,
        htpasswd,
        issuers,
        trusted_proxies,
        groups: a.groups.clone(),
        token_service,
    })
}

fn token_service(
    t: &super::TokenServiceSpec,
    issuers: &[IssuerSpec],
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<TokenServiceSettings> {
    const AT: &str = "auth.token_service";
    let n = errors.len();
    let service = t.service.clone().unwrap_or_else(|| "ocigate".into());
    let issuer = t.issuer.clone().unwrap_or_else(|| service.clone());
    for (field, v) in [("service", &service), ("issuer", &issuer)] {
        if v.is_empty() || v.contains(['"', '\\']) || v.chars().any(char::is_control) {
            errors.push(format!(
                "{AT}.{field}: must be non-empty, without quotes, backslashes or control characters"
            ));
        }
    }
    if issuers.iter().any(|i| i.issuer == issuer) {
        errors.push(format!(
            "{AT}.issuer: {issuer:?} is also the issuer of an entry of auth.issuers; give the token service its own"
        ));
    }
    let path = t.path.clone().unwrap_or_else(|| "/token".into());
    if !path.starts_with('/') || path == "/" || path.starts_with("/v2") || path.contains(['?', '#', '"', ' '])
    {
        errors.push(format!("{AT}.path: {path:?} must be a path like /token, outside /v2/"));
    }
    if let Some(realm) = &t.realm
        && (!(realm.starts_with("https://") || realm.starts_with("http://"))
            || realm.contains(['"', '\\', ' '])
            || realm.chars().any(char::is_control))
    {
        errors.push(format!(
            "{AT}.realm: {realm:?} must be an absolute http(s) URL such as https://registry.example.com/token"
        ));
    }
    let lifetime =
        duration(t.lifetime.as_deref(), &format!("{AT}.lifetime"), Duration::from_secs(300), errors);
    if !(Duration::from_secs(60)..=Duration::from_secs(86_400)).contains(&lifetime) {
        errors.push(format!("{AT}.lifetime: give 60s to 24h (clients assume at least 60s)"));
    }
    let refresh_lifetime = duration(
        t.refresh_lifetime.as_deref(),
        &format!("{AT}.refresh_lifetime"),
        Duration::from_secs(720 * 3600),
        errors,
    );
    if refresh_lifetime < lifetime || refresh_lifetime > Duration::from_secs(366 * 86_400) {
        errors.push(format!("{AT}.refresh_lifetime: give from `lifetime` up to 366 days"));
    }
    let keys: Vec<PathBuf> = t.keys.iter().map(|p| resolve(p)).collect();
    if !keys.is_empty()
        && let Err(e) = crate::token::keys::TokenKeys::load(&keys)
    {
        errors.push(format!("{AT}.keys: {e}"));
    }
    (errors.len() == n).then_some(TokenServiceSettings {
        service,
        issuer,
        realm: t.realm.clone(),
        path,
        keys,
        lifetime,
        refresh_lifetime,
    })
}

fn issuer(
    s: &IssuerSpec,
    at: &str,
    resolve: &dyn Fn(&Path) -> PathBuf,
    errors: &mut Vec<String>,
) -> Option<Issuer> {
    let n = errors.len();
    if s.issuer.is_empty() {
        errors.push(format!("{at}.issuer: empty"));
    }
    if s.audiences.is_empty() {
        errors.push(format!("{at}.audiences: name at least one accepted audience"));
    }
    let keys: Vec<PathBuf> = s.keys.iter().map(|p| resolve(p)).collect();
    let jwks_file = s.jwks_file.as_ref().map(|p| resolve(p));
    let root_cert_bundle = s.root_cert_bundle.as_ref().map(|p| resolve(p));
    if keys.is_empty() && jwks_file.is_none() && s.jwks_url.is_none() && root_cert_bundle.is_none() {
        errors.push(format!("{at}: give `keys` (PEM files), `root_cert_bundle`, `jwks_file` or `jwks_url`"));
    }
    if let Some(u) = &s.jwks_url
        && !(u.starts_with("https://") || u.starts_with("http://"))
    {
        errors.push(format!("{at}.jwks_url: {u:?} must be an http(s) URL"));
    }
    let jwks_refresh =
        duration(s.jwks_refresh.as_deref(), &format!("{at}.jwks_refresh"), Duration::from_secs(300), errors);
    let jwks_ca = s.jwks_ca.as_ref().map(|p| resolve(p));
    let jwks_token_file = s.jwks_token_file.as_ref().map(|p| resolve(p));
    if (jwks_ca.is_some() || jwks_token_file.is_some()) && s.jwks_url.is_none() {
        errors.push(format!("{at}: jwks_ca and jwks_token_file go with jwks_url"));
    }
    if let Some(p) = &jwks_ca
        && let Err(e) = crate::tls::read_certs(p)
    {
        errors.push(format!("{at}.jwks_ca: {e}"));
    }
    if let Some(p) = &jwks_token_file
        && let Err(e) = std::fs::metadata(p)
    {
        errors.push(format!("{at}.jwks_token_file: cannot read {}: {e}", p.display()));
    }
    if jwks_refresh < Duration::from_secs(1) {
        errors.push(format!("{at}.jwks_refresh: give at least 1s"));
    }
    let algorithms: Vec<String> = if s.algorithms.is_empty() {
        DEFAULT_ALGORITHMS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        s.algorithms.clone()
    };
    for a in &algorithms {
        if !DEFAULT_ALGORITHMS.contains(&a.as_str()) {
            errors.push(format!(
                "{at}.algorithms: {a:?} is not accepted (asymmetric only: {})",
                DEFAULT_ALGORITHMS.join(", ")
            ));
        }
    }
    let leeway = duration(s.leeway.as_deref(), &format!("{at}.leeway"), Duration::from_secs(60), errors);
    let issuer = Issuer {
        issuer: s.issuer.clone(),
        audiences: s.audiences.clone(),
        keys,
        root_cert_bundle,
        jwks_file,
        jwks_url: s.jwks_url.clone(),
        jwks_refresh,
        jwks_ca,
        jwks_token_file,
        algorithms,
        leeway,
        subject_claim: s.subject_claim.clone().unwrap_or_else(|| "sub".into()),
        subject_prefix: s.subject_prefix.clone().unwrap_or_default(),
        groups_claim: s.groups_claim.clone().unwrap_or_else(|| "groups".into()),
    };
    if errors.len() == n
        && let Err(e) = crate::authn::bearer::IssuerKeys::load(&issuer)
    {
        errors.push(format!("{at}: {e}"));
    }
    (errors.len() == n).then_some(issuer)
}

fn duration(s: Option<&str>, at: &str, default: Duration, errors: &mut Vec<String>) -> Duration {
    match s {
        None => default,
        Some(s) => humantime::parse_duration(s).unwrap_or_else(|e| {
            errors.push(format!("{at}: {s:?} is not a duration like 30s or 5m ({e})"));
            default
        }),
    }
}

//! The gateway's configuration: one YAML file, as operators write it ([`ConfigFile`]), checked and resolved
//! into [`Settings`] with every error and its path (`listen[1].tls.cert: ...`).

pub(crate) mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

pub use validate::{
    AuthSettings, ClientIdentity, Credentials, Issuer, Listener, PolicyMode, Settings, TlsListener,
    TokenServiceSettings, UpstreamSettings, load, validate,
};

/// The file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Where clients connect.
    pub listen: Vec<ListenSpec>,
    /// Metrics and health checks.
    #[serde(default)]
    pub admin: Option<AdminSpec>,
    /// Where allowed requests go.
    pub upstream: UpstreamSpec,
    /// Who callers are.
    #[serde(default)]
    pub auth: AuthSpec,
    /// What they may do.
    pub policy: PolicySpec,
    /// Decision log and process settings.
    #[serde(default)]
    pub log: LogSpec,
    /// Worker threads of the proxy (default: one per CPU).
    pub threads: Option<usize>,
    /// On SIGTERM, how long requests in flight may take to finish (default 30s).
    pub shutdown_timeout: Option<String>,
}

/// A listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenSpec {
    /// `host:port` (port 0 picks a free port; the log says which).
    pub addr: String,
    /// TLS; plain HTTP without it.
    pub tls: Option<TlsSpec>,
}

/// TLS of a listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSpec {
    /// Certificate chain (PEM). Reloaded when the file changes.
    pub cert: PathBuf,
    /// Private key (PEM). Reloaded when the file changes.
    pub key: PathBuf,
    /// CA bundle (PEM) that client certificates must chain to: turns on mTLS.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: must every client present a certificate (default false: the certificate is an
    /// identity when present, other methods still work).
    #[serde(default)]
    pub require_client_cert: bool,
    /// Which part of the client certificate names the principal: `cn` (default), `san-dns`, `san-uri`,
    /// `san-email`.
    pub client_identity: Option<String>,
}

/// The admin listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminSpec {
    /// `host:port` for `/metrics`, `/healthz`, `/readyz`.
    pub addr: String,
}

/// Exactly one of `bundled` or `url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// The registry ocigate hosts itself, on a private Unix socket.
    pub bundled: Option<BundledSpec>,
    /// Another registry's base URL (`http://` or `https://`, no path).
    pub url: Option<String>,
    /// CA bundle (PEM) for an `https://` upstream with a private CA.
    pub ca: Option<PathBuf>,
    /// Skip certificate verification of the upstream (testing only).
    #[serde(default)]
    pub insecure_skip_verify: bool,
    /// The gateway's own credentials at the upstream (the client's are never forwarded).
    pub credentials: Option<CredentialsSpec>,
    /// Timeouts: `connect` (default 5s) and `read` (default 5m, per read).
    #[serde(default)]
    pub timeouts: BTreeMap<String, String>,
}

/// The bundled registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundledSpec {
    /// Storage root (created if missing).
    pub root: PathBuf,
    /// Idle upload sessions are deleted after this long (default 24h).
    pub upload_ttl: Option<String>,
}

/// The gateway's credentials at an upstream: one of them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CredentialsSpec {
    /// Static HTTP Basic.
    pub basic: Option<SecretPairSpec>,
    /// A static bearer token.
    pub bearer: Option<SecretSpec>,
    /// The token dance against the upstream's realm, with these credentials (or anonymously).
    pub token: Option<TokenDanceSpec>,
}

/// A user name and a password (inline or, better, from a file).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPairSpec {
    /// User name.
    pub username: String,
    /// Password (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

/// A secret, inline or from a file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    /// The token (prefer `token_file`).
    pub token: Option<String>,
    /// File holding the token.
    pub token_file: Option<PathBuf>,
}

/// The token dance.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenDanceSpec {
    /// User name at the realm (anonymous without it).
    pub username: Option<String>,
    /// Password (prefer `password_file`).
    pub password: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

/// Authentication.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSpec {
    /// Let callers without credentials in as the anonymous principal (the policy decides what it may do).
    #[serde(default)]
    pub anonymous: bool,
    /// Realm in `WWW-Authenticate: Basic realm=...` (default `ocigate`).
    pub realm: Option<String>,
    /// htpasswd file (bcrypt entries) for HTTP Basic. Reloaded when it changes.
    pub htpasswd: Option<PathBuf>,
    /// Trusted issuers of bearer tokens (JWT).
    #[serde(default)]
    pub issuers: Vec<IssuerSpec>,
    /// Proxies whose `X-Forwarded-For` is believed (CIDRs), for `client.ip`.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// The built-in token service: ocigate as its own Docker token realm.
    pub token_service: Option<TokenServiceSpec>,
    /// Groups of users: `group: [user, ...]`, for htpasswd users and certificate identities (and added to
    /// a token's own groups).
    #[serde(default)]
    pub groups: BTreeMap<String, Vec<String>>,
}

/// The built-in token service.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenServiceSpec {
    /// The service name: `service` in challenges and the tokens' `aud` (default `ocigate`).
    pub service: Option<String>,
    /// The tokens' `iss` (default: the service name).
    pub issuer: Option<String>,
    /// The realm URL clients fetch tokens from (default: the scheme and host the client used, plus `path`).
    pub realm: Option<String>,
    /// Where the gateway serves the token endpoint (default `/token`; the public keys are at `<path>/jwks`).
    pub path: Option<String>,
    /// PKCS#8 PEM keys: the first signs, every one verifies (rotate by putting a new key first). Without
    /// keys a key is generated at start: tokens then do not survive a restart or work across replicas.
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// Lifetime of access tokens (default 5m).
    pub lifetime: Option<String>,
    /// Lifetime of refresh tokens (`offline_token=true`, `access_type=offline`; default 720h).
    pub refresh_lifetime: Option<String>,
}

/// A trusted token issuer.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// The `iss` claim.
    pub issuer: String,
    /// Accepted `aud` values (one must match).
    pub audiences: Vec<String>,
    /// PEM public keys (or certificates).
    #[serde(default)]
    pub keys: Vec<PathBuf>,
    /// CA certificates (PEM), as distribution's `rootcertbundle`: a token whose `x5c` header holds a
    /// certificate chain to one of them is verified with the chain's leaf key; tokens signed by the
    /// certificates' own keys are accepted too.
    pub root_cert_bundle: Option<PathBuf>,
    /// A JWKS file (re-read when it changes).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS URL (`https://...`), fetched at start and every `jwks_refresh`, and again (at most every
    /// 5s) when a token names a key it does not hold. A failed fetch keeps the keys fetched before.
    pub jwks_url: Option<String>,
    /// How often `jwks_url` is fetched (default 5m).
    pub jwks_refresh: Option<String>,
    /// CA bundle (PEM) for an `https://` `jwks_url` with a private CA (e.g. the Kubernetes API server's).
    pub jwks_ca: Option<PathBuf>,
    /// A bearer token sent with each `jwks_url` fetch, read from this file every time (e.g. a projected
    /// service-account token, which rotates).
    pub jwks_token_file: Option<PathBuf>,
    /// Accepted algorithms (default: ES256, ES384, RS256, RS384, RS512, PS256, PS384, PS512, EdDSA).
    #[serde(default)]
    pub algorithms: Vec<String>,
    /// Clock leeway for `exp` and `nbf` (default 60s).
    pub leeway: Option<String>,
    /// Claim naming the principal (default `sub`).
    pub subject_claim: Option<String>,
    /// Put before every subject of this issuer (e.g. `oidc:`), so that its names cannot be taken for
    /// htpasswd users or another issuer's subjects; policies then name `oidc:alice`.
    pub subject_prefix: Option<String>,
    /// Claim holding the groups, as a dotted path (default `groups`).
    pub groups_claim: Option<String>,
}

/// The policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    /// Policy files, or folders of `*.yaml`: watched and reloaded (and on SIGHUP).
    pub paths: Vec<PathBuf>,
    /// `enforce` (default) or `dry-run` (log would-be denials, allow).
    pub mode: Option<String>,
}

/// Logging.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSpec {
    /// Where decision lines go: `stdout` (default), `stderr`, `off`, or a file path (appended).
    pub decisions: Option<String>,
}
